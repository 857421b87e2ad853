"""Scripted command/response tests for the Keysight RP7900 driver (no sockets)."""

from __future__ import annotations

import pytest

from hil.errors import ConfigError, MalformedReply, RatingError
from hil.units.bidirectional import protection_levels
from instruments.base import Rating
from instruments.connection import ScpiConnection
from instruments.rp7900 import RP7900, Priority
from instruments.scripted import ScriptedVisaResource, VisaScript, VisaStep, query, write
from instruments.wire.rp7900 import QuestionableStatus

RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"
RATING = Rating(voltage=500.0, current=40.0, power=10000.0)


def make(*steps: VisaStep, watchdog_s: float = 0.0) -> tuple[RP7900, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, opener=VisaScript(resource))
    supply = RP7900(connection, rating=RATING, name="BID3", watchdog_s=watchdog_s)
    return supply, resource


def test_the_model_name_does_not_give_a_rating() -> None:
    resource = ScriptedVisaResource(())
    connection = ScpiConnection(RESOURCE, opener=VisaScript(resource))
    with pytest.raises(ConfigError, match=r"RP7900 model 'RP7951A': give the rating"):
        RP7900(connection, model="RP7951A")


def test_watchdog_setting_outside_the_guide_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"watchdog_s 4000 is outside 1-3600 s"):
        make(watchdog_s=4000.0)


def test_arm_sequence_with_watchdog_is_pinned() -> None:
    supply, resource = make(
        write("OUTP OFF"),
        write("VOLT:PROT 399"),
        write("POW:LIM 900"),
        write("POW:LIM:NEG -900"),
        write("OUTP:PROT:WDOG:DEL 30"),
        write("OUTP:PROT:WDOG ON"),
        watchdog_s=30.0,
    )
    supply.arm_bidirectional(protection_levels(380.0, 2.3, 2.3, 900.0))
    resource.assert_done()


def test_arm_without_watchdog_switches_it_off() -> None:
    supply, resource = make(
        write("OUTP OFF"),
        write("VOLT:PROT 510"),
        write("POW:LIM 10000"),
        write("POW:LIM:NEG -10000"),
        write("OUTP:PROT:WDOG OFF"),
    )
    supply.arm_bidirectional(protection_levels(600.0, 50.0, 50.0, 20000.0))
    resource.assert_done()


def test_drive_current_then_voltage_sequences_are_pinned() -> None:
    supply, resource = make(
        write("FUNC CURR"),
        write("VOLT:LIM 380"),
        write("VOLT:LIM:NEG 300"),
        write("CURR -2.5"),
        write("OUTP ON"),
        write("CURR 1"),
        write("FUNC VOLT"),
        write("CURR:LIM 2"),
        write("CURR:LIM:NEG -2"),
        write("VOLT 350"),
    )
    supply.drive_current(-2.5, 300.0, 380.0, primed=False, allowed=lambda: None)
    supply.drive_current(1.0, 300.0, 380.0, primed=True, allowed=lambda: None)
    supply.drive_voltage(350.0, 2.0, primed=True, allowed=lambda: None)
    resource.assert_done()


def test_out_of_rating_values_are_refused_before_sending() -> None:
    supply, resource = make()
    with pytest.raises(RatingError):
        supply.current = 41.0
    with pytest.raises(RatingError):
        supply.current_limit_negative = 1.0
    with pytest.raises(RatingError):
        supply.hold_voltage(501.0, 1.0, 1.0)
    resource.assert_done()


def test_measure_decodes_both_status_registers() -> None:
    supply, resource = make(
        query(
            "MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?",
            "+3.50000E+02;-2.00000E+00;1;2;0",
        ),
        query("MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?", "0;0;0;4;2048"),
        query("OUTP?;:STAT:QUES:COND?", "0;1"),
    )
    reading = supply.measure()
    assert (reading.voltage, reading.current, reading.on) == (350.0, -2.0, True)
    assert reading.regulation == "current" and not reading.tripped and not reading.flags
    latched = supply.measure()
    assert latched.tripped and latched.flags == {"PROT"} and latched.regulation is None
    assert supply.output_status().flags == {"OVP"}
    resource.assert_done()


def test_priority_and_status_queries() -> None:
    supply, resource = make(
        query("FUNC?", "VOLT"),
        query("FUNC?", "CURRENT"),
        query("STAT:QUES:COND?", "2049"),
        query("MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:STAT:OPER:COND?;:STAT:QUES:COND?", "x;0;0;0;0"),
    )
    assert supply.priority is Priority.VOLTAGE
    assert supply.priority is Priority.CURRENT
    assert supply.questionable_status() == QuestionableStatus.OV | QuestionableStatus.PROT
    with pytest.raises(MalformedReply):
        supply.measure()
    resource.assert_done()
