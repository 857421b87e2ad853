"""Emulator round trip: pyvisa-py to an emulated N5700 against a floor server; Modbus too.

One child process (like ``hil emulate``) serves, in one asyncio loop:

- ``floor``: a trivial line server that answers every ``\\n`` with a constant NR3 number
  (no parsing at all): the cost of pyvisa-py, the socket and asyncio alone;
- ``emulated``: :data:`DEVICE` behind the SCPI session on ``transport.py``, with its
  ``Faults`` in the path (none active);
- ``fleet``: :data:`FLEET` more instances of :data:`DEVICE`, each on its own port.

The parent queries with pyvisa-py (``TCPIP0::127.0.0.1::PORT::SOCKET``) as the drivers do,
alternating short batches between floor and emulated so that load from other processes hits
both alike; each figure is the median of the batch means. The fleet figure queries all
instruments round-robin through one session each.

Prints ``name value unit`` lines: ``scpi_query_us``, ``scpi_floor_us``, ``scpi_ratio``
(emulated / floor, target <= 1.3), ``scpi_query_us_100_instruments`` and
``scpi_ratio_100_instruments`` (fleet / single-instrument query). More figures are added by
appending a function to :data:`MEASUREMENTS`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import pyvisa
from pyvisa.resources import MessageBasedResource

from hil.config.benchfile import load_bench_file
from instruments.emulation.models import ModelContext
from instruments.emulation.models.base import BUS_NODE
from instruments.emulation.models.n5700 import N5700Model
from instruments.emulation.plant import NodeSpec, Plant
from instruments.emulation.process import exit_when_parent_dies
from instruments.emulation.scpi import ScpiDevice, scpi_session_factory
from instruments.emulation.transport import Faults, ServerGroup


def n5700_model() -> ScpiDevice:
    """A real emulated Keysight N5772A (the default bench's SUP1) on a plant of its own."""
    bench = load_bench_file(BENCH)
    unit = bench.unit("SUP1")
    ctx = ModelContext(bench=bench, unit=unit, instrument=unit.bus_instrument)
    plant = Plant([NodeSpec(name=BUS_NODE)], N5700Model.port_specs(ctx))
    return N5700Model(ctx, plant)


# The emulated instrument and the query under test.
BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "benches" / "emulated.toml"
DEVICE: Callable[[], ScpiDevice] = n5700_model
QUERY = "MEAS:VOLT?"
FLEET = 100
FLOOR_REPLY = b"+1.250000E+01\n"


class _FloorProtocol(asyncio.Protocol):
    """Answers every line with the same constant: the floor under any real server."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._transport.write(FLOOR_REPLY * data.count(b"\n"))


async def _serve(pipe: Connection, fleet: int) -> None:
    loop = asyncio.get_running_loop()
    floor = await loop.create_server(_FloorProtocol, "127.0.0.1", 0)
    floor_port = int(floor.sockets[0].getsockname()[1])
    group = ServerGroup()
    ports: list[int] = []
    for index in range(1 + fleet):
        name = f"PS{index}"
        factory = scpi_session_factory(DEVICE())
        ports.append(
            await group.serve_tcp(factory, instrument=name, faults=Faults(name), terminator=b"\n")
        )
    pipe.send((floor_port, ports))
    await loop.run_in_executor(None, pipe.recv)
    await group.close()
    floor.close()


def _server_main(pipe: Connection, fleet: int) -> None:
    exit_when_parent_dies()
    asyncio.run(_serve(pipe, fleet))


@dataclass
class Setup:
    """What every measurement gets: the ports and the pyvisa resource manager."""

    floor_port: int
    ports: list[int]
    rm: pyvisa.ResourceManager
    queries: int
    batch: int

    def open(self, port: int) -> MessageBasedResource:
        inst = self.rm.open_resource(
            f"TCPIP0::127.0.0.1::{port}::SOCKET",
            read_termination="\n",
            write_termination="\n",
            timeout=10_000,
        )
        assert isinstance(inst, MessageBasedResource)
        return inst


Line = tuple[str, float, str]


def _batch_us(inst: MessageBasedResource, count: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(count):
        inst.query(QUERY)
    return (time.perf_counter_ns() - start) / count / 1000


def measure_scpi(setup: Setup) -> list[Line]:
    """Single instrument vs floor, then the whole fleet round-robin."""
    floor = setup.open(setup.floor_port)
    single = setup.open(setup.ports[0])
    reply = single.query(QUERY)
    if not reply:
        raise RuntimeError(f"{QUERY!r} got an empty reply from the emulated device")
    _batch_us(floor, setup.batch)
    _batch_us(single, setup.batch)
    floor_us: list[float] = []
    query_us: list[float] = []
    for _ in range(max(1, setup.queries // setup.batch)):
        floor_us.append(_batch_us(floor, setup.batch))
        query_us.append(_batch_us(single, setup.batch))
    floor_median = statistics.median(floor_us)
    query_median = statistics.median(query_us)
    lines: list[Line] = [
        ("scpi_query_us", query_median, "us"),
        ("scpi_floor_us", floor_median, "us"),
        ("scpi_ratio", query_median / floor_median, "x"),
    ]
    fleet = [setup.open(port) for port in setup.ports[1:]]
    if fleet:
        for inst in fleet:
            inst.query(QUERY)
        fleet_us: list[float] = []
        rounds = max(1, setup.queries // len(fleet))
        for _ in range(3):
            start = time.perf_counter_ns()
            for _ in range(rounds):
                for inst in fleet:
                    inst.query(QUERY)
            fleet_us.append((time.perf_counter_ns() - start) / (rounds * len(fleet)) / 1000)
        fleet_median = statistics.median(fleet_us)
        lines.append((f"scpi_query_us_{len(fleet)}_instruments", fleet_median, "us"))
        lines.append((f"scpi_ratio_{len(fleet)}_instruments", fleet_median / query_median, "x"))
    for inst in (floor, single, *fleet):
        inst.close()
    return lines


def measure_modbus(setup: Setup) -> list[Line]:
    """The Modbus lines, from ``modbus_roundtrip.py`` run in its own process."""
    script = Path(__file__).with_name("modbus_roundtrip.py")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    lines: list[Line] = []
    for row in out.splitlines():
        name, value, unit = row.split()
        lines.append((name, float(value), unit))
    return lines


MEASUREMENTS: list[Callable[[Setup], list[Line]]] = [measure_scpi, measure_modbus]
"""Each returns ``(name, value, unit)`` lines."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=4000, help="queries per figure")
    parser.add_argument("--batch", type=int, default=200, help="queries per alternating batch")
    parser.add_argument("--fleet", type=int, default=FLEET, help="instruments in the fleet")
    args = parser.parse_args()
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_server_main, args=(child, args.fleet), daemon=True)
    server.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the emulator process did not report its ports within 60 s")
        floor_port, ports = parent.recv()
        rm = pyvisa.ResourceManager("@py")
        setup = Setup(floor_port, ports, rm, args.queries, args.batch)
        for measure in MEASUREMENTS:
            for name, value, unit in measure(setup):
                print(f"{name} {value:.3f} {unit}")
        rm.close()
        parent.send("stop")
        server.join(timeout=10)
    finally:
        if server.is_alive():
            server.terminate()
            server.join(timeout=5)


if __name__ == "__main__":
    main()
