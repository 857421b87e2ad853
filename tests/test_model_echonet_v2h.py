"""The emulated V2H unit on a plant, spoken to by a plain UDP client written from the spec.

The client builds frames by hand (ECHONET Lite Part II §3.2: ``10 81 TID SEOJ DEOJ ESV OPC
EPC PDC EDT``), not with the toolkit's codec, so the codec and the device are checked
against the spec's bytes. A voltage reference holds the bus at 350 V; the plant moves only
when a test advances it. Every socket is bound to an ephemeral port on 127.0.0.2.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import BENCH_FILE, PlantServers, bus_node, context

from hil.config.benchfile import parse_bench_text
from instruments.echonet_v2h import EchonetV2h
from instruments.emulation.models.echonet_v2h import EchonetV2hModel
from instruments.emulation.plant import VoltageReferenceSpec
from instruments.errors import ConfigError, InstrumentReportedError, InstrumentTimeout
from instruments.roles import EvConnection, EvMode

KEY = "EV1.ev"
HOST = "127.0.0.2"
BUS_V = 350.0
WAIT_S = 10.0  # generous: a loaded 2-core machine


def frame(tid: int, esv: int, *props: tuple[int, bytes]) -> bytes:
    """A request from a controller (05FF01) to the V2H object (027E01), by hand."""
    body = bytes([len(props)]) + b"".join(bytes([epc, len(edt)]) + edt for epc, edt in props)
    return b"\x10\x81" + struct.pack(">H", tid) + b"\x05\xff\x01\x02\x7e\x01" + bytes([esv]) + body


def parse(data: bytes) -> tuple[int, int, dict[int, bytes]]:
    """(TID, ESV, {EPC: EDT}) of a one-list reply, by hand."""
    assert data[:2] == b"\x10\x81"
    tid = struct.unpack(">H", data[2:4])[0]
    esv, count = data[10], data[11]
    props, at = {}, 12
    for _ in range(count):
        epc, pdc = data[at], data[at + 1]
        props[epc] = data[at + 2 : at + 2 + pdc]
        at += 2 + pdc
    assert at == len(data)
    return tid, esv, props


class Client:
    """A UDP socket on 127.0.0.2 that sends hand-made frames and collects replies and INF."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(WAIT_S)
        self.peer = (HOST, port)
        self.tid = 0
        self.inf: list[dict[int, bytes]] = []

    def request(self, esv: int, *props: tuple[int, bytes]) -> tuple[int, dict[int, bytes]]:
        self.tid += 1
        self.sock.sendto(frame(self.tid, esv, *props), self.peer)
        while True:
            data, addr = self.sock.recvfrom(2048)
            assert addr == self.peer
            tid, reply_esv, values = parse(data)
            if reply_esv == 0x73:
                self.inf.append(values)
                continue
            assert tid == self.tid
            return reply_esv, values

    def get(self, *epcs: int) -> tuple[int, dict[int, bytes]]:
        return self.request(0x62, *((e, b"") for e in epcs))

    def setc(self, *props: tuple[int, bytes]) -> tuple[int, dict[int, bytes]]:
        return self.request(0x61, *props)

    def silent(self, data: bytes) -> bool:
        """Send raw bytes; True if nothing but announcements comes back before a Get's reply."""
        self.sock.sendto(data, self.peer)
        esv, _ = self.get(0x80)
        return esv == 0x72

    def close(self) -> None:
        self.sock.close()


@dataclass
class Rig:
    h: PlantServers
    model: EchonetV2hModel
    port: int
    client: Client

    def true_current(self) -> float:
        """Plant truth: current into the bus (+ while the car discharges)."""
        return self.h.call(lambda: self.h.plant.state(KEY).current)

    def soc(self) -> float:
        return self.h.call(lambda: self.model.battery.soc)


@pytest.fixture
def rig() -> Iterator[Rig]:
    bench = parse_bench_text(BENCH_FILE.read_text(encoding="utf-8"), "v2h bench")
    ctx = context(bench, "EV1", "echonet_v2h")
    specs = [
        *EchonetV2hModel.port_specs(ctx),
        VoltageReferenceSpec(
            name="ref",
            node="bus",
            max_voltage_v=600.0,
            max_current_a=50.0,
            voltage_v=BUS_V,
            output_on=True,
        ),
    ]
    with PlantServers([bus_node(), *EchonetV2hModel.node_specs(ctx)], specs) as h:
        model = h.add(EchonetV2hModel, ctx)
        port = h.serve_udp(model, host=HOST)
        client = Client(port)
        try:
            yield Rig(h, model, port, client)
        finally:
            client.close()


