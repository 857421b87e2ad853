"""SCPI device execution: path rules, 488.2 core, error queue, status, formats.

The example instrument is defined here, from data, the way a real model is declared.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from instruments.emulation.scpi import (
    KEYSIGHT_ERRORS,
    Boolean,
    Choice,
    Command,
    FixedFormat,
    Nr3Format,
    Number,
    NumberFormat,
    ScpiDevice,
    ScpiError,
    String,
    command,
    query,
    setting,
    status_commands,
)

CV, CC = 256, 1024


def _limit_guard(device: Any, value: float) -> None:
    if device.priority != "CURR":
        device.refuse("VOLT:LIM is writable only in CC priority")


def _boom(device: Any) -> None:
    raise ZeroDivisionError("model bug")


class Supply(ScpiDevice):
    """A small SCPI supply used only by these tests."""

    identity = "ACME,PS-60,0001,1.0"
    number_format: ClassVar[NumberFormat] = Nr3Format()
    error_format = KEYSIGHT_ERRORS
    voltage: float
    current: float
    ovp: float
    limit: float
    priority: str
    output: bool
    clamped: float
    commands = (
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "voltage",
            Number("V", min=0, max=60, default=0),
        ),
        setting(
            "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            "current",
            Number("A", min=0, max=10, default=1),
        ),
        setting(
            "[SOURce:]VOLTage:PROTection[:LEVel]",
            "ovp",
            Number("V", min=lambda dev: 1.05 * dev.voltage, max=66, default=66),
        ),
        setting("[SOURce:]VOLTage:LIMit", "limit", Number("V", 0, 60, 60), guard=_limit_guard),
        setting("[SOURce:]FUNCtion", "priority", Choice("VOLTage", "CURRent", default="VOLT")),
        setting("OUTPut<n>[:STATe]", "output", Boolean(default=False)),
        setting("SYSTem:CLAMped", "clamped", Number("V", 0, 10, 0, clamp=True)),
        query("MEASure[:SCALar]:VOLTage[:DC]?", lambda dev: dev.voltage * 0.999, unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", lambda dev: dev.current * 0.5, unit="A"),
        query("MEASure:ALL?", lambda dev: (dev.voltage, dev.current), unit="V"),
        query("OUTPut<n>:SUFFix?", lambda dev: dev.suffixes[0]),
        command("DISPlay:TEXT", lambda dev, text: setattr(dev, "text", text), String()),
        command("SYSTem:BOOM", _boom),
        *status_commands(),
    )

    def __init__(self) -> None:
        super().__init__()
        self.mode_bits = CV
        self.text = ""

    def operation_condition(self) -> int:
        return self.mode_bits


@pytest.fixture
def dev() -> Supply:
    return Supply()


def errors(device: ScpiDevice) -> list[str]:
    """Drain the error queue through SYST:ERR? as a client would."""
    out: list[str] = []
    while True:
        reply = device.execute("SYST:ERR?")
        assert reply is not None
        if reply.startswith(("+0,", "0,")):
            return out
        out.append(reply)


# ---- headers and paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["VOLT", "volt", "VOLTage", ":VOLT", "SOUR:VOLT", "source:voltage:level:immediate:amplitude"],
)
def test_every_spelling_reaches_the_same_setting(dev: Supply, header: str) -> None:
    assert dev.execute(f"{header} 12.5") is None
    assert dev.voltage == 12.5
    assert dev.execute(f"{header}?") == "+1.250000E+01"
    assert errors(dev) == []


def test_path_continues_at_the_last_nodes_parent(dev: Supply) -> None:
    dev.execute("SOUR:VOLT 5;CURR 2")
    assert (dev.voltage, dev.current) == (5.0, 2.0)
    dev.execute("VOLT:PROT 20;LEV 6")
    assert (dev.ovp, dev.voltage) == (20.0, 6.0)
    assert dev.execute("MEAS:VOLT?;CURR?") == "+5.994000E+00;+1.000000E+00"
    assert errors(dev) == []


def test_path_after_semicolon_does_not_restart_at_root(dev: Supply) -> None:
    assert dev.execute("OUTP ON;VOLT 5") is None
    assert dev.voltage == 5.0
    assert dev.execute("OUTP:STAT ON;VOLT 6") is None
    assert errors(dev) == ['-113,"Undefined header"']
    assert dev.voltage == 5.0


def test_leading_colon_restarts_and_common_commands_keep_the_path(dev: Supply) -> None:
    reply = dev.execute("MEAS:VOLT?;*IDN?;CURR?")
    assert reply == "+0.000000E+00;ACME,PS-60,0001,1.0;+5.000000E-01"
    dev.execute("VOLT:PROT 10;:CURR 3")
    assert (dev.ovp, dev.current) == (10.0, 3.0)
    assert errors(dev) == []


def test_queries_in_one_message_give_one_line(dev: Supply) -> None:
    assert dev.execute("*IDN?;*OPC?;VOLT 3;VOLT?") == "ACME,PS-60,0001,1.0;1;+3.000000E+00"


def test_numeric_suffix_reaches_the_handler(dev: Supply) -> None:
    assert dev.execute("OUTP3:SUFF?;:OUTP:SUFF?") == "3;1"
    dev.execute("OUTP2 ON")
    assert dev.execute("OUTP2?") == "1"


def test_strings_with_separators_are_one_parameter(dev: Supply) -> None:
    assert dev.execute('DISP:TEXT "a;b,c";:VOLT?') == "+0.000000E+00"
    assert dev.text == "a;b,c"


# ---- parameters ------------------------------------------------------------------------


def test_min_max_def_in_settings_and_queries(dev: Supply) -> None:
    assert dev.execute("VOLT? MAX;VOLT? MIN") == "+6.000000E+01;+0.000000E+00"
    dev.execute("VOLT MAX")
    assert dev.voltage == 60.0
    dev.execute("VOLT DEF")
    assert dev.voltage == 0.0
    dev.execute("VOLT 20;VOLT:PROT MIN")
    assert dev.ovp == pytest.approx(21.0)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("VOLT 60.5", -222),
        ("VOLT -1", -222),
        ("VOLT 5 A", -131),
        ("VOLT", -109),
        ("VOLT 1,2", -108),
        ("VOLT ON", -104),
        ("OUTP MAYBE", -224),
        ("FUNC POWer", -224),
        ("MEAS:VOLT? 3", -108),
        ("MEAS:VOLT 3", -113),
        ("NOSUCH:THING", -113),
        ("*IDN", -113),
        ("VOLT::LEV 3", -102),
        ("VOLTAGEVOLTAGE 3", -112),
        ('DISP:TEXT "open', -151),
        ("VOLT 1E999", -123),
    ],
)
def test_bad_commands_queue_their_standard_error(dev: Supply, message: str, code: int) -> None:
    assert dev.execute(message) is None
    queued = errors(dev)
    assert len(queued) == 1
    assert queued[0].startswith(f"{code:+d},")
    assert dev.voltage == 0.0


def test_out_of_range_is_refused_not_clamped(dev: Supply) -> None:
    dev.execute("VOLT 10")
    dev.execute("VOLT 61")
    assert dev.voltage == 10.0
    assert errors(dev) == ['-222,"Data out of range"']


def test_a_clamping_parameter_clamps_silently(dev: Supply) -> None:
    dev.execute("SYST:CLAM 50")
    assert dev.clamped == 10.0
    assert errors(dev) == []


def test_dynamic_minimum_follows_the_state(dev: Supply) -> None:
    dev.execute("VOLT 20;VOLT:PROT 20")
    assert dev.ovp == 66.0
    assert errors(dev) == ['-222,"Data out of range"']


def test_settings_conflict_from_a_guard(dev: Supply) -> None:
    dev.execute("VOLT:LIM 30")
    assert dev.limit == 60.0
    assert errors(dev) == ['-221,"Settings conflict"']
    dev.execute("FUNC CURRENT;VOLT:LIM 30")
    assert dev.limit == 30.0
    assert errors(dev) == []


def test_command_error_abandons_the_rest_execution_error_does_not(dev: Supply) -> None:
    dev.execute("VOLT 1;BOGUS 2;VOLT 3")
    assert dev.voltage == 1.0
    dev.execute("VOLT 99;CURR 4")
    assert dev.current == 4.0
    assert errors(dev) == ['-113,"Undefined header"', '-222,"Data out of range"']


def test_queries_before_an_error_are_still_answered(dev: Supply) -> None:
    assert dev.execute("*OPC?;BOGUS?;*IDN?") == "1"


def test_a_failing_handler_queues_a_device_error_and_the_device_lives(dev: Supply) -> None:
    assert dev.execute("SYST:BOOM;:VOLT 2;VOLT?") == "+2.000000E+00"
    assert errors(dev) == ['-300,"Device-specific error"']


def test_error_details_appear_when_the_model_asks() -> None:
    class Chatty(Supply):
        error_details = True
        error_format = '{code:d},"{message}"'

    device = Chatty()
    device.execute("VOLT 99")
    reply = device.execute("SYST:ERR?")
    assert reply is not None
    assert reply.startswith('-222,"Data out of range;') and "60" in reply
    assert device.execute("SYST:ERR?") == '0,"No error"'


# ---- IEEE 488.2 core -------------------------------------------------------------------


def test_error_queue_is_fifo_and_overflows_to_minus_350(dev: Supply) -> None:
    for _ in range(dev.error_queue_size + 5):
        dev.execute("BOGUS")
    dev_errors = errors(dev)
    assert len(dev_errors) == dev.error_queue_size
    assert dev_errors[0] == '-113,"Undefined header"'
    assert dev_errors[-1] == '-350,"Queue overflow"'
    assert dev.execute("SYST:ERR:NEXT?") == '+0,"No error"'


def test_error_count(dev: Supply) -> None:
    dev.execute("BOGUS;")
    dev.execute("VOLT 99")
    assert dev.execute("SYST:ERR:COUN?") == "2"


def test_esr_bits_per_error_class_and_read_clears(dev: Supply) -> None:
    dev.execute("BOGUS")
    dev.execute("VOLT 99")
    dev.push_error(-410)
    dev.push_error(-310)
    assert dev.execute("*ESR?") == str(32 | 16 | 4 | 8)
    assert dev.execute("*ESR?") == "0"


def test_opc_ese_sre_stb(dev: Supply) -> None:
    dev.execute("*OPC")
    assert dev.execute("*STB?") == "0"
    dev.execute("*ESE 1")
    assert dev.execute("*ESE?;*STB?") == "1;32"
    dev.execute("*SRE 32")
    assert dev.execute("*SRE?;*STB?") == "32;96"
    dev.execute("BOGUS")
    assert dev.execute("*STB?") == str(4 | 32 | 64)
    assert dev.execute("*ESR?") == str(1 | 32)
    dev.execute("*CLS")
    assert dev.execute("*STB?;SYST:ERR:COUN?") == "0;0"


def test_ese_and_sre_are_range_checked(dev: Supply) -> None:
    dev.execute("*ESE 256")
    dev.execute("*SRE -1")
    assert errors(dev) == ['-222,"Data out of range"'] * 2


def test_rst_restores_declared_defaults(dev: Supply) -> None:
    dev.execute("VOLT 12;CURR 3;:OUTP ON;FUNC CURR")
    dev.execute("*RST")
    assert (dev.voltage, dev.current, dev.output, dev.priority) == (0.0, 1.0, False, "VOLT")


def test_identity_self_test_opc_wai(dev: Supply) -> None:
    assert dev.execute("*IDN?;*TST?;*OPC?;*WAI") == "ACME,PS-60,0001,1.0;0;1"
    assert dev.execute("SYST:VERS?") == "1999.0"


def test_plain_error_format_is_configurable() -> None:
    class Plain(Supply):
        error_format = '{code:d},"{message}"'

    device = Plain()
    assert device.execute("SYST:ERR?") == '0,"No error"'
    device.execute("BOGUS")
    assert device.execute("SYST:ERR?") == '-113,"Undefined header"'


# ---- status registers ------------------------------------------------------------------


def test_operation_register_latches_transitions(dev: Supply) -> None:
    assert dev.execute("STAT:OPER:COND?") == "256"
    assert dev.execute("STAT:OPER?") == "256"
    assert dev.execute("STAT:OPER:EVEN?") == "0"
    dev.mode_bits = CC
    dev.execute("STAT:OPER:ENAB 1024")
    assert dev.execute("*STB?") == "128"
    assert dev.execute("STAT:OPER:COND?;EVEN?;EVEN?") == "1024;1024;0"
    dev.execute("STAT:OPER:NTR 1024;PTR 0")
    dev.mode_bits = CV
    assert dev.execute("STAT:OPER:EVEN?") == "1024"
    dev.execute("STAT:PRES")
    assert dev.execute("STAT:OPER:ENAB?;PTR?;NTR?") == "0;32767;0"
    assert dev.execute("STAT:QUES:COND?") == "0"


# ---- formats ---------------------------------------------------------------------------


def test_fixed_format_with_units_like_ea() -> None:
    class Ea(Supply):
        number_format = FixedFormat(decimals=2)

    device = Ea()
    device.execute("CURR 5")
    assert device.execute("CURR?") == "5.00 A"
    assert device.execute("MEAS:ALL?") == "0.00 V,5.00 V"
    assert device.format_real(1.5, "W") == "1.50 W"


def test_default_plain_format_and_per_command_format() -> None:
    class Bare(ScpiDevice):
        commands: ClassVar[tuple[Command, ...]] = (
            setting("LEVel", "level", Number("V", 0, 10, 0)),
            query("FIXed?", lambda dev: 1.0 / 3.0, fmt=FixedFormat(3, with_unit=False)),
        )

    device = Bare()
    device.execute("LEV 2.5")
    assert device.execute("LEV?;FIX?") == "2.5;0.333"
    assert device.execute("SYST:ERR?") == '0,"No error"'


def test_numpy_values_from_the_plant_are_formatted_as_numbers() -> None:
    class Plant(ScpiDevice):
        commands = (
            query("FLOat?", lambda dev: np.float64(2.5)),
            query("INTeger?", lambda dev: np.int64(7)),
            query("BOOLean?", lambda dev: np.bool_(True)),
            query("ARRay?", lambda dev: tuple(np.array([1.5, 2.0]))),
        )

    assert Plant().execute("FLO?;INT?;BOOL?;ARR?") == "2.5;7;1;1.5,2.0"


def test_models_have_separate_tables() -> None:
    class Other(ScpiDevice):
        identity = "OTHER,X,1,1"

    assert Other().execute("VOLT?") is None
    assert Other().execute("*IDN?") == "OTHER,X,1,1"
    assert Supply().execute("VOLT?") == "+0.000000E+00"


def test_bad_command_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="MEAS"):
        Command("MEASure?", set=lambda dev, v: None)
    with pytest.raises(ValueError, match="setter or a query"):
        Command("VOLTage")


def test_scpi_error_text() -> None:
    assert ScpiError(-222).text == "Data out of range"
    assert ScpiError(-221, "why").text == "Settings conflict;why"
    assert ScpiError(-113).is_command_error and not ScpiError(-222).is_command_error


# ---- lines from the wire ----------------------------------------------------------------

WIRE_MESSAGES = [
    "MEAS:VOLT?",
    "VOLT?",
    "VOLT? MAX",
    "OUTP2:SUFF?",
    "MEAS:ALL?",
    "*IDN?",
    "VOLT 5;MEAS:VOLT?",
    "SYST:BOOM",
    "VOLT 99",
    "NOPE?",
    "VOLT?;NOPE?;*IDN?",
    "  meas:volt?  ",
]


@pytest.mark.parametrize("message", WIRE_MESSAGES)
def test_a_line_runs_like_its_text_the_first_time_and_every_time(message: str) -> None:
    by_text, by_line = Supply(), Supply()
    for _ in range(3):
        by_text.execute("VOLT 3")
        by_line.execute_line(b"VOLT 3")
        assert by_line.execute_line(message.encode()) == by_text.execute(message)
        assert errors(by_line) == errors(by_text)


def test_a_failing_lone_query_queues_its_error_every_time() -> None:
    class Faulty(Supply):
        commands = (
            query("BROKen?", lambda dev: 1 / 0),
            query("REFused?", lambda dev: dev.refuse("not now")),
            *Supply.commands,
        )

    device = Faulty()
    for _ in range(2):
        assert device.execute_line(b"BROK?") is None
        assert device.execute_line(b"REF?") is None
        assert device.execute_line(b"*OPC?") == "1"
        assert errors(device) == ['-300,"Device-specific error"', '-221,"Settings conflict"']


def test_bad_bytes_and_blank_lines_from_the_wire(dev: Supply) -> None:
    for _ in range(2):
        assert dev.execute_line(b"VOLT?\x00") is None
        assert dev.execute_line(b"\xffVOLT?") is None
        assert dev.execute_line(b"   ") is None
        assert dev.execute_line(b"") is None
    assert errors(dev) == ['-101,"Invalid character"'] * 4
