"""Replays of what APIS's own device service sends, against the emulated battery and converter.

Source read: SonyCSL/apis-dcdc_batt_comm at commit c030429a8b584caa93e2024edb255e3e4215f230.
Only facts are carried over (function codes, addresses, counts, unit ids, frame bytes, the
order of commands and how replies are decoded); the requests are built here with a plain
pymodbus client and ``struct``, not with our drivers or codecs, so that a mistake shared by
our driver and our emulator cannot hide.

- Battery: ``drivers/dcdc_batt_comm.yml`` (unit 1, registers 30030/30031),
  ``drivers/essx_server.py`` ``init_controller`` (wire = number - 30001),
  ``drivers/battery_emulator/__init__.py`` ``check_battery`` (with ``T = 0`` it sends
  ``read_input_registers(29, 2)`` then, from ``remote_status``, ``read_input_registers(30, 1)``;
  ``bos = 0 if status & 1 else 3``, ``rsoc = register / 10``) and
  ``drivers/essx/essx_modbus.py``'s self-test (``read_input_registers(0, 31)`` then
  ``(29, 2)``, version 0x3031 0x3030 0x3030 at 0-2, "HE" at 9).
- Converter: ``drivers/essx/essx_type_oes.py`` ``remote_set`` (from WAIT: 0x1A, 0x1C, 0x00,
  then reads 0x01, 0x12, 0x09; otherwise the mode 0x00 first), ``remote_set_current`` (0x1C,
  0x09), ``remote_set_voltage`` (0x1A, 0x09), ``run`` (62 ms after each reply);
  ``drivers/essx_server.py`` ``cmd_get_remote_set`` (the "from WAIT" order is chosen by
  comparing the last reply's mode *name* with ``'0x0000'``, so only a service's first
  ``/dcdc/set`` goes voltage first; later ones go mode first even from WAIT);
  ``drivers/eza2500/command*.py`` and ``c*.yml`` (``pack("<BBBBB…", 0x05, LEN, AD1, AD2,
  CMD, …)``, checksum over ``data[2:-2]`` low byte first, ``raw = int(2**Q * value /
  rating)``); ``drivers/dcdc_batt_comm.yml`` (AD1 0, AD2 16, cib 52, ubv 40, ugv 300,
  obv 59, ogv 400).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import serial
from plant_servers import PlantServers, bus_node, context, emulated_bench, modbus_client

from instruments.emulation.models.apis_bms import ApisBmsModel
from instruments.emulation.models.eza2500 import Eza2500Model
from instruments.emulation.plant import NodeSpec

TIMEOUT_S = 5.0
APIS_PACING_S = 0.062
AD1, AD2 = 0, 16
LIMITS = {"cib": 52, "ubv": 40, "ugv": 300, "obv": 59, "ogv": 400}
WAIT, DISCHARGE, VOLTAGE_REFERENCE = 0x0000, 0x0002, 0x0014


@dataclass
class Rig:
    """E001 and E002 (converter + BMS each) on one bus, every instrument on loopback TCP."""

    h: PlantServers
    converter_ports: dict[str, int]
    bms_ports: dict[str, int]
    bms: dict[str, ApisBmsModel]


@pytest.fixture
def rig() -> Iterator[Rig]:
    bench = emulated_bench()
    units = ("E001", "E002")
    conv = {u: context(bench, u, "eza2500") for u in units}
    bms = {u: context(bench, u, "apis_bms") for u in units}
    nodes = [bus_node(), *(NodeSpec(name=c.battery_node) for c in conv.values())]
    specs = [
        *(spec for c in conv.values() for spec in Eza2500Model.port_specs(c)),
        *(spec for c in bms.values() for spec in ApisBmsModel.port_specs(c)),
    ]
    with PlantServers(nodes, specs) as h:
        converters = {u: h.add(Eza2500Model, conv[u]) for u in units}
        bms_models = {u: h.add(ApisBmsModel, bms[u]) for u in units}
        yield Rig(
            h,
            {u: h.serve_tcp(m) for u, m in converters.items()},
            {u: h.serve_tcp(m) for u, m in bms_models.items()},
            bms_models,
        )


# ---- the battery ---------------------------------------------------------------------


def apis_check_battery(client: Any) -> tuple[float, int]:
    """``check_battery``'s two requests and its decoding: (rsoc %, battery_operation_status)."""
    both = client.read_input_registers(30030 - 30001, count=2, device_id=1)
    assert not both.isError(), both
    status = client.read_input_registers(30031 - 30001, count=1, device_id=1)
    assert not status.isError(), status
    assert status.registers[0] == both.registers[1]
    bos = 0 if status.registers[0] & 0x1 == 1 else 3
    return both.registers[0] / 10.0, bos


