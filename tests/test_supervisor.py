"""The supervisor's checks, escalation and records, on readings made up for each case."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from emulated_rig import EMULATED_BENCH

from hil.config.benchfile import load_bench_file
from hil.controller import Mode, Reading
from hil.exchange.supervisor import BusExpectation, Expectation, Level, Supervisor
from hil.recorder import MemoryRecorder

CONFIG = load_bench_file(EMULATED_BENCH)
UNITS = CONFIG.unit_ids


def idle(uid: str, **changes: object) -> Reading:
    base = Reading(uid, 0.0, bus_voltage=0.5, bus_current=0.0, mode=Mode.IDLE, temperature=25.0)
    return base._replace(**changes)  # type: ignore[arg-type]


def all_idle(**overrides: Reading) -> dict[str, Reading]:
    readings = {uid: idle(uid) for uid in UNITS}
    readings.update(overrides)
    return readings


def exchange_running(
    e001: float = 2.0, e003: float = -2.0
) -> tuple[dict[str, Reading], BusExpectation]:
    """E001 discharges 2 A (CC) into E003, the reference at 350 V."""
    readings = all_idle(
        E001=idle(
            "E001",
            mode=Mode.CURRENT,
            bus_voltage=350.0,
            bus_current=e001,
            battery_voltage=48.0,
            battery_current=15.0,
        ),
        E003=idle(
            "E003",
            mode=Mode.VOLTAGE_REFERENCE,
            bus_voltage=350.2,
            bus_current=e003,
            battery_voltage=48.0,
            battery_current=-13.0,
        ),
    )
    expected = BusExpectation(
        units={
            "E001": Expectation(Mode.CURRENT, 2.0, direction=1),
            "E003": Expectation(Mode.VOLTAGE_REFERENCE, 350.0, direction=-1),
        },
        in_exchange=frozenset({"E001", "E003"}),
        reference="E003",
        bus_up=True,
    )
    return readings, expected


def levels(
    sup: Supervisor,
    readings: Mapping[str, Reading],
    expected: BusExpectation,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Level]:
    report = sup.check(0.0, readings, errors or {}, expected)
    return {v.key: v.level for v in report.verdicts}


def test_a_clean_bench_passes_every_check() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running()
    result = levels(sup, readings, expected)
    assert set(result.values()) == {Level.PASS}
    assert {
        "balance",
        "bus.voltage",
        "branch:A",
        "tracking:E001",
        "mode:E003",
        "comm:LOAD1",
    } <= set(result)


def test_a_failing_check_warns_first_then_errors_then_recovers() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running(e001=2.3)
    assert levels(sup, readings, expected)["tracking:E001"] is Level.WARN
    assert levels(sup, readings, expected)["tracking:E001"] is Level.ERROR
    good, _ = exchange_running()
    assert levels(sup, good, expected)["tracking:E001"] is Level.PASS
    assert levels(sup, readings, expected)["tracking:E001"] is Level.WARN


def test_protection_trips_are_errors_at_once() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running()
    readings["E002"] = idle("E002", flags=frozenset({"OVP"}))
    readings["BID2"] = idle("BID2", mode=Mode.FAULT)
    result = levels(sup, readings, expected)
    assert result["protection:E002"] is Level.ERROR
    assert result["protection:BID2"] is Level.ERROR


def test_battery_permission_against_the_direction_is_an_error_idle_only_a_note() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running()
    readings["E001"] = readings["E001"]._replace(flags=frozenset({"NO_DISCHARGE"}))
    readings["E002"] = idle("E002", flags=frozenset({"NO_CHARGE", "NO_DISCHARGE"}))
    result = levels(sup, readings, expected)
    assert result["permission:E001"] is Level.ERROR
    assert result["permission:E002"] is Level.WARN
    assert levels(sup, readings, expected)["permission:E002"] is Level.WARN  # never escalates


def test_balance_counts_the_units_in_exchanges() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running(e001=2.1, e003=-1.8)  # residual 0.3 A > 2 x 0.125
    expected = dataclasses.replace(
        expected, units={**expected.units, "E001": Expectation(Mode.CURRENT, 2.1, direction=1)}
    )
    report = sup.check(0.0, readings, {}, expected)
    balance = next(v for v in report.verdicts if v.key == "balance")
    assert balance.level is Level.WARN
    assert balance.value == pytest.approx(0.3) and balance.limit == pytest.approx(0.25)


def test_branch_capacity_and_bus_window() -> None:
    narrow = dataclasses.replace(
        CONFIG,
        envelope=dataclasses.replace(
            CONFIG.envelope, bus=dataclasses.replace(CONFIG.envelope.bus, voltage_max=360.0)
        ),
    )
    assert CONFIG.topology is not None
    branches = {**CONFIG.topology.branches}
    branches["A"] = dataclasses.replace(branches["A"], capacity=1.5)
    narrow = dataclasses.replace(
        narrow, topology=dataclasses.replace(CONFIG.topology, branches=branches)
    )
    sup = Supervisor(narrow)
    readings, expected = exchange_running()
    readings["E003"] = readings["E003"]._replace(bus_voltage=365.0)
    result = levels(sup, readings, expected)
    assert result["branch:A"] is Level.WARN and result["bus.voltage"] is Level.WARN


def test_ranges_and_modes() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running()
    readings["E001"] = readings["E001"]._replace(temperature=50.0, battery_voltage=60.0)
    readings["E004"] = idle("E004", mode=Mode.CURRENT, bus_current=0.9)  # on without an exchange
    readings["E002"] = idle("E002", battery_voltage=0.0)  # battery side off while idle: fine
    result = levels(sup, readings, expected)
    assert result["range.temperature:E001"] is Level.WARN
    assert result["range.battery_voltage:E001"] is Level.WARN
    assert result["mode:E004"] is Level.WARN and result["tracking:E004"] is Level.WARN
    assert "range.battery_voltage:E002" not in result


def test_silent_units_warn_then_error_and_skip_their_other_checks() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running()
    del readings["E002"]
    errors = {"E002": "InstrumentTimeout: no reply"}
    assert levels(sup, readings, expected, errors)["comm:E002"] is Level.WARN
    result = levels(sup, readings, expected, errors)
    assert result["comm:E002"] is Level.ERROR
    assert "mode:E002" not in result


def test_settling_units_and_a_ramping_bus_are_not_judged_on_tracking() -> None:
    sup = Supervisor(CONFIG)
    readings, expected = exchange_running(e001=1.0)
    expected = dataclasses.replace(
        expected,
        units={
            **expected.units,
            "E001": Expectation(Mode.CURRENT, 2.0, direction=1, settling=True),
        },
        bus_up=False,
    )
    result = levels(sup, readings, expected)
    assert "tracking:E001" not in result and "balance" not in result
    assert set(result.values()) == {Level.PASS}


def test_every_verdict_is_recorded() -> None:
    rec = MemoryRecorder()
    sup = Supervisor(CONFIG, recorder=rec)
    readings, expected = exchange_running(e001=2.3)
    sup.check(1.5, readings, {}, expected)
    cycle = next(rec.of_type("measurement"))
    assert cycle["name"] == "supervisor" and cycle["t"] == 1.5 and cycle["verdict"] == "warn"
    assert cycle["checks"]["tracking:E001"] == "warn" and cycle["checks"]["balance"] == "warn"
    assert len(cycle["checks"]) > 5 * len(UNITS)
    events = list(rec.of_type("safety_event"))
    assert {e["key"] for e in events} == {"tracking:E001", "balance"}
    assert all(e["level"] == "warn" and "E001" in rec.text() for e in events)


def test_inspect_is_immediate_on_one_reading() -> None:
    sup = Supervisor(CONFIG)
    bad = idle(
        "E003", mode=Mode.VOLTAGE_REFERENCE, bus_current=-1.0, flags=frozenset({"NO_CHARGE"})
    )
    report = sup.inspect(bad, Expectation(Mode.VOLTAGE_REFERENCE, 350.0))
    assert [v.key for v in report.errors] == ["permission:E003"]
    assert sup.inspect(idle("E003"), Expectation()).ok


def stale_config(periods: int) -> Supervisor:
    return Supervisor(
        dataclasses.replace(CONFIG, apis=dataclasses.replace(CONFIG.apis, stale_periods=periods))
    )


def test_a_frozen_meter_while_current_flows_is_an_error_after_stale_periods() -> None:
    sup = stale_config(3)
    readings, expected = exchange_running()
    seen = [levels(sup, readings, expected)["stale:E001"] for _ in range(4)]
    assert seen == [Level.PASS, Level.PASS, Level.PASS, Level.ERROR]  # 3 repeats
    report = sup.check(0.0, readings, {}, expected)
    message = next(v.message for v in report.errors if v.key == "stale:E001")
    assert "unit E001 reads exactly +2 A at 350 V for 4 supervisor periods" in message
    assert "stale_periods = 3" in message
    sup.reset()
    assert levels(sup, readings, expected)["stale:E001"] is Level.PASS


def test_a_live_meter_an_idle_unit_and_stale_periods_0_are_not_judged_frozen() -> None:
    live = stale_config(2)
    readings, expected = exchange_running()
    for k in range(6):
        moved = readings["E001"]._replace(bus_current=2.0 + 0.001 * (k % 2))
        result = levels(live, {**readings, "E001": moved}, expected)
        assert result["stale:E001"] is Level.PASS
        assert "stale:E002" not in result  # idle, no current: nothing to judge
    off = stale_config(0)
    assert all("stale:E001" not in levels(off, readings, expected) for _ in range(6))
