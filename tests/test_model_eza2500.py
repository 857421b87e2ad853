"""The emulated EZA-2500 on a plant: the real driver and raw frames over TCP and a pty."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plant_servers import PlantServers, bus_node, context, emulated_bench

from hil.errors import InstrumentReportedError
from instruments.emulation.models.apis_bms import ApisBmsModel
from instruments.emulation.models.eza2500 import (
    FULL_SCALE_CURRENT_A,
    TRIP_ALARM_BITS,
    Eza2500Model,
    droop_ohm,
)
from instruments.emulation.plant import NodeSpec
from instruments.emulation.plant_specs import ConverterMode, TripKind
from instruments.eza2500 import Alarm, Eza2500, Operation
from instruments.wire import eza2500 as eza

TIMEOUT_S = 5.0


@dataclass
class Rig:
    """Two APIS units (E001, E002) on one bus, both converters served on TCP."""

    h: PlantServers
    m1: Eza2500Model
    m2: Eza2500Model
    port1: int
    port2: int
    e1: Eza2500
    e2: Eza2500

    def converter_state(self, key: str) -> tuple[str, float]:
        state = self.h.call(lambda: self.h.plant.state(key))
        return state.mode, state.current

    def soc(self, key: str) -> float:
        return self.h.call(lambda: self.h.plant.battery(key).soc)

    def bus(self) -> float:
        return self.h.call(lambda: self.h.plant.node_voltage("bus"))


@pytest.fixture
def rig() -> Iterator[Rig]:
    bench = emulated_bench()
    conv = {u: context(bench, u, "eza2500") for u in ("E001", "E002")}
    bms = {u: context(bench, u, "apis_bms") for u in ("E001", "E002")}
    nodes = [bus_node(), *(NodeSpec(name=c.battery_node) for c in conv.values())]
    specs = [
        *(spec for c in conv.values() for spec in Eza2500Model.port_specs(c)),
        *(spec for c in bms.values() for spec in ApisBmsModel.port_specs(c)),
    ]
    with PlantServers(nodes, specs) as h:
        m1 = h.add(Eza2500Model, conv["E001"])
        m2 = h.add(Eza2500Model, conv["E002"])
        port1, port2 = h.serve_tcp(m1), h.serve_tcp(m2)
        e1 = Eza2500.open(f"socket://127.0.0.1:{port1}", pacing=0.0, timeout=TIMEOUT_S, name="E001")
        e2 = Eza2500.open(f"socket://127.0.0.1:{port2}", pacing=0.0, timeout=TIMEOUT_S, name="E002")
        try:
            yield Rig(h, m1, m2, port1, port2, e1, e2)
        finally:
            e1.close()
            e2.close()


def raw_line(port: int) -> serial.SerialBase:
    return serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=TIMEOUT_S)


def read_frame(line: serial.SerialBase) -> eza.Frame:
    header = line.read(2)
    assert len(header) == 2, "no reply"
    rest = line.read(eza.frame_length(header[1]) - 2)
    return eza.parse_frame(header + rest)


def test_voltage_reference_holds_the_bus_and_absorbs_a_discharge(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    rig.h.advance(5.0)
    assert rig.bus() == pytest.approx(350.0, abs=0.2)
    assert rig.e1.meters().vg == pytest.approx(350.0, abs=0.5)
    assert rig.e1.mode() is eza.Mode.VOLTAGE_REFERENCE

    rig.e2.apply(mode=eza.Mode.DISCHARGE, dig=2.0)
    rig.h.advance(5.0)
    mode2, i2 = rig.converter_state("E002.converter")
    mode1, i1 = rig.converter_state("E001.converter")
    assert (mode1, mode2) == ("VOLTAGE_REFERENCE", "DISCHARGE")
    assert i2 == pytest.approx(2.0, abs=1e-3)  # pushed into the bus
    bleed = rig.bus() / 10_000.0
    assert i1 == pytest.approx(-(2.0 - bleed), abs=1e-3)  # the reference absorbs the rest
    # The bus sits above dvg (as quantised on the wire) by the drop across E001's cable
    # (branch A + its own line) and its 1 mOhm output resistance.
    dvg = rig.e1.voltage_reference().dvg
    assert rig.bus() == pytest.approx(dvg - i1 * (rig.m1.ctx.line_ohm + 1e-3), abs=1e-3)

    # APIS sign: ig > 0 while charging (the reference takes 2 A in), < 0 while discharging.
    m1, m2 = rig.e1.meters(), rig.e2.meters()
    assert m2.ig == pytest.approx(-2.0, abs=0.02)
    assert m1.ig == pytest.approx(2.0 - bleed, abs=0.03)
    assert m2.ib < 0 < m1.ib
    assert m2.wb < 0 < m1.wb
    assert m2.wg == pytest.approx(m2.vg * m2.ig, rel=2e-3)
    assert 44.0 < m1.vb < 56.0
    assert rig.e2.status().operation is Operation.DISCHARGE
    assert rig.e1.status().operation is Operation.CHARGE


def test_battery_state_of_charge_follows_the_exchange(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    rig.h.advance(3.0)
    rig.e2.apply(mode=eza.Mode.DISCHARGE, dig=2.0)
    rig.h.advance(3.0)
    before1, before2 = rig.soc("E001.battery"), rig.soc("E002.battery")
    rig.h.advance(60.0)
    after1, after2 = rig.soc("E001.battery"), rig.soc("E002.battery")
    assert after2 < before2 and after1 > before1
    # E002 gives ~700 W to the bus plus its 55 W discharge loss: about 12.6 Wh in 60 s.
    assert (before2 - after2) * 4800.0 == pytest.approx((700.0 + 55.0) / 60.0, rel=0.05)
    # E001 takes ~690 W from the bus, less its 71 W charge loss.
    assert (after1 - before1) * 4800.0 == pytest.approx((690.0 - 71.0) / 60.0, rel=0.05)


def test_droop_lowers_the_bus_as_the_reference_sources(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.039, dig=2.3)
    rig.h.advance(3.0)
    rig.e2.apply(mode=eza.Mode.CHARGE, dig=2.0)
    rig.h.advance(5.0)
    _, i1 = rig.converter_state("E001.converter")
    assert i1 > 2.0  # the charging unit's 2 A plus the bleed
    volts = rig.h.call(lambda: rig.h.plant.state("E001.converter").voltage)
    expected_drop = droop_ohm(350.0, 0.039) * i1
    assert expected_drop == pytest.approx(0.039 * 350.0 * i1 / FULL_SCALE_CURRENT_A)
    assert volts == pytest.approx(350.0 - expected_drop, abs=0.02)
    assert rig.e2.meters().ig == pytest.approx(2.0, abs=0.02)


def test_out_of_range_values_are_naked_and_not_applied(rig: Rig) -> None:
    with raw_line(rig.port1) as line:
        line.write(eza.build_write(eza.Command.VOLTAGE_REFERENCE, {"dvg": 400.0, "drg": 0.0}))
        nak = read_frame(line)
        assert nak.is_nak and nak.error_code == eza.ErrorCode.BAD_PARAMETER
        limits = {"cib": 52.0, "dig": 1.0, "ubv": 60.0, "ugv": 300.0, "obv": 59.0, "ogv": 400.0}
        line.write(eza.build_write(eza.Command.LIMITS, limits))
        nak = read_frame(line)
        assert nak.is_nak and nak.error_code == eza.ErrorCode.BAD_PARAMETER
    setpoints = rig.h.call(lambda: rig.h.plant.state("E001.converter").setpoints)
    assert setpoints["voltage_v"] == pytest.approx(350.0)
    assert setpoints["grid_current_a"] == 0.0
    assert rig.e1.limits().ubv == pytest.approx(40.0, abs=0.01)


def test_a_frame_with_a_bad_checksum_is_ignored(rig: Rig) -> None:
    bad = bytearray(eza.build_write(eza.Command.MODE, {"mode": int(eza.Mode.DISCHARGE)}))
    bad[-1] ^= 0x55
    with raw_line(rig.port1) as line:
        line.write(bytes(bad) + eza.build_read(eza.Command.MODE))
        reply = read_frame(line)
    assert not reply.is_nak and reply.command == eza.Command.MODE
    assert eza.decode_payload(eza.Command.MODE, reply.payload)["mode"] == eza.Mode.WAIT
    assert rig.converter_state("E001.converter")[0] == "WAIT"


def test_heavy_alarm_stops_the_converter_until_cleared(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    rig.h.advance(2.0)
    rig.h.call(lambda: rig.m1.fault("alarm", {}))
    assert rig.converter_state("E001.converter")[0] == "WAIT"
    status = rig.e1.status()
    assert status.alarm is Alarm.HEAVY and status.operation is Operation.OFF
    assert rig.e1.mode() is eza.Mode.WAIT
    assert rig.e1.alarms().alm1 == 0x0001
    with pytest.raises(InstrumentReportedError, match="0xFFFD"):
        rig.e1.set_mode(eza.Mode.VOLTAGE_REFERENCE)
    assert rig.converter_state("E001.converter")[0] == "WAIT"

    rig.e1.clear_alarms()
    assert rig.e1.status().alarm is Alarm.NONE
    rig.e1.set_mode(eza.Mode.VOLTAGE_REFERENCE)
    assert rig.converter_state("E001.converter")[0] == "VOLTAGE_REFERENCE"


def test_light_alarm_is_reported_without_stopping(rig: Rig) -> None:
    rig.e2.apply(mode=eza.Mode.CHARGE, dig=1.0)
    rig.h.call(lambda: rig.m2.fault("alarm", {"level": "light", "alm3": 0x0100}))
    status = rig.e2.status()
    assert status.alarm is Alarm.LIGHT and status.operation is Operation.CHARGE
    assert rig.e2.alarms().alm3 == 0x0100
    assert rig.e2.mode() is eza.Mode.CHARGE


def test_protection_trip_shows_as_heavy_alarm(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    rig.h.call(lambda: rig.m1.fault("trip", {"trip": "OTP"}))
    assert rig.e1.status().alarm is Alarm.HEAVY
    assert rig.e1.alarms().alm2 & TRIP_ALARM_BITS[TripKind.OTP]
    assert rig.e1.mode() is eza.Mode.WAIT
    rig.e1.clear_alarms()
    assert rig.h.call(lambda: rig.h.plant.port("E001.converter").trips) == frozenset()


def test_make_safe_reports_wait(rig: Rig) -> None:
    rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    rig.e2.apply(mode=eza.Mode.DISCHARGE, dig=1.5)
    rig.h.advance(2.0)

    def make_safe() -> None:
        rig.h.plant.make_safe()
        for model in (rig.m1, rig.m2):
            model.after_make_safe()

    rig.h.call(make_safe)
    assert rig.e1.mode() is eza.Mode.WAIT and rig.e2.mode() is eza.Mode.WAIT
    assert rig.h.call(lambda: rig.m1.status()["mode"]) == ConverterMode.WAIT.value
    rig.h.advance(2.0)
    assert abs(rig.converter_state("E002.converter")[1]) < 1e-6


def test_driver_over_a_pty() -> None:
    bench = emulated_bench()
    conv, bms = context(bench, "E003", "eza2500"), context(bench, "E003", "apis_bms")
    nodes = [bus_node(), NodeSpec(name=conv.battery_node)]
    specs = [*Eza2500Model.port_specs(conv), *ApisBmsModel.port_specs(bms)]
    with PlantServers(nodes, specs) as h:
        model = h.add(Eza2500Model, conv)
        path = h.serve_pty(model)
        driver = Eza2500.open(path, pacing=0.0, timeout=TIMEOUT_S, name="E003")
        try:
            driver.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=340.0, drg=0.0, dig=2.3)
            h.advance(3.0)
            assert h.call(lambda: h.plant.node_voltage("bus")) == pytest.approx(340.0, abs=0.2)
            assert driver.meters().vg == pytest.approx(340.0, abs=0.5)
            assert driver.status().alarm is Alarm.NONE
        finally:
            driver.close()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(dvg=st.floats(min_value=300.0, max_value=385.0), drg=st.floats(0.0, 0.2))
def test_reference_voltage_property(rig: Rig, dvg: float, drg: float) -> None:
    if rig.e1.mode() is not eza.Mode.VOLTAGE_REFERENCE:
        rig.e1.apply(mode=eza.Mode.VOLTAGE_REFERENCE, dvg=dvg, drg=drg, dig=2.3)
    echo = rig.e1.set_voltage_reference(dvg, drg)
    assert echo.dvg == pytest.approx(dvg, abs=380.0 / 2**14)
    rig.h.advance(3.0)
    # Unloaded but for the bleed resistor: the bus sits at dvg less the droop of ~35 mA.
    sourced = rig.bus() / 10_000.0
    expected = echo.dvg - droop_ohm(echo.dvg, echo.drg) * sourced
    assert rig.bus() == pytest.approx(expected, abs=0.05)
