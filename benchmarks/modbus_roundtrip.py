"""Modbus read round trip: the emulated device against a constant-answer floor server.

One child process (like the emulator) serves, in one asyncio loop:

- ``floor``: a trivial Modbus TCP server that answers every request with a constant
  one-register reply (no parsing beyond copying the transaction id and unit);
- ``ours``: an emulated device (``instruments.emulation.modbus``) on transport.py with its
  ``Faults`` object in the path (no fault active);
- ``pymodbus``: pymodbus 3.16's own ``ModbusTcpServer`` with a ``SimDevice`` whose action
  sets the register, for reference (why our own server exists).

The parent reads one holding register with pymodbus's synchronous ``ModbusTcpClient`` (what
the drivers use), alternating short batches between the servers so that load from other
processes hits all of them alike; each figure is the median of the batch medians.

Prints ``name value unit`` lines; ``modbus_ratio`` = ours / floor (target <= 1.3).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from instruments.emulation.modbus import ModbusBus, ModbusDevice
from instruments.emulation.process import exit_when_parent_dies
from instruments.emulation.transport import Faults, ServerGroup

REGISTER = 500
VALUE = 42
SERVERS = ("floor", "ours", "pymodbus")


class _FloorProtocol(asyncio.Protocol):
    """Answers every MBAP request with the same one-register reply."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        reply = struct.pack(">HB", 5, data[6]) + struct.pack(">BBH", 3, 2, VALUE)
        self._transport.write(data[:4] + reply)


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    floor = await loop.create_server(_FloorProtocol, "127.0.0.1", 0)
    floor_port = int(floor.sockets[0].getsockname()[1])

    value = [VALUE]
    device = ModbusDevice(1, "bench").holding(
        REGISTER, "value", lambda: value[0], lambda v: value.__setitem__(0, int(v))
    )
    group = ServerGroup()
    ours_port = await group.serve_tcp(
        ModbusBus([device]).tcp_session, instrument="bench", faults=Faults("bench")
    )

    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        registers[address - start_address] = value[0]

    sim = SimDevice(
        id=1,
        simdata=[SimData(REGISTER, count=1, values=0, datatype=DataType.REGISTERS)],
        action=action,
    )
    pymodbus_server = ModbusTcpServer(sim, address=("127.0.0.1", 0))
    await pymodbus_server.serve_forever(background=True)
    listener = pymodbus_server.transport
    assert isinstance(listener, asyncio.Server)
    pymodbus_port = int(listener.sockets[0].getsockname()[1])

    pipe.send({"floor": floor_port, "ours": ours_port, "pymodbus": pymodbus_port})
    await loop.run_in_executor(None, pipe.recv)


def _server_process(pipe: Connection) -> None:
    exit_when_parent_dies()
    asyncio.run(_serve(pipe))


def _untyped(client: ModbusTcpClient) -> Any:
    """pymodbus's sync ``connect``/``close`` carry no annotations."""
    return client


def _batch(client: ModbusTcpClient, reads: int) -> float:
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        reply = client.read_holding_registers(REGISTER, count=1, device_id=1)
        samples.append(time.perf_counter() - start)
        if reply.isError() or reply.registers != [VALUE]:
            raise RuntimeError(f"unexpected Modbus reply {reply}")
    return statistics.median(samples)


def measure_modbus(rounds: int = 15, batch: int = 200) -> dict[str, float]:
    """Median read time per server in microseconds, and the ratios to the floor."""
    parent, child = mp.Pipe()
    process = mp.Process(target=_server_process, args=(child,), daemon=True)
    process.start()
    clients: dict[str, ModbusTcpClient] = {}
    try:
        if not parent.poll(30):
            raise RuntimeError("benchmark servers did not start")
        ports: dict[str, int] = parent.recv()
        for name in SERVERS:
            client = ModbusTcpClient("127.0.0.1", port=ports[name], timeout=5)
            if not _untyped(client).connect():
                raise RuntimeError(f"cannot connect to the {name} server on {ports[name]}")
            _batch(client, 50)
            clients[name] = client
        medians: dict[str, list[float]] = {name: [] for name in SERVERS}
        for _ in range(rounds):
            for name in SERVERS:
                medians[name].append(_batch(clients[name], batch))
    finally:
        for client in clients.values():
            _untyped(client).close()
        parent.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()
    us = {name: statistics.median(values) * 1e6 for name, values in medians.items()}
    return {
        "modbus_read_us": us["ours"],
        "modbus_floor_us": us["floor"],
        "modbus_ratio": us["ours"] / us["floor"],
        "modbus_pymodbus_read_us": us["pymodbus"],
        "modbus_pymodbus_ratio": us["pymodbus"] / us["floor"],
    }


def main() -> int:
    for name, value in measure_modbus().items():
        unit = "ratio" if name.endswith("ratio") else "us"
        print(f"{name} {value:.3f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