def start_discharge(c: Client, tenths: int, amount_wh: int = 0) -> None:
    assert c.setc((0xCD, b"\x10"))[0] == 0x71
    assert c.setc((0xDD, b"\x04"), (0xEE, struct.pack(">H", tenths)))[0] == 0x71
    assert c.setc((0xEA, struct.pack(">I", amount_wh)))[0] == 0x71
    assert c.setc((0xDA, b"\x43")) == (0x71, {0xDA: b""})


def test_get_reads_identity_and_state_as_the_spec_lays_them_out(rig: Rig) -> None:
    esv, values = rig.client.get(0x80, 0x8A, 0x8D, 0xE4, 0xDA)
    assert esv == 0x72
    assert values[0x80] == b"\x30" and values[0xDA] == b"\x44"
    assert values[0x8A] == b"\xff\xff\xff"
    assert values[0x8D].decode().strip() == rig.model.serial
    assert values[0xE4] == bytes([60])


def test_the_connection_is_read_only_after_a_check(rig: Rig) -> None:
    c = rig.client
    assert c.get(0xC7) == (0x52, {0xC7: b""})  # Get_SNA, PDC 0
    assert c.setc((0xCD, b"\x10")) == (0x71, {0xCD: b""})
    assert c.get(0xC7) == (0x72, {0xC7: b"\x43"})


def test_out_of_range_settings_are_refused_with_setc_sna(rig: Rig) -> None:
    c = rig.client
    too_much = struct.pack(">H", 170)  # 17.0 A > the 16 A maximum of 0xCB
    assert c.setc((0xEE, too_much)) == (0x51, {0xEE: too_much})
    assert c.setc((0xDA, b"\x99")) == (0x51, {0xDA: b"\x99"})
    assert c.setc((0xEE, b"\x01")) == (0x51, {0xEE: b"\x01"})  # wrong PDC
    assert c.setc((0xD3, b"\x00\x00\x00\x01")) == (0x51, {0xD3: b"\x00\x00\x00\x01"})  # read only
    assert c.setc((0xF0, b"\x01")) == (0x51, {0xF0: b"\x01"})  # unknown EPC
    # one refused, one accepted: SNA lists the accepted one with PDC 0
    esv, values = c.setc((0xDD, b"\x04"), (0xEE, too_much))
    assert (esv, values) == (0x51, {0xDD: b"", 0xEE: too_much})


def test_discharge_is_refused_before_the_connection_check(rig: Rig) -> None:
    c = rig.client
    assert c.setc((0xDD, b"\x04"), (0xEE, b"\x00\x14"))[0] == 0x71
    assert c.setc((0xDA, b"\x43"))[0] == 0x51
    assert abs(rig.true_current()) < 0.01


def test_the_car_discharges_into_the_bus_at_the_designated_current(rig: Rig) -> None:
    c = rig.client
    start_discharge(c, 20)
    assert {0xDA: b"\x43"} in c.inf  # announced
    soc = rig.soc()
    rig.h.advance(600.0)
    assert rig.true_current() == pytest.approx(2.0, abs=0.02)
    esv, values = c.get(0xD4, 0xD3, 0xD5)
    assert esv == 0x72
    assert struct.unpack(">h", values[0xD4])[0] == pytest.approx(-20, abs=1)  # 0.1 A, - out
    assert struct.unpack(">i", values[0xD3])[0] == pytest.approx(-700, abs=15)
    assert struct.unpack(">h", values[0xD5])[0] == pytest.approx(350, abs=2)
    assert rig.soc() < soc


def test_a_fixed_amount_stops_by_itself_and_says_so(rig: Rig) -> None:
    c = rig.client
    start_discharge(c, 20, amount_wh=50)
    rig.h.advance(3600.0)
    assert abs(rig.true_current()) < 0.01
    assert c.get(0xDA) == (0x72, {0xDA: b"\x44"})
    assert {0xDA: b"\x44"} in c.inf
    _, values = c.get(0xD6)
    discharged_wh = struct.unpack(">I", values[0xD6])[0]  # 0.001 kWh = 1 Wh
    assert discharged_wh == pytest.approx(50, abs=2)


def test_unplugging_stops_at_once_and_announces_it(rig: Rig) -> None:
    c = rig.client
    start_discharge(c, 20)
    rig.h.advance(10.0)
    rig.h.call(lambda: rig.model.fault("unplug", {}))
    rig.h.advance(1.0)
    assert abs(rig.true_current()) < 0.01
    assert c.get(0xC7, 0xDA) == (0x72, {0xC7: b"\x30", 0xDA: b"\x44"})
    assert {0xC7: b"\x30", 0xDA: b"\x44"} in c.inf  # one INF with both
    assert c.setc((0xDA, b"\x43"))[0] == 0x51  # no car, no discharge
    rig.h.call(lambda: rig.model.set_value("plugged", True))
    assert c.get(0xC7)[0] == 0x52  # a new car: check again first


