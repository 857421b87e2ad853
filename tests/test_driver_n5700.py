"""Scripted command/response tests for the Keysight N5700 driver (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import (
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    RatingError,
)
from instruments.base import Identity, Rating
from instruments.connection import ScpiConnection
from instruments.n5700 import N5700, Operation, Questionable, model_rating
from instruments.scripted import ScriptedVisaResource, VisaScript, VisaStep, query, write

RESOURCE = "TCPIP0::10.0.0.5::5025::SOCKET"


def make(
    *steps: VisaStep, strict: bool = False, model: str = "N5750A"
) -> tuple[N5700, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, timeout=1.5, opener=VisaScript(resource))
    return N5700(connection, model=model, name="E001-psu", strict=strict), resource


def test_connection_sets_both_terminators_and_timeout() -> None:
    _, resource = make()
    assert resource.read_termination == "\n"
    assert resource.write_termination == "\n"
    assert resource.timeout == 1500


def test_identify_parses_idn() -> None:
    psu, resource = make(query("*IDN?", "Agilent Technologies,N5750A,US12345678,A.01.02"))
    assert psu.identify() == Identity("Agilent Technologies", "N5750A", "US12345678", "A.01.02")
    resource.assert_done()


def test_setpoints_are_sent_in_the_pinned_format() -> None:
    psu, resource = make(
        write("VOLT 12.5"),
        write("CURR 2"),
        write("OUTP ON"),
        write("CURR:PROT:STAT OFF"),
        write("OUTP:PROT:CLE"),
    )
    psu.voltage = 12.5
    psu.current = 2.0
    psu.output = True
    psu.foldback = False
    psu.clear_protection()
    resource.assert_done()


def test_queries_parse_nr3_replies() -> None:
    psu, resource = make(
        query("VOLT?", "+1.250000E+01"),
        query("MEAS:CURR?", "+1.998000E+00"),
        query("OUTP?", "1"),
    )
    assert psu.voltage == 12.5
    assert psu.measured_current == pytest.approx(1.998)
    assert psu.output is True
    resource.assert_done()


def test_ovp_checks_the_voltage_coupling_before_sending() -> None:
    psu, resource = make(query("VOLT?", "+1.000000E+02"), write("VOLT:PROT:LEV 110"))
    psu.ovp = 110.0
    resource.assert_done()

    psu, resource = make(query("VOLT?", "+1.000000E+02"))
    with pytest.raises(RatingError, match=r"1\.05"):
        psu.ovp = 104.0
    assert resource.sent == ["VOLT?"]


def test_ovp_outside_the_table_is_refused_without_any_traffic() -> None:
    psu, resource = make()
    with pytest.raises(RatingError, match="165"):
        psu.ovp = 170.0
    with pytest.raises(RatingError, match="below the minimum 5"):
        psu.ovp = 4.0
    assert resource.log == []


def test_undervoltage_limit_coupling() -> None:
    psu, resource = make(query("VOLT?", "+5.000000E+01"), write("VOLT:LIM:LOW 47.5"))
    psu.undervoltage_limit = 47.5
    psu2, resource2 = make(query("VOLT?", "+5.000000E+01"))
    with pytest.raises(RatingError, match=r"0\.95"):
        psu2.undervoltage_limit = 48.0
    resource.assert_done()
    resource2.assert_done()


def test_read_collects_measurements_and_status() -> None:
    psu, resource = make(
        query("MEAS:VOLT?", "+1.499000E+02"),
        query("MEAS:CURR?", "+2.500000E+00"),
        query("OUTP?", "1"),
        query("STAT:OPER:COND?", "1024"),
        query("STAT:QUES:COND?", "0"),
    )
    reading = psu.read()
    assert reading.voltage == pytest.approx(149.9)
    assert reading.current == 2.5
    assert reading.in_cc and not reading.in_cv
    assert reading.operation == Operation.CC
    assert reading.questionable == Questionable(0)
    assert not reading.tripped
    resource.assert_done()


def test_tripped_reading() -> None:
    psu, _ = make(
        query("MEAS:VOLT?", "0"),
        query("MEAS:CURR?", "0"),
        query("OUTP?", "0"),
        query("STAT:OPER:COND?", "0"),
        query("STAT:QUES:COND?", "1"),
    )
    assert psu.read().tripped


def test_strict_mode_raises_the_instruments_own_error_text() -> None:
    psu, resource = make(
        write("VOLT 100"),
        query("SYST:ERR?", '-222,"Data out of range"'),
        query("SYST:ERR?", '+0,"No error"'),
        strict=True,
    )
    with pytest.raises(InstrumentReportedError, match="Data out of range") as caught:
        psu.voltage = 100.0
    assert "VOLT 100" in str(caught.value)
    assert RESOURCE in str(caught.value)
    resource.assert_done()


def test_strict_mode_passes_when_the_queue_is_empty() -> None:
    psu, resource = make(write("OUTP OFF"), query("SYST:ERR?", '+0,"No error"'), strict=True)
    psu.output = False
    resource.assert_done()


def test_malformed_reply_names_resource_and_command() -> None:
    psu, _ = make(query("MEAS:VOLT?", "garbage"))
    with pytest.raises(MalformedReply) as caught:
        _ = psu.measured_voltage
    assert RESOURCE in str(caught.value)
    assert "MEAS:VOLT?" in str(caught.value)


def test_over_range_reading_is_malformed() -> None:
    psu, _ = make(query("MEAS:CURR?", "9.9E+37"))
    with pytest.raises(MalformedReply, match="over-range"):
        _ = psu.measured_current


def test_timeout_then_the_next_call_reopens_the_connection() -> None:
    import pyvisa

    timeout = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)
    first = ScriptedVisaResource([query("MEAS:VOLT?", timeout)])
    second = ScriptedVisaResource([query("MEAS:VOLT?", "+1.0E+01")])
    opener = VisaScript(first, second)
    psu = N5700(ScpiConnection(RESOURCE, opener=opener), model="N5750A")
    with pytest.raises(InstrumentTimeout) as caught:
        _ = psu.measured_voltage
    assert "MEAS:VOLT?" in str(caught.value) and RESOURCE in str(caught.value)
    assert psu.measured_voltage == 10.0
    assert first.closed
    opener.assert_done()


def test_program_checks_both_before_sending_either() -> None:
    psu, resource = make()
    with pytest.raises(RatingError, match="current"):
        psu.program(100.0, 6.0)
    assert resource.log == []


def test_rating_comes_from_the_model_table_or_explicitly() -> None:
    assert model_rating("N5750A") == Rating(150.0, 5.0, 750.0)
    assert model_rating("n5772a") == Rating(600.0, 2.6, 1500.0)
    with pytest.raises(ConfigError, match="unknown N5700 model"):
        model_rating("N9999A")
    resource = ScriptedVisaResource()
    psu = N5700(ScpiConnection(RESOURCE, opener=VisaScript(resource)), rating=Rating(20, 5, 100))
    assert psu.rating.voltage == 20


@settings(max_examples=60, deadline=None)
@given(volts=st.floats(allow_nan=True, allow_infinity=True), amps=st.floats(allow_nan=True))
def test_never_sends_a_setpoint_outside_its_rating(volts: float, amps: float) -> None:
    resource = ScriptedVisaResource()
    psu = N5700(ScpiConnection(RESOURCE, opener=VisaScript(resource)), model="N5750A")
    for header, value, limit in (("VOLT", volts, 150.0), ("CURR", amps, 5.0)):
        inside = 0.0 <= value <= limit
        if inside:
            resource.expect(write(f"{header} {format(value + 0.0, '.10g')}"))
        try:
            if header == "VOLT":
                psu.voltage = value
            else:
                psu.current = value
        except RatingError:
            assert not inside
        else:
            assert inside
    resource.assert_done()
    for message in resource.sent:
        number = float(message.split()[1])
        assert 0.0 <= number <= (150.0 if message.startswith("VOLT") else 5.0)
