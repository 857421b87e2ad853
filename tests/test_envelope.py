"""Envelopes refuse exactly the set-points outside them, and say which limit and why."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.envelope import BusEnvelope, Envelope, UnitEnvelope
from hil.errors import CapabilityError, ConfigError, EnvelopeError

limits = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
amps = st.one_of(st.floats(min_value=-1e4, max_value=1e4), any_float)


def unit(**changes: object) -> UnitEnvelope:
    values: dict[str, object] = {
        "unit_id": "E001",
        "voltage_min": 300.0,
        "voltage_max": 380.0,
        "current_source_max": 2.3,
        "current_sink_max": 2.3,
        "power_max": 874.0,
        "slew_max": 10.0,
        "soc_min": 0.2,
        "soc_max": 0.95,
        "battery_voltage_min": 32.0,
        "battery_voltage_max": 58.4,
    }
    values.update(changes)
    return UnitEnvelope(**values)  # type: ignore[arg-type]


def bus(**changes: object) -> BusEnvelope:
    values: dict[str, object] = {
        "voltage_min": 300.0,
        "voltage_max": 380.0,
        "balance_allowance_per_unit": 0.125,
        "exchange_current_sum_max": 10.0,
        "branch_capacity": {"A": 5.0},
    }
    values.update(changes)
    return BusEnvelope(**values)  # type: ignore[arg-type]


def refused(call: object, *args: object, **kwargs: object) -> bool:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except EnvelopeError:
        return True
    return False


@settings(max_examples=100)
@given(source=limits, sink=limits, value=amps)
def test_current_refused_iff_outside(source: float, sink: float, value: float) -> None:
    env = unit(current_source_max=source, current_sink_max=sink)
    outside = (
        not math.isfinite(value) or (value > 0 and value > source) or (value < 0 and -value > sink)
    )
    assert refused(env.check_current, value) == outside


@settings(max_examples=100)
@given(low=limits, span=positive, value=any_float)
def test_voltage_refused_iff_outside(low: float, span: float, value: float) -> None:
    env = unit(voltage_min=low, voltage_max=low + span)
    outside = not math.isfinite(value) or not low <= value <= low + span
    assert refused(env.check_voltage, value) == outside


@settings(max_examples=100)
@given(power_max=positive, value=any_float)
def test_power_refused_iff_outside(power_max: float, value: float) -> None:
    env = unit(power_max=power_max)
    outside = not math.isfinite(value) or abs(value) > power_max
    assert refused(env.check_power, value) == outside


@settings(max_examples=100)
@given(
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)).filter(lambda w: w[0] < w[1]),
    soc=st.one_of(st.floats(-0.5, 1.5), any_float),
    direction=st.sampled_from([-1.0, 0.0, 1.0]),
)
def test_soc_refused_iff_outside(window: tuple[float, float], soc: float, direction: float) -> None:
    env = unit(soc_min=window[0], soc_max=window[1])
    outside = (
        not math.isfinite(soc)
        or not 0 <= soc <= 1
        or (direction > 0 and soc < window[0])
        or (direction < 0 and soc > window[1])
    )
    assert refused(env.check_soc, soc, direction) == outside


@settings(max_examples=100)
@given(slew=positive, start=st.floats(-10, 10), end=st.floats(-10, 10), seconds=any_float)
def test_slew_refused_iff_too_fast(slew: float, start: float, end: float, seconds: float) -> None:
    env = unit(slew_max=slew)
    needed = abs(end - start) / slew
    outside = not math.isfinite(seconds) or (needed > 0 and (seconds <= 0 or needed > seconds))
    assert refused(env.check_slew, start, end, seconds) == outside
    assert env.min_ramp_time(start, end) == pytest.approx(needed)


@settings(max_examples=100)
@given(
    allowance=limits,
    n=st.integers(0, 20),
    residual=any_float,
    total=any_float,
    branch_amps=any_float,
)
def test_bus_checks_refuse_iff_outside(
    allowance: float, n: int, residual: float, total: float, branch_amps: float
) -> None:
    env = bus(balance_allowance_per_unit=allowance)
    assert refused(env.check_balance, residual, n) == (
        not math.isfinite(residual) or abs(residual) > allowance * n
    )
    assert refused(env.check_exchange_sum, total) == (not math.isfinite(total) or abs(total) > 10)
    assert refused(env.check_branch, "A", branch_amps) == (
        not math.isfinite(branch_amps) or abs(branch_amps) > 5.0
    )
    assert refused(env.check_voltage, residual) == (
        not math.isfinite(residual) or not 300 <= residual <= 380
    )


def test_refusal_names_unit_value_and_limit() -> None:
    env = unit()
    with pytest.raises(EnvelopeError) as caught:
        env.check_current(2.5)
    message = str(caught.value)
    assert "unit E001" in message
    assert "+2.5 A" in message
    assert "2.3 A" in message
    assert "current_source_max" in message
    with pytest.raises(EnvelopeError, match=r"unit E001: .*-3 A.*sink limit 2\.3 A"):
        env.check_current(-3.0)
    with pytest.raises(EnvelopeError, match=r"390 V.*above the limit 380 V.*voltage_max"):
        env.check_voltage(390.0)
    with pytest.raises(EnvelopeError, match=r"power 1150 W exceeds the limit 874 W"):
        env.check_current(2.3, at_voltage=500.0)
    with pytest.raises(EnvelopeError, match=r"discharging at state of charge 0\.1 .*soc_min"):
        env.check_soc(0.1, 1.0)
    with pytest.raises(EnvelopeError, match=r"charging at state of charge 0\.99 .*soc_max"):
        env.check_soc(0.99, -1.0)
    with pytest.raises(EnvelopeError, match=r"60 V is outside 32-58\.4 V"):
        env.check_battery_voltage(60.0)
    with pytest.raises(EnvelopeError, match=r"not finite"):
        env.check_current(math.nan)


def test_capability_errors_for_one_way_units() -> None:
    load = unit(unit_id="LOAD1", current_source_max=0.0, can_source=False)
    supply = unit(unit_id="SUP1", current_sink_max=0.0, can_sink=False)
    with pytest.raises(CapabilityError, match=r"unit LOAD1: .*can only sink"):
        load.check_current(0.5)
    with pytest.raises(CapabilityError, match=r"unit SUP1: .*can only source"):
        supply.check_current(-0.5)
    assert load.check_current(-1.0) == -1.0
    assert supply.check_current(0.0) == 0.0
    no_battery = unit(battery_voltage_min=None, battery_voltage_max=None)
    with pytest.raises(CapabilityError, match="no battery side"):
        no_battery.check_battery_voltage(48.0)


def test_unit_without_soc_window_has_no_soc_limit() -> None:
    env = unit(soc_min=None, soc_max=None)
    assert not env.has_soc_window
    assert env.check_soc(0.01, 2.0) == 0.01
    with pytest.raises(EnvelopeError, match="fraction"):
        env.check_soc(1.5)


@settings(max_examples=50)
@given(source=limits, power=positive)
def test_merged_replaces_only_the_given_fields(source: float, power: float) -> None:
    base = unit()
    merged = base.merged({"current_source_max": source, "power_max": power})
    assert merged.current_source_max == source
    assert merged.power_max == power
    assert merged.current_sink_max == base.current_sink_max
    assert merged.voltage_min == base.voltage_min
    assert base.current_source_max == 2.3  # the original is unchanged


def test_merged_refuses_unknown_fields_and_inconsistent_values() -> None:
    base = unit()
    with pytest.raises(ConfigError, match=r"unknown field\(s\) current_max; allowed: voltage_min"):
        base.merged({"current_max": 1.0})
    with pytest.raises(ConfigError, match="voltage_min = 390 must be below voltage_max"):
        base.merged({"voltage_min": 390.0})
    with pytest.raises(ConfigError, match=r"soc_max = 1\.2 must be ≤ 1"):
        base.merged({"soc_max": 1.2})
    with pytest.raises(ConfigError, match="current_sink_max = -1"):
        base.merged({"current_sink_max": -1.0})
    with pytest.raises(ConfigError, match="cannot source"):
        unit(can_source=False)


def test_bus_envelope_validation() -> None:
    with pytest.raises(ConfigError, match="voltage window"):
        bus(voltage_min=400.0)
    with pytest.raises(ConfigError, match="exchange_current_sum_max"):
        bus(exchange_current_sum_max=0.0)
    with pytest.raises(ConfigError, match="branch A"):
        bus(branch_capacity={"A": -1.0})
    with pytest.raises(EnvelopeError, match=r"unknown branch 'Z'; allowed: A"):
        bus().check_branch("Z", 1.0)
    with pytest.raises(EnvelopeError, match=r"\+0\.3 A exceeds 0\.25 A \(2 units x 0\.125 A"):
        bus().check_balance(0.3, 2)
    assert bus().balance_limit(4) == 0.5


def test_envelope_checks_by_unit_id() -> None:
    env = Envelope(bus(), {"E001": unit(), "E002": unit(unit_id="E002", voltage_max=360.0)})
    assert env.check_current("E001", -2.0) == -2.0
    with pytest.raises(EnvelopeError, match="unknown unit 'E009'; allowed: E001, E002"):
        env.check_current("E009", 1.0)
    with pytest.raises(EnvelopeError, match="unit E002: voltage set-point 370 V"):
        env.check_voltage("E002", 370.0)
    narrowed = env.merged("E001", {"current_source_max": 1.0})
    with pytest.raises(EnvelopeError, match="unit E001"):
        narrowed.check_current("E001", 1.5)
    assert env.check_current("E001", 1.5) == 1.5
    with pytest.raises(ConfigError, match="belongs to unit"):
        Envelope(bus(), {"E003": unit()})
    rows = env.rows()
    assert ("bus", "voltage_max", "380 V") in rows
    assert ("branch A", "capacity", "5 A") in rows
    assert ("unit E002", "voltage_max", "360 V") in rows
    assert env.as_dict()["units"]["E001"]["current_source_max"] == 2.3