def test_apis_battery_reads_replayed_against_the_emulated_bms(rig: Rig) -> None:
    with modbus_client(rig.bms_ports["E001"], rtu=True) as client:
        block = client.read_input_registers(0, count=31, device_id=1)
        assert not block.isError(), block
        regs = block.registers
        assert regs[30001 - 30001 : 30004 - 30001] == [0x3031, 0x3030, 0x3030]
        assert regs[30010 - 30001] == ord("H") * 256 + ord("E")
        assert regs[30030 - 30001] / 10.0 == pytest.approx(30.0)  # E001 starts at SoC 0.30

        assert apis_check_battery(client) == (pytest.approx(30.0), 3)
        rig.h.call(lambda: rig.bms["E001"].fault("permission", {}))
        assert apis_check_battery(client) == (pytest.approx(30.0), 0)
        rig.h.call(rig.bms["E001"].clear_faults)
        assert apis_check_battery(client) == (pytest.approx(30.0), 3)


# ---- the converter -------------------------------------------------------------------


def q(value: str | int, bits: int, rating: str) -> int:
    """APIS's fixed point: ``int(2**Q * value / rating)`` in Decimal (truncating)."""
    return int((2**bits) * Decimal(value) / Decimal(rating))


def request(cmd: int, fmt: str = "", *words: int) -> bytes:
    """A request frame as APIS packs it: 05 LEN AD1 AD2 CMD words… CKS_lo CKS_hi."""
    body = struct.pack("<BBBBB" + fmt, 0x05, struct.calcsize("<" + fmt), AD1, AD2, cmd, *words)
    checksum = sum(body[2:]) % 65536
    return body + bytes((checksum % 256, checksum // 256))


def reply(line: serial.SerialBase, cmd: int) -> bytes:
    """The ACK to ``cmd`` (start 0x02, LEN, AD1, AD2, CMD, payload, 2-byte checksum)."""
    head = line.read(5)
    assert len(head) == 5, f"no reply to 0x{cmd:02X}"
    start, length, _, _, got = head
    rest = line.read(length + 2)
    assert start == 0x02 and len(rest) == length + 2
    assert got == cmd, f"0x{cmd:02X} answered 0x{got:02X} (NAK {rest[:2].hex()})"
    checksum = sum(head[2:]) + sum(rest[:-2])
    assert rest[-2:] == bytes((checksum % 256, (checksum // 256) % 256))
    return rest[:-2]


class ApisService:
    """One unit's converter line, driven in the exact order of APIS's device service."""

    def __init__(self, h: PlantServers, port: int) -> None:
        self.h = h
        self.line = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=TIMEOUT_S)
        self.first_set = True  # ``_global_current_mode`` starts as '0x0000'

    def run(self, frame: bytes) -> bytes:
        """``essx_type_oes.run``: send, read the reply, then APIS waits 62 ms."""
        self.line.write(frame)
        payload = reply(self.line, frame[4])
        if len(frame) > 7:
            assert payload == frame[5:-2], "a write's ACK echoes what was set"
        self.h.advance(APIS_PACING_S)
        return payload

    def voltage(self, dvg: str, drg: str) -> bytes:
        return request(0x1A, "HH", q(dvg, 14, "380"), q(drg, 13, "1"))

    def limits(self, dig: str) -> bytes:
        words = (
            q(LIMITS["cib"], 13, "52.08"),
            q(dig, 13, "7.8125"),
            q(LIMITS["ubv"], 14, "48"),
            q(LIMITS["ugv"], 14, "380"),
            q(LIMITS["obv"], 14, "48"),
            q(LIMITS["ogv"], 14, "380"),
        )
        return request(0x1C, "HHHHHH", *words)

    def meters(self) -> dict[str, float]:
        """0x09, decoded as ``command1001.py`` (signed words; vg Q14/380, ig Q13/7.8125)."""
        vg, ig, _vb, _ib, _wg, _wb, _ic, _tmp = struct.unpack("<8h", self.run(request(0x09)))
        return {"vg": vg * 380 / 2**14, "ig": ig * 7.8125 / 2**13}

    def dcdc_set(self, mode: int, dvg: str, dig: str, drg: str = "0") -> dict[str, float]:
        """``/dcdc/set?mode=…&dvg=…&dig=…&drg=…`` → ``remote_set``."""
        mode_frame = request(0x00, "H", mode)
        if self.first_set:
            order = [self.voltage(dvg, drg), self.limits(dig), mode_frame]
        else:
            order = [mode_frame, self.voltage(dvg, drg), self.limits(dig)]
        self.first_set = False
        for frame in order:
            self.run(frame)
        self.run(request(0x01))
        self.run(request(0x12))
        return self.meters()

    def set_current(self, dig: str) -> dict[str, float]:
        """``/dcdc/set?dig=…`` → ``remote_set_current``: 0x1C, then 0x09."""
        self.run(self.limits(dig))
        return self.meters()

    def set_voltage(self, dvg: str, drg: str = "0") -> dict[str, float]:
        """``/dcdc/set?dvg=…`` → ``remote_set_voltage``: 0x1A, then 0x09."""
        self.run(self.voltage(dvg, drg))
        return self.meters()

    def mode(self) -> int:
        (mode,) = struct.unpack("<H", self.run(request(0x00)))
        return int(mode)

    def close(self) -> None:
        self.line.close()


def test_apis_converter_frames_replayed_against_the_emulated_eza2500(rig: Rig) -> None:
    vr = ApisService(rig.h, rig.converter_ports["E001"])
    cc = ApisService(rig.h, rig.converter_ports["E002"])
    try:
        vr.dcdc_set(VOLTAGE_REFERENCE, dvg="350", dig="2.3")
        rig.h.advance(5.0)
        assert vr.mode() == VOLTAGE_REFERENCE
        assert vr.meters()["vg"] == pytest.approx(350.0, abs=0.5)

        cc.dcdc_set(DISCHARGE, dvg="350", dig="1")
        rig.h.advance(5.0)
        bleed = 350.0 / 10_000.0
        assert cc.meters()["ig"] == pytest.approx(-1.0, abs=0.03)  # APIS: < 0 discharging
        assert vr.meters()["ig"] == pytest.approx(1.0 - bleed, abs=0.03)

        cc.set_current("2")
        rig.h.advance(1.0)
        assert cc.meters()["ig"] == pytest.approx(-2.0, abs=0.03)
        assert vr.meters()["ig"] == pytest.approx(2.0 - bleed, abs=0.03)

        cc.dcdc_set(WAIT, dvg="350", dig="0")  # a later set: mode first
        rig.h.advance(1.0)
        assert cc.mode() == WAIT
        assert abs(cc.meters()["ig"]) <= 0.125
        vr.set_voltage("310")
        rig.h.advance(5.0)
        assert vr.meters()["vg"] == pytest.approx(310.0, abs=0.5)
        vr.dcdc_set(WAIT, dvg="310", dig="0")
        assert vr.mode() == WAIT
    finally:
        vr.close()
        cc.close()
