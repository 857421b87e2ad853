"""The SCPI base class, its parsers and descriptors."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError, InstrumentReportedError, MalformedReply, RatingError
from instruments.base import Identity, Rating, format_number, rating_from_model_name
from instruments.connection import ScpiConnection
from instruments.scpi import (
    ScpiError,
    ScpiInstrument,
    ScpiNumber,
    parse_bool,
    parse_error,
    parse_identity,
    parse_number,
)
from instruments.scpi import _parse_with_pattern as parse_number_by_pattern
from instruments.scripted import (
    ScriptedVisaResource,
    ScriptMismatch,
    VisaScript,
    VisaStep,
    query,
    write,
)

RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"


def make(*steps: VisaStep, strict: bool = False) -> tuple[ScpiInstrument, ScriptedVisaResource]:
    resource = ScriptedVisaResource(steps)
    return ScpiInstrument(
        ScpiConnection(RESOURCE, opener=VisaScript(resource)), strict=strict
    ), resource


@pytest.mark.parametrize(
    ("reply", "code", "message"),
    [
        ('+0,"No error"', 0, "No error"),
        ('0,"No error"', 0, "No error"),
        ('-222,"Data out of range"', -222, "Data out of range"),
        ("-113, Undefined header", -113, "Undefined header"),
        ("0", 0, ""),
    ],
)
def test_parse_error(reply: str, code: int, message: str) -> None:
    assert parse_error(reply) == ScpiError(code, message)


def test_parse_error_rejects_garbage() -> None:
    with pytest.raises(MalformedReply, match="no numeric code"):
        parse_error("oops", resource=RESOURCE)


@pytest.mark.parametrize(
    ("reply", "unit", "value"),
    [
        ("12.5", "", 12.5),
        ("+1.250000E+01", "", 12.5),
        ("-3", "", -3.0),
        (".5", "", 0.5),
        ("5.00 A", "A", 5.0),
        ("350.00V", "V", 350.0),
        (" 1e-3 ", "", 0.001),
    ],
)
def test_parse_number(reply: str, unit: str, value: float) -> None:
    assert parse_number(reply, resource=RESOURCE, command="X?", unit=unit) == value


@pytest.mark.parametrize("reply", ["", "abc", "1.2.3", "5 A", "nan", "9.9E+37", "-9.91E37"])
def test_parse_number_rejects(reply: str) -> None:
    with pytest.raises(MalformedReply) as caught:
        parse_number(reply, resource=RESOURCE, command="X?")
    assert RESOURCE in str(caught.value) and "X?" in str(caught.value)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=20))
def test_parse_number_never_raises_anything_but_malformed(text: str) -> None:
    try:
        value = parse_number(text, resource=RESOURCE, command="X?")
    except MalformedReply:
        return
    assert abs(value) < 9.9e37


def _outcome(parse: Callable[..., float], text: str, unit: str) -> tuple[str, object]:
    try:
        return "value", parse(text, resource=RESOURCE, command="X?", unit=unit)
    except MalformedReply as exc:
        return "error", str(exc)


NUMBERISH = st.text(alphabet="0123456789+-.eE_ \tAVnaifty\u0663", max_size=14)


@settings(max_examples=100, deadline=None)
@given(st.one_of(NUMBERISH, st.text(max_size=12)), st.sampled_from(["", "V"]))
@example("1_0", "")
@example("\u0663\u066b5", "")
@example("inf", "")
@example("-Infinity", "V")
@example("1e400", "")
@example(" +.5E-3\t", "")
@example("5.00 V", "V")
def test_parse_number_fast_path_agrees_with_the_full_pattern(text: str, unit: str) -> None:
    assert _outcome(parse_number, text, unit) == _outcome(parse_number_by_pattern, text, unit)


def test_parse_bool() -> None:
    assert parse_bool("1", resource="r", command="c") is True
    assert parse_bool("OFF", resource="r", command="c") is False
    assert parse_bool("+0", resource="r", command="c") is False
    with pytest.raises(MalformedReply):
        parse_bool("2", resource="r", command="c")


def test_parse_identity_keeps_extra_commas_in_the_firmware() -> None:
    assert parse_identity("A,B,C,D,E", resource="r") == Identity("A", "B", "C", "D,E")
    with pytest.raises(MalformedReply, match=r"\*IDN\?"):
        parse_identity("just a name", resource="r")


def test_opc_reset_clear_and_errors() -> None:
    instrument, resource = make(
        write("*RST"),
        query("*OPC?", "1"),
        write("*CLS"),
        query("SYST:ERR?", '-113,"Undefined header"'),
        query("SYST:ERR?", '-222,"Data out of range"'),
        query("SYST:ERR?", '+0,"No error"'),
        query("*OPC?", "0"),
    )
    instrument.reset()
    instrument.clear_status()
    assert instrument.errors() == [
        ScpiError(-113, "Undefined header"),
        ScpiError(-222, "Data out of range"),
    ]
    with pytest.raises(MalformedReply, match="expected 1"):
        instrument.wait_complete()
    resource.assert_done()


def test_check_errors_lists_every_queued_error() -> None:
    instrument, _ = make(
        query("SYST:ERR?", '-113,"Undefined header"'),
        query("SYST:ERR?", '-221,"Settings conflict"'),
        query("SYST:ERR?", '0,"No error"'),
    )
    with pytest.raises(InstrumentReportedError, match=r"Undefined header.*Settings conflict"):
        instrument.check_errors("FOO 1")


def test_a_driver_that_sends_something_unscripted_fails_the_test() -> None:
    instrument, _ = make(write("OUTP ON"))
    with pytest.raises(ScriptMismatch, match="expected write"):
        instrument.write("OUTP OFF")


class Demo(ScpiInstrument):
    level = ScpiNumber("LEV", unit="V", limits=lambda demo: (0.0, demo.maximum))

    def __init__(self, connection: ScpiConnection, maximum: float) -> None:
        super().__init__(connection, name="demo")
        self.maximum = maximum


def test_descriptor_checks_limits_before_sending() -> None:
    resource = ScriptedVisaResource([write("LEV 3.3")])
    demo = Demo(ScpiConnection(RESOURCE, opener=VisaScript(resource)), maximum=5.0)
    demo.level = 3.3
    with pytest.raises(RatingError, match="demo: level 6 V exceeds the rating 5 V"):
        demo.level = 6
    resource.assert_done()
    assert isinstance(Demo.level, ScpiNumber)


def test_threads_sharing_a_driver_get_their_own_replies() -> None:
    class EchoLine:
        """A line where write and read are separate steps (interleaving would mix them)."""

        timeout = read_termination = write_termination = None

        def __init__(self) -> None:
            self.pending: list[str] = []

        def write(self, message: str) -> int:
            self.pending.append(message)
            return len(message)

        def query(self, message: str) -> str:
            self.pending.append(message)
            os.sched_yield()
            return self.pending.pop(0).rstrip("?")

        def close(self) -> None:
            pass

    line = EchoLine()
    instrument = ScpiInstrument(ScpiConnection(RESOURCE, opener=lambda: line))
    failures: list[str] = []

    def worker(tag: str) -> None:
        for index in range(200):
            expected = f"{tag}{index}"
            if instrument.query(expected + "?") != expected:
                failures.append(expected)

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in "ABCD"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []


def test_format_number_and_model_ratings() -> None:
    assert format_number(12.5) == "12.5"
    assert format_number(350.0) == "350"
    assert format_number(0.1 + 0.2) == "0.3"
    assert rating_from_model_name("IT6012C-80-300") == Rating(80.0, 300.0, 12000.0)
    with pytest.raises(ConfigError):
        Rating(voltage=0.0, current=1.0, power=1.0)