def test_replies_go_to_each_requester_and_junk_gets_silence(rig: Rig) -> None:
    other = Client(rig.port)
    try:
        assert other.get(0x80)[0] == 0x72
        assert rig.client.get(0x80)[0] == 0x72
        good = frame(9, 0x62, (0x80, b""))
        assert rig.client.silent(b"\x10\x82" + good[2:])  # wrong EHD2
        assert rig.client.silent(good[:-1])  # truncated
        assert rig.client.silent(good[:7] + b"\x02\x88\x01" + good[10:])  # an object not held
        assert rig.client.silent(good[:10] + b"\x72" + good[11:])  # a reply is no request
    finally:
        other.close()


# ---- the driver against the emulated unit ---------------------------------------------


@pytest.fixture
def driver(rig: Rig) -> Iterator[EchonetV2h]:
    dev = EchonetV2h.open(f"echonet://{HOST}:{rig.port}/027E01", name=KEY, timeout=2.0)
    try:
        yield dev
    finally:
        dev.close()


def test_driver_identifies_and_measures(rig: Rig, driver: EchonetV2h) -> None:
    ident = driver.probe()
    assert ident.vendor == "ECHONET maker 0xFFFFFF"
    assert ident.serial == rig.model.serial and ident.model == "PP2P-V2H-EMU"
    reading = driver.measure()
    assert reading.mode is EvMode.STANDBY and reading.connection is None
    assert driver.confirm_connection() is EvConnection.BOTH


def test_driver_charges_and_reads_its_own_sign(rig: Rig, driver: EchonetV2h) -> None:
    driver.power_on()
    driver.confirm_connection()
    driver.start(1.5, charge=True)
    rig.h.advance(60.0)
    reading = driver.measure()
    assert reading.mode is EvMode.CHARGE
    assert reading.current == pytest.approx(-1.5, abs=0.05)  # drawn from the bus
    assert rig.true_current() == pytest.approx(-1.5, abs=0.02)
    driver.set_level(1.0, charge=True)
    rig.h.advance(10.0)
    assert rig.true_current() == pytest.approx(-1.0, abs=0.02)
    driver.standby()
    rig.h.advance(1.0)
    assert abs(rig.true_current()) < 0.01
    notes = driver.notices()
    assert [(n.epc, n.value) for n in notes if n.epc == 0xDA] == [
        (0xDA, "charge"),
        (0xDA, "standby"),
    ]


def test_driver_names_a_refused_property_and_its_value(driver: EchonetV2h) -> None:
    driver.power_on()
    with pytest.raises(InstrumentReportedError, match=r"0xDA \(operation mode\) = 67"):
        driver.set((0xDA, EvMode.DISCHARGE))  # no connection check yet
    with pytest.raises(ConfigError, match=r"0xEE.*nothing sent"):
        driver.set((0xEE, -1.0))


def test_driver_retries_then_times_out_on_a_silent_unit(rig: Rig) -> None:
    dev = EchonetV2h.open(f"echonet://{HOST}:{rig.port}/027E01", name=KEY, timeout=0.3, retries=2)
    try:
        rig.h.call(lambda: rig.h.faults[KEY].disconnect(600.0))
        with pytest.raises(InstrumentTimeout, match="2 attempt"):
            dev.measure()
        rig.h.call(rig.h.faults[KEY].clear)
        assert dev.measure().on
    finally:
        dev.close()


@pytest.mark.parametrize(
    "resource",
    [
        "echonet://127.0.0.2",
        "echonet://224.0.23.0/027E01",
        "socket://1.2.3.4:5",
        "echonet://h/0287",
    ],
)
def test_bad_resources_are_refused_clearly(resource: str) -> None:
    with pytest.raises(ConfigError, match=r"echonet|EOJ|multicast|six hex"):
        EchonetV2h(resource)


def test_a_resource_of_another_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="not an EV charger"):
        EchonetV2h("echonet://127.0.0.2/028701")


def test_real_timing_holds_replies_for_the_instruments_processing_time(rig: Rig) -> None:
    port = rig.h.serve_udp(rig.model, host=HOST, timing=True)
    timed = rig.h.udp_servers[-1].timing
    assert timed is not None and timed.command is not None  # the ratings file's [timing]
    client = Client(port)
    try:
        assert client.get(0x80)[0] == 0x72
        assert client.setc((0xCD, b"\x10"))[0] == 0x71
    finally:
        client.close()
    account = rig.h.call(lambda: timed.account.as_dict())
    assert account["commands"] == {"read": 1, "write": 1}
    expected = timed.command.read_s + timed.command.write_s
    assert account["busy_s"] == pytest.approx(expected)
