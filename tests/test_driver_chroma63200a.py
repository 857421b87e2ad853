"""Scripted command/response tests for the Chroma 63200A load driver (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError, InstrumentReportedError, MalformedReply, RatingError
from instruments.base import Identity, Rating
from instruments.chroma63200a import ChannelStatus, Chroma63200A, LoadMode
from instruments.connection import ScpiConnection
from instruments.scripted import ScriptedVisaResource, VisaScript, VisaStep, query, write

RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"


def make(
    *steps: VisaStep, model: str = "63206A-600-210", strict: bool = False
) -> tuple[Chroma63200A, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    connection = ScpiConnection(RESOURCE, opener=VisaScript(resource))
    return Chroma63200A(connection, model=model, name="bus-load", strict=strict), resource


def test_rating_from_model_name() -> None:
    load, _ = make()
    assert load.rating == Rating(600.0, 210.0, 6000.0)
    small, _ = make(model="63202A-150-200")
    assert small.rating == Rating(150.0, 200.0, 2000.0)
    with pytest.raises(ConfigError, match="naming"):
        make(model="63206A")


def test_identify() -> None:
    load, resource = make(query("*IDN?", "Chroma,63206A-600-210,12345678,01.00"))
    assert load.identify() == Identity("Chroma", "63206A-600-210", "12345678", "01.00")
    resource.assert_done()


def test_sink_current_sequence() -> None:
    load, resource = make(write("MODE CCH"), write("CURR:STAT:L1 2.5"), write("LOAD ON"))
    load.sink_current(2.5)
    load.load = True
    resource.assert_done()


def test_hold_voltage_sequence() -> None:
    load, resource = make(write("MODE CVH"), write("VOLT:STAT:ILIM 20"), write("VOLT:STAT:L1 52.5"))
    load.hold_voltage(52.5, current_limit=20.0)
    resource.assert_done()


def test_other_settings() -> None:
    load, resource = make(
        write("CONF:VOLT:ON 250"),
        write("CURR:STAT:RISE 0.1"),
        write("CURR:STAT:FALL 0.1"),
        write("POW:STAT:L1 1000"),
        write("LOAD:SHOR OFF"),
        write("LOAD:PROT:CLE"),
        write("LOAD OFF"),
    )
    load.turn_on_voltage = 250.0
    load.current_rise = 0.1
    load.current_fall = 0.1
    load.power = 1000.0
    load.short = False
    load.clear_protection()
    load.load = False
    resource.assert_done()


def test_read_and_status() -> None:
    load, resource = make(
        query("MEAS:VOLT?", "350.12"),
        query("MEAS:CURR?", "2.001"),
        query("MEAS:POW?", "700.6"),
        query("LOAD?", "ON"),
        query("STAT:CHAN:COND?", "2"),
    )
    reading = load.read()
    assert reading.voltage == pytest.approx(350.12)
    assert reading.current == pytest.approx(2.001)
    assert reading.load_on
    assert reading.status == ChannelStatus.OVP
    assert reading.tripped
    resource.assert_done()


def test_mode_query() -> None:
    load, _ = make(query("MODE?", "CCH"), query("MODE?", "XYZ"))
    mode = load.mode
    assert mode is LoadMode.CCH
    assert mode.regulation == "CC"
    with pytest.raises(MalformedReply, match=r"MODE\?"):
        _ = load.mode


def test_strict_mode_with_an_unquoted_error() -> None:
    load, resource = make(
        write("CURR:STAT:L1 150"),
        query("SYST:ERR?", "-222, Data out of range"),
        query("SYST:ERR?", "0, No Error"),
        strict=True,
    )
    with pytest.raises(InstrumentReportedError, match="Data out of range"):
        load.current = 150.0
    resource.assert_done()


def test_out_of_rating_is_refused_without_traffic() -> None:
    load, resource = make()
    with pytest.raises(RatingError, match="210"):
        load.sink_current(250.0)
    with pytest.raises(RatingError, match="600"):
        load.hold_voltage(700.0, 1.0)
    with pytest.raises(RatingError):
        load.current = -1.0
    assert resource.log == []


@settings(max_examples=60, deadline=None)
@given(amps=st.floats(allow_nan=True, allow_infinity=True))
def test_never_sends_a_current_outside_its_rating(amps: float) -> None:
    resource = ScriptedVisaResource()
    load = Chroma63200A(
        ScpiConnection(RESOURCE, opener=VisaScript(resource)), model="63202A-150-200"
    )
    inside = 0.0 <= amps <= 200.0
    if inside:
        resource.expect(write("MODE CCH"), write(f"CURR:STAT:L1 {format(amps + 0.0, '.10g')}"))
        load.sink_current(amps)
    else:
        with pytest.raises(RatingError):
            load.sink_current(amps)
    resource.assert_done()


def test_zero_is_sent_as_zero_never_minus_zero() -> None:
    load, resource = make(write("CURR:STAT:L1 0"), write("CURR:DYN:L2 0"))
    load.current = -0.0
    load.dynamic_l2 = -0.0
    resource.assert_done()


def test_dynamic_mode_and_remote_commands() -> None:
    load, resource = make(
        write("CONF:REM ON"),
        write("MODE CCDH"),
        write("CURR:DYN:L1 10"),
        write("CURR:DYN:L2 2.5"),
        write("CURR:DYN:T1 0.001"),
        write("CURR:DYN:T2 0.003"),
        write("CURR:DYN:RISE 0.5"),
        write("CURR:DYN:REP 0"),
        query("MODE?", "CCDH"),
        query("MODE?", "CCDH"),
    )
    load.remote()
    load.mode = LoadMode.CCDH
    load.dynamic_l1, load.dynamic_l2 = 10.0, 2.5
    load.dynamic_t1, load.dynamic_t2 = 0.001, 0.003
    load.dynamic_rise = 0.5
    load.dynamic_repeat = 0
    assert load.mode is LoadMode.CCDH
    assert load.mode.regulation == "CC"
    resource.assert_done()
