"""Unit tests of the SCPI parser: patterns, headers, message splitting and parameters."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.emulation.scpi_parser import (
    Boolean,
    BoundQuery,
    Choice,
    Number,
    Raw,
    ScpiError,
    String,
    compile_pattern,
    parse_decimal,
    parse_header,
    split_params,
    split_unit,
    split_units,
)

VOLT = "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]"


def code_of(func: Any, *args: Any) -> int:
    with pytest.raises(ScpiError) as caught:
        func(*args)
    return caught.value.code


def words(text: str) -> tuple[str, ...]:
    return tuple(text.upper().split(":"))


# ---- patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "VOLT",
        "VOLTAGE",
        "SOUR:VOLT",
        "SOURCE:VOLTAGE:LEVEL:IMMEDIATE:AMPLITUDE",
        "SOUR:VOLT:LEV:IMM:AMPL",
        "VOLT:AMPL",
        "VOLT:LEV:AMPL",
        "VOLT:IMM",
    ],
)
def test_pattern_matches_short_long_and_optional_nodes(typed: str) -> None:
    assert compile_pattern(VOLT).match(words(typed)) == ()


@pytest.mark.parametrize(
    "typed",
    ["VOLTA", "VOL", "SOUR", "VOLT:AMPL:LEV", "VOLT:LEV:LEV", "SOUR:SOUR:VOLT", "CURR", "VOLT:X"],
)
def test_pattern_rejects_partial_forms_and_wrong_order(typed: str) -> None:
    assert compile_pattern(VOLT).match(words(typed)) is None


def test_pattern_numeric_suffixes_default_to_one() -> None:
    pattern = compile_pattern("OUTPut<n>[:STATe]")
    assert pattern.has_suffix
    assert pattern.match(words("OUTP")) == (1,)
    assert pattern.match(words("OUTP3:STAT")) == (3,)
    assert pattern.match(words("OUTPUT12")) == (12,)
    assert pattern.match(words("OUTPU2")) is None
    optional = compile_pattern("[CHANnel[<n>]:]CURRent")
    assert optional.match(words("CURR")) == (1,)
    assert optional.match(words("CHAN2:CURR")) == (2,)


def test_pattern_digits_in_a_mnemonic_are_not_a_suffix() -> None:
    pattern = compile_pattern("[SOURce:]CURRent:STATic:L1")
    assert pattern.match(words("CURR:STAT:L1")) == ()
    assert pattern.match(words("CURR:STAT:L2")) is None


def test_query_only_and_common_patterns() -> None:
    measure = compile_pattern("MEASure[:SCALar]:VOLTage[:DC]?")
    assert measure.query_only
    assert measure.match(words("MEAS:VOLT")) == ()
    assert measure.match(words("MEASURE:SCALAR:VOLTAGE:DC")) == ()
    idn = compile_pattern("*IDN?")
    assert idn.common and idn.query_only
    assert idn.match(("*IDN",)) == ()


@pytest.mark.parametrize("bad", ["", "[OPTional]", "volt", "VOLT::LEV", "VOLT:(x)"])
def test_bad_patterns_are_refused_with_the_pattern_named(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        compile_pattern(bad)


# ---- headers ---------------------------------------------------------------------------


def test_headers_are_split_and_upper_cased() -> None:
    header = parse_header(":sour:Volt:lev?")
    assert header.words == ("SOUR", "VOLT", "LEV")
    assert header.query and header.absolute and not header.common
    common = parse_header("*idn?")
    assert common.words == ("*IDN",) and common.common and common.query
    assert not parse_header("VOLT").query


@pytest.mark.parametrize("bad", ["VOLT::LEV", "VOLT?5", ":", "VO$T", "1VOLT", "VOLT:", "**IDN"])
def test_malformed_headers_are_syntax_errors(bad: str) -> None:
    assert code_of(parse_header, bad) == -102


def test_overlong_mnemonic_is_minus_112() -> None:
    assert code_of(parse_header, "VOLTAGEVOLTAGE") == -112


# ---- splitting -------------------------------------------------------------------------


def test_units_split_at_semicolons_outside_strings() -> None:
    assert split_units('VOLT 1;DISP:TEXT "a;b";CURR 2') == ["VOLT 1", 'DISP:TEXT "a;b"', "CURR 2"]
    assert split_units("VOLT 1;") == ["VOLT 1"]
    assert code_of(split_units, 'DISP:TEXT "open') == -151


def test_unit_header_and_params() -> None:
    assert split_unit("  VOLT   12.5 V ") == ("VOLT", "12.5 V")
    assert split_unit("*IDN?") == ("*IDN?", "")
    assert split_unit("VOLT\t5") == ("VOLT", "5")
    assert split_params("1, 2 ,'a,b'") == ["1", "2", "'a,b'"]
    assert split_params("") == []
    assert code_of(split_params, "1,,2") == -102


# ---- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("12", 12.0),
        ("+12", 12.0),
        ("-3", -3.0),
        ("12.5", 12.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.25E+1", 12.5),
        ("1.25e1", 12.5),
        ("125E-1", 12.5),
        ("#H1F", 31.0),
        ("#b101", 5.0),
        ("#Q17", 15.0),
    ],
)
def test_decimal_formats_nr1_nr2_nr3_and_nondecimal(token: str, value: float) -> None:
    assert parse_decimal(token) == (value, "")


@pytest.mark.parametrize(
    ("token", "unit", "value"),
    [
        ("12.5 V", "V", 12.5),
        ("12.5V", "V", 12.5),
        ("500 mV", "V", 0.5),
        ("500 MV", "V", 0.5),
        ("2 kV", "V", 2000.0),
        ("500 mA", "A", 0.5),
        ("500 MA", "A", 0.5),
        ("250 uA", "A", 250e-6),
        ("3 kW", "W", 3000.0),
        ("40 mW", "W", 0.04),
        ("1 MAW", "W", 1e6),
        ("20 ms", "S", 0.02),
        ("2 s", "S", 2.0),
    ],
)
def test_unit_suffixes_with_si_prefixes(token: str, unit: str, value: float) -> None:
    assert Number(unit).parse(token, None) == pytest.approx(value)


def test_wrong_or_unexpected_suffixes() -> None:
    assert code_of(Number("V").parse, "5 A", None) == -131
    assert code_of(Number("V").parse, "5 xV", None) == -131
    assert code_of(Number().parse, "5 V", None) == -138


def test_min_max_def_resolve_from_the_declared_range() -> None:
    spec = Number("V", min=0, max=61.2, default=5)
    assert spec.parse("MIN", None) == 0.0
    assert spec.parse("maximum", None) == 61.2
    assert spec.parse("def", None) == 5.0
    assert code_of(Number("V", min=0).parse, "MAX", None) == -224


def test_out_of_range_is_refused_unless_the_parameter_clamps() -> None:
    spec = Number("V", min=0, max=60)
    assert code_of(spec.parse, "60.001", None) == -222
    assert code_of(spec.parse, "-1 mV", None) == -222
    assert spec.parse("60", None) == 60.0
    clamped = Number("V", min=0, max=60, clamp=True)
    assert clamped.parse("75", None) == 60.0
    assert clamped.parse("-5", None) == 0.0


def test_bounds_may_depend_on_the_device() -> None:
    class Device:
        voltage = 10.0

    spec = Number("V", min=lambda dev: 1.05 * dev.voltage, max=66)
    assert spec.parse("MIN", Device()) == pytest.approx(10.5)
    assert code_of(spec.parse, "10.4", Device()) == -222
    assert spec.parse("11", Device()) == 11.0


def test_integer_parameters_round() -> None:
    spec = Number(min=0, max=255, integer=True)
    assert spec.parse("12.4", None) == 12.0
    assert spec.parse("12.6", None) == 13.0
    assert code_of(spec.parse, "255.6", None) == -222


@pytest.mark.parametrize(("token", "code"), [("abc", -104), ('"5"', -104), ("1.2.3", -121)])
def test_non_numbers_where_a_number_is_expected(token: str, code: int) -> None:
    assert code_of(Number("V").parse, token, None) == code


def test_huge_exponent_is_refused() -> None:
    assert code_of(Number("V").parse, "1E999", None) == -123


def test_overlong_numbers_are_refused_before_any_pattern_matching() -> None:
    assert Number("V").parse("0" * 250 + "1", None) == 1.0
    assert code_of(Number("V").parse, "1" * 60_000 + "!", None) == -124


# ---- other parameter types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "value"), [("ON", True), ("on", True), ("OFF", False), ("1", True), ("0", False)]
)
def test_booleans(token: str, value: bool) -> None:
    assert Boolean().parse(token, None) is value


def test_boolean_errors() -> None:
    assert Boolean().parse("0.4", None) is False
    assert code_of(Boolean().parse, "MAYBE", None) == -224
    assert code_of(Boolean().parse, "1 V", None) == -138


def test_choice_accepts_short_and_long_forms_and_parses_to_short() -> None:
    spec = Choice("FIXed", "LIST", "BATTery", default="FIXed")
    assert spec.default == "FIX"
    assert spec.parse("fixed", None) == "FIX"
    assert spec.parse("FIX", None) == "FIX"
    assert spec.parse("Batt", None) == "BATT"
    assert spec.parse("list", None) == "LIST"
    assert code_of(spec.parse, "FIXE", None) == -224
    assert code_of(spec.parse, "5", None) == -104


def test_strings_and_raw() -> None:
    assert String().parse('"a;b"', None) == "a;b"
    assert String().parse("'it''s'", None) == "it's"
    assert code_of(String().parse, "bare", None) == -104
    assert Raw().parse("anything at all", None) == "anything at all"
    assert BoundQuery().parse("max", None) == "MAX"
    assert code_of(BoundQuery().parse, "5", None) == -224


# ---- properties ------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(value=finite, style=st.sampled_from(["{:.6f}", "{:+.6E}", "{:.9g}", "{:.3e}"]))
@settings(max_examples=100)
def test_numbers_read_back_in_every_nr_format(value: float, style: str) -> None:
    text = style.format(value)
    parsed = Number("V").parse(text, None)
    assert math.isclose(parsed, float(text), rel_tol=1e-12, abs_tol=1e-12)
    milli = Number("V").parse(f"{text} mV", None)
    assert math.isclose(milli, float(text) / 1000, rel_tol=1e-12, abs_tol=1e-15)


@given(st.text(max_size=40))
@settings(max_examples=100)
def test_any_text_either_parses_or_raises_a_scpi_error(text: str) -> None:
    for parse in (
        lambda: parse_header(text),
        lambda: Number("A", min=0, max=10).parse(text, None),
        lambda: Boolean().parse(text, None),
        lambda: Choice("FIXed", "LIST").parse(text, None),
        lambda: String().parse(text, None),
        lambda: split_params(text),
        lambda: split_units(text),
    ):
        try:
            parse()
        except ScpiError as exc:
            assert -199 <= exc.code <= -100 or exc.code in (-222, -224)
