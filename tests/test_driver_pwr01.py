"""Scripted command/response tests for the Kikusui PWR-01 driver (no sockets).

Both transports against the emulated model: ``tests/test_model_pwr01.py``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError, InstrumentReportedError, MalformedReply, RatingError
from instruments.base import Identity, Rating
from instruments.connection import ScpiConnection
from instruments.pwr01 import PWR01, READ_COMMAND, model_rating
from instruments.scripted import ScriptedVisaResource, VisaScript, VisaStep, query, write

RESOURCE = "ASRL/dev/ttyUSB0::INSTR"


def make(*steps: VisaStep, strict: bool = False) -> tuple[PWR01, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, timeout=1.5, opener=VisaScript(resource))
    return PWR01(connection, model="PWR401L", name="SUP2", strict=strict), resource


def test_identify_parses_idn() -> None:
    psu, resource = make(query("*IDN?", "KIKUSUI,PWR401L,AB123456,1.00"))
    assert psu.identify() == Identity("KIKUSUI", "PWR401L", "AB123456", "1.00")
    resource.assert_done()


def test_setpoints_are_sent_in_the_pinned_format() -> None:
    psu, resource = make(
        write("VOLT 12.5"),
        write("CURR 2"),
        write("CURR:PROT 20"),
        write("OUTP ON"),
        write("OUTP:PROT:CLE"),
    )
    psu.voltage = 12.5
    psu.current = 2.0
    psu.ocp = 20.0
    psu.output = True
    psu.clear_protection()
    resource.assert_done()


def test_arm_source_sends_output_off_voltage_then_ovp() -> None:
    psu, resource = make(
        write("OUTP OFF"), write("VOLT 38"), query("VOLT?", "+3.80000E+01"), write("VOLT:PROT 40")
    )
    psu.arm_source(38.0, 40.0, 30.0)
    resource.assert_done()


def test_protection_outside_the_range_is_refused_without_traffic() -> None:
    psu, resource = make()
    with pytest.raises(RatingError):
        psu.ovp = 45.0  # 110 % of 40 V is 44 V
    with pytest.raises(ConfigError, match="at most 44 V"):
        psu.check_source_protection(50.0, 60.0, 0.0)
    assert psu.check_source_protection(30.0, 33.0, 25.0) == (33.0, 0.0)
    resource.assert_done()


def test_measure_reads_everything_in_one_compound_query() -> None:
    psu, resource = make(query(READ_COMMAND, "+3.50100E+02;+1.00000E+00;1;+1024;+0"))
    reading = psu.measure()
    assert (reading.voltage, reading.current, reading.on) == (350.1, 1.0, True)
    assert reading.regulation == "current" and not reading.tripped and reading.flags == set()
    resource.assert_done()


def test_watchdog_and_overvoltage_trips_are_flagged() -> None:
    psu, resource = make(query("OUTP?;:STAT:QUES:COND?", "0;+16385"))
    status = psu.output_status()
    assert not status.on and status.flags == {"OVP", "WDOG"}
    resource.assert_done()


def test_strict_mode_raises_the_instruments_own_error_text() -> None:
    psu, resource = make(
        write("OUTP OFF"),
        query("SYST:ERR?", '-222,"Data out of range"'),
        query("SYST:ERR?", '+0,"No error"'),
        strict=True,
    )
    with pytest.raises(InstrumentReportedError, match="Data out of range"):
        psu.output = False
    resource.assert_done()


def test_malformed_reply_names_resource_and_command() -> None:
    psu, _ = make(query(READ_COMMAND, "+3.5E+02;junk;1;+0;+0"))
    with pytest.raises(MalformedReply, match="ttyUSB0"):
        psu.measure()


def test_rating_comes_from_the_ratings_file_or_explicitly() -> None:
    assert model_rating("pwr1201h") == Rating(voltage=650.0, current=6.0, power=1200.0)
    with pytest.raises(ConfigError, match="unknown PWR-01 model 'PWR9'"):
        model_rating("PWR9")
    psu = PWR01(
        ScpiConnection(RESOURCE, opener=VisaScript(ScriptedVisaResource(()))),
        rating=Rating(voltage=80.0, current=10.0, power=400.0),
    )
    assert psu.rating.voltage == 80.0


@settings(max_examples=60, deadline=None)
@given(volts=st.floats(allow_nan=True, allow_infinity=True), amps=st.floats(allow_nan=True))
def test_never_sends_a_setpoint_outside_its_rating(volts: float, amps: float) -> None:
    resource = ScriptedVisaResource()
    psu = PWR01(ScpiConnection(RESOURCE, opener=VisaScript(resource)), model="PWR801L")
    limits = {"voltage": ("VOLT", 40.0), "current": ("CURR", 80.0)}
    for name, value in (("voltage", volts), ("current", amps)):
        header, top = limits[name]
        inside = 0.0 <= value <= top
        if inside:
            resource.expect(write(f"{header} {format(value + 0.0, '.10g')}"))
        try:
            setattr(psu, name, value)
        except RatingError:
            assert not inside
        else:
            assert inside
    resource.assert_done()
