"""Scripted command/response tests for the ITECH IT6000C driver (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import CapabilityError, MalformedReply, RatingError
from instruments.base import Identity, Rating
from instruments.connection import ScpiConnection
from instruments.it6000c import (
    IT6000C,
    FunctionMode,
    OperationStatus,
    Priority,
    QuestionableStatus,
)
from instruments.scripted import ScriptedVisaResource, VisaScript, VisaStep, query, write

RESOURCE = "ASRLsocket://127.0.0.1:5601::INSTR"


def make(*steps: VisaStep) -> tuple[IT6000C, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, opener=VisaScript(resource))
    return IT6000C(connection, model="IT6006C-500-40", name="E002-bidi"), resource


def test_rating_from_model_name() -> None:
    supply, _ = make()
    assert supply.rating == Rating(voltage=500.0, current=40.0, power=6000.0)


def test_identify() -> None:
    supply, resource = make(
        query("*IDN?", "ITECH Electronics,IT6006C-500-40,800123011797210008,1.03-1.04")
    )
    assert supply.identify() == Identity(
        "ITECH Electronics", "IT6006C-500-40", "800123011797210008", "1.03-1.04"
    )
    resource.assert_done()


def test_source_current_sequence_is_pinned() -> None:
    supply, resource = make(
        write("FUNC CURR"),
        query("FUNC?", "CURR"),
        write("VOLT:LIM 380"),
        write("CURR -2.5"),
    )
    supply.source_current(-2.5, voltage_limit=380.0)
    resource.assert_done()


def test_hold_voltage_sequence_is_pinned() -> None:
    supply, resource = make(
        write("FUNC VOLT"),
        query("FUNC?", "VOLTAGE"),
        write("CURR:LIM 10"),
        query("FUNC?", "VOLT"),
        write("CURR:LIM:NEG -10"),
        write("VOLT 350"),
    )
    supply.hold_voltage(350.0, source_limit=10.0, sink_limit=10.0)
    resource.assert_done()


def test_limit_in_the_wrong_priority_is_refused_before_sending() -> None:
    supply, resource = make(query("FUNC?", "CURR"))
    with pytest.raises(CapabilityError, match="only in VOLTAGE priority"):
        supply.current_limit = 5.0
    assert resource.sent == ["FUNC?"]

    supply, resource = make(query("FUNC?", "VOLT"))
    with pytest.raises(CapabilityError, match="CURRENT priority"):
        supply.voltage_limit = 300.0
    assert resource.sent == ["FUNC?"]


def test_negative_current_limit_must_be_negative() -> None:
    supply, resource = make()
    with pytest.raises(RatingError):
        supply.current_limit_negative = 5.0
    assert resource.log == []


def test_protections_and_misc_commands() -> None:
    supply, resource = make(
        write("SYST:REM"),
        write("FUNC:MODE FIX"),
        write("VOLT:PROT 400"),
        write("VOLT:PROT:STAT ON"),
        write("CURR:PROT 40.4"),
        write("POW:LIM:NEG -6000"),
        write("CURR:SLEW:POS 0.01"),
        write("OUTP:PROT:CLE"),
        write("OUTP OFF"),
        write("SYST:LOC"),
    )
    supply.remote()
    supply.function_mode = FunctionMode.FIXED
    supply.ovp = 400.0
    supply.ovp_enabled = True
    supply.ocp = 40.4
    supply.power_limit_negative = -6000.0
    supply.current_slew_positive = 0.01
    supply.clear_protection()
    supply.output = False
    supply.local()
    resource.assert_done()


def test_read_returns_signed_current() -> None:
    supply, resource = make(
        query("MEAS:VOLT?", "349.98"),
        query("MEAS:CURR?", "-2.003"),
        query("MEAS:POW?", "-701.0"),
        query("OUTP?", "1"),
    )
    reading = supply.read()
    assert reading.current == pytest.approx(-2.003)
    assert reading.power == -701.0
    assert reading.output_on
    resource.assert_done()


def test_priority_reply_that_is_neither_is_malformed() -> None:
    supply, _ = make(query("FUNC?", "RES"))
    with pytest.raises(MalformedReply, match=r"FUNC\?"):
        _ = supply.priority


def test_priority_reads_long_and_short_forms() -> None:
    supply, _ = make(query("FUNC?", "CURRENT"), query("FUNC?", "volt"))
    first, second = supply.priority, supply.priority
    assert (first, second) == (Priority.CURRENT, Priority.VOLTAGE)


@settings(max_examples=60, deadline=None)
@given(amps=st.floats(min_value=-100, max_value=100) | st.sampled_from([-40.0, 40.0, -40.0001]))
def test_never_sends_a_current_outside_its_rating(amps: float) -> None:
    resource = ScriptedVisaResource()
    supply = IT6000C(ScpiConnection(RESOURCE, opener=VisaScript(resource)), model="IT6006C-500-40")
    inside = -40.0 <= amps <= 40.0
    if inside:
        resource.expect(write(f"CURR {format(amps + 0.0, '.10g')}"))
        supply.current = amps
    else:
        with pytest.raises(RatingError):
            supply.current = amps
    resource.assert_done()


def test_protection_levels_above_the_scpi_maxima_are_refused_before_sending() -> None:
    supply, resource = make(
        write("VOLT:PROT 505"),
        write("CURR:PROT 40.4"),
        write("POW:PROT 6120"),
        write("CURR:UND:PROT -40.4"),
    )
    assert supply.protection_maxima() == pytest.approx((505.0, 40.4, 6120.0))
    supply.ovp, supply.ocp, supply.opp, supply.ucp = 505.0, 40.4, 6120.0, -40.4
    for name, value in (("ovp", 505.1), ("ocp", 40.41), ("opp", 6120.1), ("uvp", 505.1)):
        with pytest.raises(RatingError):
            setattr(supply, name, value)
    resource.assert_done()


def test_long_form_replies_of_the_real_unit() -> None:
    supply, resource = make(
        query("FUNC?", "VOLTage"),
        query("FUNC?", "CURRent"),
        query("FUNC:MODE?", "FIXed"),
        query("FUNC:MODE?", "FIX"),
    )
    assert [supply.priority, supply.priority] == [Priority.VOLTAGE, Priority.CURRENT]
    assert [supply.function_mode, supply.function_mode] == [FunctionMode.FIXED] * 2
    resource.assert_done()


def test_status_registers_decode_the_real_bits() -> None:
    supply, resource = make(
        query("STAT:OPER:COND?", "2048"),
        query("STAT:QUES:COND?", "2052"),
    )
    assert supply.operation_status() is OperationStatus.CC_NEG
    assert supply.questionable_status() == QuestionableStatus.OCP_NEG | QuestionableStatus.INHIBIT
    resource.assert_done()


def test_scpi_maxima_of_the_validated_it6054c() -> None:
    resource = ScriptedVisaResource()
    supply = IT6000C(ScpiConnection(RESOURCE, opener=VisaScript(resource)), model="IT6054C-800-225")
    assert supply.protection_maxima() == pytest.approx((808.0, 227.25, 55080.0))
