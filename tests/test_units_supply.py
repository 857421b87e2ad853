"""SupplyUnit (N5700 on the bus): what it sends, what it refuses, how it reads, safe_off."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import SimClock
from hil.controller import CurrentController, Mode
from hil.envelope import UnitEnvelope
from hil.errors import CapabilityError, CommunicationError, EnvelopeError, MalformedReply
from hil.units import SupplyUnit
from instruments.base import Rating
from instruments.connection import ScpiConnection
from instruments.n5700 import N5700
from instruments.scripted import ScriptedVisaResource, VisaStep, query, write

RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"
READ = "MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?"


def envelope() -> UnitEnvelope:
    return UnitEnvelope(
        "SUP1",
        voltage_min=300.0,
        voltage_max=380.0,
        current_source_max=2.3,
        current_sink_max=0.0,
        power_max=900.0,
        slew_max=10.0,
        can_sink=False,
    )


class Opener:
    """Hands out the scripted resource once; every reopen fails like a dead line."""

    def __init__(self, resource: ScriptedVisaResource, reopen: bool = False) -> None:
        self.resource = resource
        self.reopen = reopen
        self.opens = 0

    def __call__(self) -> ScriptedVisaResource:
        self.opens += 1
        if self.opens > 1 and not self.reopen:
            raise CommunicationError("cannot connect: refused", resource=RESOURCE)
        self.resource.closed = False
        return self.resource


def make(
    *steps: VisaStep, reopen: bool = False, safe_off_timeout: float = 5.0
) -> tuple[SupplyUnit, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, timeout=1.0, opener=Opener(resource, reopen))
    psu = N5700(connection, rating=Rating(600.0, 2.6, 1560.0), name="SUP1.supply")
    clock = SimClock(lambda seconds: seconds, start=12.5)
    unit = SupplyUnit("SUP1", psu, envelope(), clock, safe_off_timeout=safe_off_timeout)
    return unit, resource


def test_it_is_a_current_controller_that_sources_only() -> None:
    unit, _ = make()
    assert isinstance(unit, CurrentController)
    caps = unit.capabilities
    assert caps.can_source and not caps.can_sink and caps.can_hold_voltage
    assert caps.source_current_max == 2.6 and caps.sink_current_max == 0.0
    assert not caps.hardware_watchdog


def test_set_current_programmes_compliance_then_only_the_current() -> None:
    unit, resource = make(
        write("CURR 1.5"), write("VOLT 380"), write("OUTP ON"), write("CURR 2"), write("CURR 0")
    )
    unit.set_current(1.5)
    unit.set_current(2.0)
    unit.set_current(0.0)
    resource.assert_done()
    assert unit.commanded_mode is Mode.CURRENT


def test_negative_current_is_refused_before_anything_is_sent() -> None:
    unit, resource = make()
    with pytest.raises(CapabilityError, match=r"SUP1.*-1 A.*only source"):
        unit.set_current(-1.0)
    assert resource.log == []


def test_current_above_the_envelope_names_unit_value_and_limit() -> None:
    unit, resource = make()
    with pytest.raises(EnvelopeError, match=r"unit SUP1.*\+2\.5 A.*2\.3 A.*current_source_max"):
        unit.set_current(2.5)
    assert resource.log == []


def test_hold_voltage_sets_limit_then_voltage() -> None:
    unit, resource = make(
        write("CURR 2"), write("VOLT 350"), write("OUTP ON"), write("CURR 2"), write("VOLT 340")
    )
    unit.hold_voltage(350.0, 2.0)
    unit.hold_voltage(340.0, 2.0)
    resource.assert_done()
    assert unit.commanded_mode is Mode.VOLTAGE_REFERENCE


@pytest.mark.parametrize(
    ("volts", "limit", "droop", "error", "pattern"),
    [
        (390.0, 2.0, 0.0, EnvelopeError, r"390 V.*above.*380 V"),
        (350.0, 0.0, 0.0, EnvelopeError, r"current limit"),
        (350.0, 3.0, 0.0, EnvelopeError, r"2\.3 A"),
        (350.0, 2.0, 0.05, CapabilityError, r"no droop"),
    ],
)
def test_bad_voltage_reference_requests_send_nothing(
    volts: float, limit: float, droop: float, error: type[Exception], pattern: str
) -> None:
    unit, resource = make()
    with pytest.raises(error, match=pattern):
        unit.hold_voltage(volts, limit, droop)
    assert resource.log == []


def test_idle_switches_off_then_zeroes_the_current() -> None:
    unit, resource = make(write("OUTP OFF"), write("CURR 0"))
    unit.idle()
    resource.assert_done()
    assert unit.commanded_mode is Mode.IDLE


def test_arm_programmes_ovp_and_uv_limit_from_the_envelope() -> None:
    unit, resource = make(
        write("OUTP OFF"),
        write("CURR:PROT:STAT OFF"),
        write("VOLT 380"),
        query("VOLT?", "+3.800000E+02"),
        write("VOLT:PROT:LEV 399"),
        query("VOLT?", "+3.800000E+02"),
        write("VOLT:LIM:LOW 300"),
        write("CURR 0"),
    )
    unit.arm()
    resource.assert_done()


def test_read_is_one_compound_query_in_bus_convention() -> None:
    unit, resource = make(
        write("CURR 1.5"),
        write("VOLT 380"),
        write("OUTP ON"),
        query(READ, "+3.502000E+02;+1.498000E+00;1;1024;0"),
    )
    unit.set_current(1.5)
    reading = unit.read()
    resource.assert_done()
    assert reading.unit == "SUP1" and reading.t == 12.5
    assert reading.bus_voltage == pytest.approx(350.2)
    assert reading.bus_current == pytest.approx(1.498)
    assert reading.mode is Mode.CURRENT and reading.setpoint == 1.5
    assert reading.flags == frozenset()


def test_read_reports_a_latched_trip_as_fault_with_flags() -> None:
    unit, _ = make(query(READ, "+0.0E+00;+0.0E+00;0;0;3"))
    reading = unit.read()
    assert reading.mode is Mode.FAULT
    assert reading.flags == {"OVP", "OCP"}


def test_read_in_cv_says_the_supply_holds_the_voltage() -> None:
    unit, _ = make(query(READ, "+3.8E+02;+0.2E+00;1;256;0"))
    assert unit.read().mode is Mode.VOLTAGE_REFERENCE


def test_malformed_compound_reply_names_resource_and_command() -> None:
    unit, _ = make(query(READ, "+3.5E+02;+1.0E+00"))
    with pytest.raises(MalformedReply) as info:
        unit.read()
    assert RESOURCE in str(info.value) and "MEAS:VOLT?;:MEAS:CURR?" in str(info.value)


def test_usable_after_a_dropped_line_and_reconnect() -> None:
    unit, resource = make(
        write("CURR 1"),
        write("VOLT 380"),
        write("OUTP ON"),
        VisaStep("query", READ, OSError("connection reset by peer")),
        write("CURR 1.5"),
        write("VOLT 380"),
        write("OUTP ON"),
        reopen=True,
    )
    unit.set_current(1.0)
    with pytest.raises(CommunicationError, match="connection failed"):
        unit.read()
    unit.reconnect()
    unit.set_current(1.5)  # programmed in full again: the state after a drop is unknown
    resource.assert_done()


def test_safe_off_sends_both_steps_and_is_idempotent() -> None:
    unit, resource = make(write("OUTP OFF"), write("CURR 0"), write("OUTP OFF"), write("CURR 0"))
    assert unit.safe_off() == []
    assert unit.safe_off() == []
    resource.assert_done()
    assert unit.commanded_mode is Mode.IDLE


def test_safe_off_on_a_dead_line_never_raises_and_names_each_failure() -> None:
    unit, _ = make(VisaStep("write", "OUTP OFF", OSError("broken pipe")))
    failures = unit.safe_off()
    assert len(failures) == 2
    assert failures[0].startswith("SUP1: n5700 SUP1.supply could not be sent OUTP OFF")
    assert "CURR 0" in failures[1]
    assert "refused" in failures[0]


def test_safe_off_does_not_ask_a_silent_instrument_twice() -> None:
    import pyvisa

    timeout = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)
    unit, resource = make(VisaStep("write", "OUTP OFF", timeout))
    failures = unit.safe_off()
    assert "did not answer to OUTP OFF" in failures[0]
    assert "was not asked to CURR 0" in failures[1]
    assert resource.sent == ["OUTP OFF"]


class BlockingResource(ScriptedVisaResource):
    """A resource whose writes hang until released (an instrument that never answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, message: str) -> int:
        self.entered.set()
        self.release.wait(30.0)
        return len(message)


def test_safe_off_returns_within_its_bound_when_an_instrument_hangs() -> None:
    resource = BlockingResource()
    connection = ScpiConnection(RESOURCE, timeout=1.0, opener=lambda: resource)
    psu = N5700(connection, rating=Rating(600.0, 2.6, 1560.0), name="SUP1.supply")
    unit = SupplyUnit("SUP1", psu, envelope(), SimClock(lambda s: s), safe_off_timeout=0.2)
    try:
        failures = unit.safe_off()
        assert resource.entered.is_set()
        assert any("did not finish within 0.2 s" in f and "OUTP OFF" in f for f in failures)
    finally:
        resource.release.set()


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False),
        st.floats(min_value=2.3000001, allow_infinity=True, allow_nan=False),
        st.just(math.nan),
    )
)
def test_set_points_outside_the_envelope_never_reach_the_wire(amps: float) -> None:
    unit, resource = make()
    with pytest.raises(EnvelopeError):
        unit.set_current(amps)
    assert resource.log == []
