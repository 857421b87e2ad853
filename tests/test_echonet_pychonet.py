"""Interop: pychonet, an independent ECHONET Lite client, reads and sets the emulated V2H unit.

pychonet always sends to port 3610; tests run in parallel and may not take a fixed port, so
its UDP server is given a ``send`` that keeps pychonet's destination host and replaces only
the port by the emulated unit's ephemeral one (and joins no multicast group: unicast on
loopback only). Everything else — frames, TIDs, discovery through the node profile, property
maps, decoding — is pychonet's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from plant_servers import BENCH_FILE, PlantServers, bus_node, context

from hil.config.benchfile import parse_bench_text
from instruments.emulation.models.echonet_v2h import EchonetV2hModel
from instruments.emulation.plant import VoltageReferenceSpec

pychonet = pytest.importorskip("pychonet")
from pychonet.echonetapiclient import ECHONETAPIClient  # noqa: E402
from pychonet.ElectricVehicleChargerDischarger import (  # noqa: E402
    ElectricVehicleChargerDischarger,
)
from pychonet.lib.udpserver import UDPServer  # noqa: E402

HOST = "127.0.0.3"
KEY = "EV1.ev"


class LoopbackServer(UDPServer):  # type: ignore[misc]
    """pychonet's UDP server, unicast only, sending to the emulated unit's port."""

    def __init__(self, port: int) -> None:
        self.device_port = port
        super().__init__(local_ip=HOST)

    def register_multicast(self, local_ip: str) -> None:
        return None

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        super().send(data, (addr[0], self.device_port))


@pytest.fixture
def served() -> Iterator[tuple[PlantServers, EchonetV2hModel, int]]:
    bench = parse_bench_text(BENCH_FILE.read_text(encoding="utf-8"), "pychonet bench")
    ctx = context(bench, "EV1", "echonet_v2h")
    ref = VoltageReferenceSpec(
        name="ref",
        node="bus",
        max_voltage_v=600.0,
        max_current_a=50.0,
        voltage_v=350.0,
        output_on=True,
    )
    specs = [*EchonetV2hModel.port_specs(ctx), ref]
    with PlantServers([bus_node(), *EchonetV2hModel.node_specs(ctx)], specs) as h:
        model = h.add(EchonetV2hModel, ctx)
        yield h, model, h.serve_udp(model, host=HOST)


def test_pychonet_discovers_reads_and_sets_the_emulated_unit(
    served: tuple[PlantServers, EchonetV2hModel, int],
) -> None:
    h, model, port = served

    async def session() -> dict[str, Any]:
        server = LoopbackServer(port)
        server.run(HOST, 0, asyncio.get_running_loop())
        try:
            api = ECHONETAPIClient(server)
            api._logger = lambda *args: None
            assert await api.discover(HOST)
            instances = api._state[HOST]["instances"]
            assert 0x7E in instances[0x02] and 0x01 in instances[0x02][0x7E]
            assert await api.getAllPropertyMaps(HOST, 0x02, 0x7E, 0x01)
            ev = ElectricVehicleChargerDischarger(HOST, api)
            out: dict[str, Any] = {}
            out["before"] = await ev.update([0x80, 0xDA, 0xE4, 0xE2, 0xC6, 0xCB])
            out["identity"] = await ev.update([0x8D, 0xC4])
            out["maker"] = api._state[HOST]["manufacturer"]  # decoded at discovery
            out["check"] = await ev.setMessage(0xCD, 0x10)
            out["connection"] = await ev.update(0xC7)  # one EPC: pychonet returns the value
            out["method"] = await ev.setMessage(0xDD, 0x04)
            out["current"] = await ev.setMessage(0xEE, 25, pdc=2)  # 2.5 A in 0.1 A
            out["too_much"] = await ev.setMessage(0xEE, 200, pdc=2)  # 20 A: refused
            out["discharge"] = await ev.setMessage(0xDA, 0x43)
            await asyncio.get_running_loop().run_in_executor(None, h.advance, 300.0)
            out["running"] = await ev.update([0xDA, 0xD3, 0xD4, 0xD5])
            out["standby"] = await ev.setMessage(0xDA, 0x44)
            return out
        finally:
            server.close()

    out = asyncio.run(session())
    before = out["before"]
    assert before[0x80] == "on" and before[0xDA] == "Standby"
    assert before[0xE4] == 60 and before[0xE2] == 24_000
    assert before[0xC6] == 6000
    # pychonet reads 0xCB (two uint16, 0.1 A) as one number: min 0, max 160 -> 160
    assert before[0xCB] == 160
    # pychonet leaves 0x8D (12 ASCII bytes) as hex
    assert bytes.fromhex(out["identity"][0x8D]).decode().strip() == model.serial
    assert out["maker"] == "Experimental"  # pychonet's name for maker code 0xFFFFFF
    assert out["check"] and out["connection"] == "Chargeable and Dischargeable"
    assert out["method"] and out["current"] and not out["too_much"]
    assert out["discharge"]
    running = out["running"]
    assert running[0xDA] == "Discharge"
    assert running[0xD4] == pytest.approx(-25, abs=1)  # 0.1 A, negative: discharging
    assert running[0xD5] == pytest.approx(350, abs=2)
    assert running[0xD3] == pytest.approx(-875, abs=20)
    assert out["standby"]
    assert h.call(lambda: model.device.mode.name) == "STANDBY"
