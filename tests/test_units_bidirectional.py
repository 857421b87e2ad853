"""Bidirectional units: ITECH IT6000C (SCPI) and EA PSB 10000 (ModBus), scripted."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import SimClock
from hil.controller import CurrentController, Mode
from hil.envelope import UnitEnvelope
from hil.errors import CommunicationError, EnvelopeError, InstrumentReportedError
from hil.units import BidirectionalBattery, BidirectionalUnit, NodeLevels, Part
from instruments.base import Rating
from instruments.connection import ModbusConnection, ScpiConnection
from instruments.it6000c import IT6000C
from instruments.psb10000 import FULL_SCALE, SET_CAP, Psb10000, PsbState, to_raw
from instruments.scripted import (
    ModbusStep,
    ScriptedModbusClient,
    ScriptedVisaResource,
    VisaStep,
    modbus,
    query,
    write,
)

SCPI = "TCPIP0::127.0.0.1::30000::SOCKET"
READ = "MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:FUNC?;:STAT:QUES:COND?"
PSB_RATING = Rating(500.0, 180.0, 30000.0)


def envelope(unit_id: str) -> UnitEnvelope:
    return UnitEnvelope(
        unit_id,
        voltage_min=300.0,
        voltage_max=380.0,
        current_source_max=2.3,
        current_sink_max=2.3,
        power_max=900.0,
        slew_max=10.0,
    )


def make_itech(*steps: VisaStep) -> tuple[BidirectionalUnit, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(SCPI, timeout=1.0, opener=lambda: resource)
    supply = IT6000C(connection, rating=Rating(500.0, 40.0, 6000.0), name="BID1.bidirectional")
    return BidirectionalUnit("BID1", supply, envelope("BID1"), SimClock(lambda s: s)), resource


def make_psb(
    *steps: ModbusStep, reopen: bool = True, env: UnitEnvelope | None = None
) -> tuple[BidirectionalUnit, ScriptedModbusClient]:
    """A PSB unit on a scripted client; with ``reopen=False`` every reconnect is refused."""
    client = ScriptedModbusClient(steps)
    opened: list[int] = []

    def factory() -> ScriptedModbusClient:
        opened.append(1)
        if len(opened) > 1 and not reopen:
            raise CommunicationError("cannot connect: refused", resource="127.0.0.1:502")
        return client

    connection = ModbusConnection("127.0.0.1:502", client_factory=factory)
    psb = Psb10000(connection, device_id=0, rating=PSB_RATING, name="BID2.bidirectional")
    unit = BidirectionalUnit("BID2", psb, env or envelope("BID2"), SimClock(lambda s: s))
    return unit, client


def reg(address: int, volts_or_amps: float, nominal: float) -> ModbusStep:
    return modbus("write_register", address, to_raw(volts_or_amps, nominal, SET_CAP), device_id=0)


# -- IT6000C --------------------------------------------------------------------------


def test_itech_is_a_bidirectional_current_controller() -> None:
    unit, _ = make_itech()
    assert isinstance(unit, CurrentController)
    caps = unit.capabilities
    assert caps.can_source and caps.can_sink and caps.can_hold_voltage


def test_itech_current_in_cc_priority_with_a_voltage_window() -> None:
    unit, resource = make_itech(
        write("FUNC CURR"),
        query("FUNC?", "CURR"),
        write("VOLT:LIM 380"),
        query("FUNC?", "CURR"),
        write("VOLT:LIM:NEG 300"),
        write("CURR 1.5"),
        write("OUTP ON"),
        write("CURR -1"),
    )
    unit.set_current(1.5)
    unit.set_current(-1.0)
    resource.assert_done()


def test_itech_voltage_reference_in_cv_priority() -> None:
    unit, resource = make_itech(
        write("FUNC VOLT"),
        query("FUNC?", "VOLT"),
        write("CURR:LIM 2"),
        query("FUNC?", "VOLT"),
        write("CURR:LIM:NEG -2"),
        write("VOLT 350"),
        write("OUTP ON"),
    )
    unit.hold_voltage(350.0, 2.0)
    resource.assert_done()
    assert unit.commanded_mode is Mode.VOLTAGE_REFERENCE


def test_itech_arm_programmes_protections_and_power_limits() -> None:
    unit, resource = make_itech(
        write("SYST:REM"),
        write("OUTP OFF"),
        write("FUNC:MODE FIX"),
        write("VOLT:PROT 399"),
        write("VOLT:PROT:STAT ON"),
        write("CURR:PROT 2.53"),
        write("CURR:PROT:STAT ON"),
        write("POW:LIM 900"),
        write("POW:LIM:NEG -900"),
        write("POW:PROT 990"),
        write("POW:PROT:STAT ON"),
    )
    unit.arm()
    resource.assert_done()


def test_itech_read_keeps_its_sign_which_is_the_bus_convention() -> None:
    unit, _ = make_itech(
        query(READ, "3.501E+02;-1.2E+00;1;CURRent;0"),
        query(READ, "350;0.3;1;VOLTage;0"),
        query(READ, "0;0;0;CURR;0"),
    )
    sinking = unit.read()
    assert sinking.bus_current == pytest.approx(-1.2) and sinking.mode is Mode.CURRENT
    assert unit.read().mode is Mode.VOLTAGE_REFERENCE
    assert unit.read().mode is Mode.IDLE


def test_itech_read_decodes_the_questionable_bits() -> None:
    unit, _ = make_itech(
        query(READ, "350;0;0;CURRent;4"),
        query(READ, "350;0;0;CURRent;8192"),
        query(READ, "350;0.5;1;CURRent;1024"),
    )
    over_current = unit.read()
    assert over_current.mode is Mode.FAULT and over_current.flags == {"OCP"}
    watchdog = unit.read()
    assert watchdog.mode is Mode.FAULT and watchdog.flags == {"PROT"}
    reversed_sense = unit.read()
    assert reversed_sense.mode is Mode.CURRENT and reversed_sense.flags == {"REV"}


def test_itech_safe_off_switches_the_output_off() -> None:
    unit, resource = make_itech(write("OUTP OFF"))
    assert unit.safe_off() == []
    resource.assert_done()


# -- PSB 10000 -------------------------------------------------------------------------


def test_psb_sources_with_u_at_the_window_top_and_sinks_with_u_at_the_bottom() -> None:
    unit, client = make_psb(
        reg(499, 0.0, 180.0),
        reg(500, 380.0, 500.0),
        reg(501, 1.0, 180.0),
        modbus("write_coil", 405, True, device_id=0),
        reg(501, 1.5, 180.0),
        reg(501, 0.0, 180.0),
        reg(500, 300.0, 500.0),
        reg(499, 1.0, 180.0),
        reg(499, 2.0, 180.0),
    )
    unit.set_current(1.0)
    unit.set_current(1.5)  # a ramp step: one register
    unit.set_current(-1.0)  # direction change: source off, U low, then sink
    unit.set_current(-2.0)
    client.assert_done()


def test_psb_voltage_reference_and_idle() -> None:
    unit, client = make_psb(
        reg(501, 2.0, 180.0),
        reg(499, 2.0, 180.0),
        reg(500, 350.0, 500.0),
        modbus("write_coil", 405, True, device_id=0),
        modbus("write_coil", 405, False, device_id=0),
        reg(501, 0.0, 180.0),
        reg(499, 0.0, 180.0),
    )
    unit.hold_voltage(350.0, 2.0)
    unit.idle()
    client.assert_done()


def test_psb_arm_programmes_protection_registers() -> None:
    """Source OCP/OPP at 553/556 and sink OCP/OPP at 569/570, each from its own limit."""
    unit, client = make_psb(
        modbus("write_coil", 402, True, device_id=0),
        modbus("write_coil", 405, False, device_id=0),
        modbus("write_coil", 409, False, device_id=0),
        reg(502, 900.0, 30000.0),
        reg(498, 900.0, 30000.0),
        modbus("write_register", 550, round(399.0 / 500.0 * FULL_SCALE), device_id=0),
        modbus("write_register", 553, round(2.53 / 180.0 * FULL_SCALE), device_id=0),
        modbus("write_register", 556, round(990.0 / 30000.0 * FULL_SCALE), device_id=0),
        modbus("write_register", 569, round(1.65 / 180.0 * FULL_SCALE), device_id=0),
        modbus("write_register", 570, round(990.0 / 30000.0 * FULL_SCALE), device_id=0),
        reg(501, 0.0, 180.0),
        reg(499, 0.0, 180.0),
        env=dataclasses.replace(envelope("BID2"), current_sink_max=1.5),
    )
    unit.arm()
    client.assert_done()


def state_words(state: PsbState, regulation: int) -> list[int]:
    value = int(state) | (regulation << 9)
    return [value >> 16, value & 0xFFFF]


def test_psb_read_signs_sink_current_negative() -> None:
    sinking = state_words(PsbState.OUTPUT_ON | PsbState.SINK, 2)
    tripped = state_words(PsbState.OVP, 0)
    volts = to_raw(350.0, 500.0, SET_CAP)
    amps = to_raw(1.0, 180.0, SET_CAP)
    unit, client = make_psb(
        modbus("read_holding_registers", 505, 5, device_id=0, reply=[*sinking, volts, amps, 0]),
        modbus("read_holding_registers", 505, 5, device_id=0, reply=[*tripped, 0, 0, 0]),
    )
    reading = unit.read()
    assert reading.bus_current == pytest.approx(-1.0, abs=0.01)
    assert reading.bus_voltage == pytest.approx(350.0, abs=0.01)
    assert reading.mode is Mode.CURRENT
    fault = unit.read()
    assert fault.mode is Mode.FAULT and fault.flags == {"OVP"}
    client.assert_done()


def test_psb_safe_off_on_a_dead_connection_reports_each_step() -> None:
    unit, _ = make_psb(
        modbus("write_coil", 405, False, device_id=0, reply=ConnectionError("reset by peer")),
        reopen=False,
    )
    failures = unit.safe_off()
    assert len(failures) == 2
    assert failures[0].startswith("BID2: psb10000 BID2.bidirectional could not be sent output")
    assert "refused" in failures[0]
    assert "I = 0, sink I = 0" in failures[1]


def test_psb_after_a_failure_everything_is_programmed_again() -> None:
    unit, client = make_psb(
        reg(499, 0.0, 180.0),
        reg(500, 380.0, 500.0),
        reg(501, 1.0, 180.0),
        modbus("write_coil", 405, True, device_id=0, reply=("exception", 4)),
        reg(499, 0.0, 180.0),
        reg(500, 380.0, 500.0),
        reg(501, 1.0, 180.0),
        modbus("write_coil", 405, True, device_id=0),
    )
    with pytest.raises(InstrumentReportedError, match="Modbus exception 4"):
        unit.set_current(1.0)
    unit.set_current(1.0)
    client.assert_done()


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=2.3000001, allow_nan=False),
        st.floats(max_value=-2.3000001, allow_nan=False),
        st.just(math.nan),
        st.just(math.inf),
    )
)
def test_set_points_outside_the_envelope_never_reach_either_wire(amps: float) -> None:
    itech, resource = make_itech()
    psb, client = make_psb()
    with pytest.raises(EnvelopeError):
        itech.set_current(amps)
    with pytest.raises(EnvelopeError):
        psb.set_current(amps)
    assert resource.log == [] and client.log == []


def test_itech_battery_node_reports_its_questionable_bits() -> None:
    unit, resource = make_itech(
        query("OUTP?;:STAT:QUES:COND?", "0;1"),
        query("OUTP?;:STAT:QUES:COND?", "1;0"),
    )
    battery = BidirectionalBattery(
        envelope("BID1"), Part("BID1", "battery", "it6000c", unit.supply), NodeLevels(48.0, 5.0)
    )
    assert battery.flags() == {"battery.OVP"}
    assert battery.flags() == frozenset()
    resource.assert_done()
