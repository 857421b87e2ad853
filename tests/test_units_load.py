"""LoadUnit (Chroma 63200A on the bus): sink only, bus sign convention, safe_off."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import SimClock
from hil.controller import CurrentController, Mode
from hil.envelope import UnitEnvelope
from hil.errors import CapabilityError, CommunicationError, EnvelopeError, MalformedReply
from hil.units import LoadUnit
from instruments.base import Rating
from instruments.chroma63200a import Chroma63200A
from instruments.connection import ScpiConnection
from instruments.scripted import ScriptedVisaResource, VisaStep, query, write

RESOURCE = "TCPIP0::127.0.0.1::2101::SOCKET"
READ = "MEAS:VOLT?;:MEAS:CURR?;:LOAD?;:STAT:CHAN:COND?;:MODE?"


def envelope() -> UnitEnvelope:
    return UnitEnvelope(
        "LOAD1",
        voltage_min=300.0,
        voltage_max=380.0,
        current_source_max=0.0,
        current_sink_max=2.3,
        power_max=900.0,
        slew_max=10.0,
        can_source=False,
    )


def make(*steps: VisaStep) -> tuple[LoadUnit, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    opened = []

    def opener() -> ScriptedVisaResource:
        opened.append(1)
        if len(opened) > 1:
            raise CommunicationError("cannot connect: refused", resource=RESOURCE)
        return resource

    connection = ScpiConnection(RESOURCE, timeout=1.0, opener=opener)
    load = Chroma63200A(connection, rating=Rating(600.0, 210.0, 6000.0), name="LOAD1.load")
    unit = LoadUnit("LOAD1", load, envelope(), SimClock(lambda s: s, start=3.0))
    return unit, resource


def test_it_is_a_sink_only_current_controller() -> None:
    unit, _ = make()
    assert isinstance(unit, CurrentController)
    caps = unit.capabilities
    assert caps.can_sink and not caps.can_source and not caps.can_hold_voltage
    assert caps.sink_current_max == 210.0


def test_negative_current_sinks_in_cc_and_ramp_steps_send_only_the_level() -> None:
    unit, resource = make(
        write("MODE CCH"),
        write("CURR:STAT:L1 2"),
        write("LOAD ON"),
        write("CURR:STAT:L1 1.5"),
        write("CURR:STAT:L1 0"),
    )
    unit.set_current(-2.0)
    unit.set_current(-1.5)
    unit.set_current(0.0)
    resource.assert_done()


def test_sourcing_is_refused_before_anything_is_sent() -> None:
    unit, resource = make()
    with pytest.raises(CapabilityError, match=r"LOAD1.*\+1 A.*only sink"):
        unit.set_current(1.0)
    assert resource.log == []


def test_a_load_is_not_a_voltage_reference() -> None:
    unit, resource = make()
    with pytest.raises(CapabilityError, match="cannot hold the bus voltage"):
        unit.hold_voltage(350.0, 1.0)
    assert resource.log == []


def test_idle_and_arm_sequences() -> None:
    unit, resource = make(
        write("LOAD OFF"),
        write("CURR:STAT:L1 0"),
        write("LOAD OFF"),
        write("MODE CCH"),
        write("CURR:STAT:L1 0"),
        write("CONF:VOLT:ON 300"),
    )
    unit.idle()
    unit.arm()
    resource.assert_done()


def test_read_turns_sunk_current_negative() -> None:
    unit, resource = make(
        write("MODE CCH"),
        write("CURR:STAT:L1 2"),
        write("LOAD ON"),
        query(READ, "350.1;2.001;1;0;CCH"),
    )
    unit.set_current(-2.0)
    reading = unit.read()
    resource.assert_done()
    assert reading.bus_current == pytest.approx(-2.001)
    assert reading.bus_voltage == pytest.approx(350.1)
    assert reading.mode is Mode.CURRENT and reading.setpoint == -2.0
    assert reading.t == 3.0


def test_read_reports_protection_and_off_state() -> None:
    unit, _ = make(query(READ, "0;0;0;5;CCH"), query(READ, "350;0;0;0;CCH"))
    tripped = unit.read()
    assert tripped.mode is Mode.FAULT and tripped.flags == {"OTP", "OCP"}
    assert unit.read().mode is Mode.IDLE


def test_read_refuses_an_unknown_mode_word() -> None:
    unit, _ = make(query(READ, "350;0;1;0;XYZ"))
    with pytest.raises(MalformedReply, match="XYZ"):
        unit.read()


def test_safe_off_on_a_dead_line_reports_and_returns() -> None:
    unit, _ = make(VisaStep("write", "LOAD OFF", OSError("connection reset")))
    failures = unit.safe_off()
    assert failures[0].startswith("LOAD1: chroma63200a LOAD1.load could not be sent LOAD OFF")
    assert len(failures) == 2


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=1e-9, allow_nan=False),
        st.floats(max_value=-2.3000001, allow_infinity=True, allow_nan=False),
        st.just(math.nan),
    )
)
def test_set_points_outside_the_envelope_never_reach_the_wire(amps: float) -> None:
    unit, resource = make()
    with pytest.raises(EnvelopeError):
        unit.set_current(amps)
    assert resource.log == []


def test_status_bits_that_are_not_trips_leave_the_mode_alone() -> None:
    unit, _ = make(query(READ, "350;2;1;32;CCH"), query(READ, "350;0;0;16;CCH"))
    synced = unit.read()
    assert synced.mode is Mode.CURRENT and synced.flags == frozenset()
    reversed_input = unit.read()
    assert reversed_input.mode is Mode.FAULT and reversed_input.flags == {"REV"}
