"""ECHONET Lite Get round trip: the emulated V2H unit against a constant-answer floor server.

One background asyncio loop serves, on loopback UDP:

- ``floor``: a trivial server that answers every datagram with one fixed Get_Res
  (the request's TID copied, nothing parsed);
- ``ours``: the emulated V2H unit (``instruments.emulation.models.echonet_v2h``) on a plant,
  behind ``instruments.emulation.udp.UdpServer`` with its ``Faults`` in the path.

The client is the toolkit's driver (``instruments.echonet_v2h.EchonetV2h``), reading the
operation status (Get 0x80) from each in alternating batches so that load from other
processes hits both alike; each figure is the median of the batch medians.

Prints ``name value unit`` lines; ``echonet_ratio`` = ours / floor.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from plant_servers import BENCH_FILE, PlantServers, bus_node, context  # noqa: E402

from hil.config.benchfile import parse_bench_text  # noqa: E402
from instruments.echonet_v2h import EchonetV2h  # noqa: E402
from instruments.emulation.models.echonet_v2h import EchonetV2hModel  # noqa: E402
from instruments.wire import echonet as el  # noqa: E402

BATCHES = 20
PER_BATCH = 100
REPLY_TAIL = bytes.fromhex("027e0105ff017201800130")


class _Floor(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.transport.sendto(data[:4] + REPLY_TAIL, addr)


def batch_ms(driver: EchonetV2h) -> float:
    times = []
    for _ in range(PER_BATCH):
        start = time.perf_counter()
        driver.get(0x80)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    bench = parse_bench_text(BENCH_FILE.read_text(encoding="utf-8"), "benchmark bench")
    ctx = context(bench, "EV1", "echonet_v2h")
    nodes = [bus_node(), *EchonetV2hModel.node_specs(ctx)]
    with PlantServers(nodes, EchonetV2hModel.port_specs(ctx)) as h:
        model = h.add(EchonetV2hModel, ctx)
        ours_port = h.serve_udp(model)

        async def floor() -> int:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(_Floor, local_addr=("127.0.0.1", 0))
            floors.append(transport)  # an endpoint nobody holds is collected
            return int(transport.get_extra_info("sockname")[1])

        floors: list[asyncio.BaseTransport] = []
        floor_port = h._loop.run(floor())
        drivers = {
            "floor": EchonetV2h.open(f"echonet://127.0.0.1:{floor_port}/027E01", timeout=5.0),
            "ours": EchonetV2h.open(f"echonet://127.0.0.1:{ours_port}/027E01", timeout=5.0),
        }
        medians: dict[str, list[float]] = {name: [] for name in drivers}
        try:
            for _ in range(BATCHES):
                for name, driver in drivers.items():
                    medians[name].append(batch_ms(driver))
        finally:
            for driver in drivers.values():
                driver.close()
    floor_ms = statistics.median(medians["floor"])
    ours_ms = statistics.median(medians["ours"])
    print(f"echonet_get_ms_floor {floor_ms:.4f} ms")
    print(f"echonet_get_ms_ours {ours_ms:.4f} ms")
    print(f"echonet_ratio {ours_ms / floor_ms:.3f} ratio")
    assert el.decode(bytes.fromhex("10810001") + REPLY_TAIL).esv == el.Esv.GET_RES
    return 0


if __name__ == "__main__":
    sys.exit(main())
