"""Impossible exchanges are refused before any instrument is touched, naming the rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from emulated_rig import EMULATED_BENCH

from hil.clock import SimClock
from hil.config.bench import BenchConfig, Branch, Topology
from hil.config.benchfile import load_bench_file
from hil.controller import Capabilities
from hil.envelope import UnitEnvelope
from hil.errors import ExchangeError
from hil.exchange import BusLoad, Exchange, Rule, plan_exchange
from hil.exchange.engine import ExchangeEngine
from hil.units.bench import Bench

CONFIG = load_bench_file(EMULATED_BENCH)


def _caps(uid: str) -> Capabilities:
    unit = CONFIG.unit(uid)
    return Capabilities(
        can_source=unit.can_source,
        can_sink=unit.can_sink,
        can_hold_voltage=unit.kind != "load",
        source_current_max=unit.envelope.current_source_max,
        sink_current_max=unit.envelope.current_sink_max,
        voltage_max=600.0,
        power_max=unit.envelope.power_max,
        has_battery=unit.has_battery,
        hardware_watchdog=False,
    )


class Untouchable:
    """A unit that answers what it *is* (no I/O) and fails the test if it is touched."""

    def __init__(self, uid: str) -> None:
        self.unit_id = uid
        self.capabilities = _caps(uid)
        self.envelope: UnitEnvelope = CONFIG.unit(uid).envelope
        self.touched: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.touched.append(name)
        raise AssertionError(f"unit {self.unit_id} was touched ({name}) by a refused exchange")


def _clock_never_used(seconds: float) -> float:
    raise AssertionError("the clock advanced for a refused exchange")


@pytest.fixture
def untouched() -> tuple[ExchangeEngine, Mapping[str, Untouchable]]:
    units = {uid: Untouchable(uid) for uid in CONFIG.unit_ids}
    bench = Bench(CONFIG, units, SimClock(_clock_never_used))
    return ExchangeEngine(bench), units


BAD: list[tuple[str, Exchange, Rule]] = [
    ("both directions", Exchange({"E001": 1.0}, {"E001": 1.0}, amount_wh=5), Rule.ONE_DIRECTION),
    ("load asked to source", Exchange.between("LOAD1", "E002", 1.0, amount_wh=5), Rule.CAPABILITY),
    ("supply asked to sink", Exchange.between("E002", "SUP1", 1.0, amount_wh=5), Rule.CAPABILITY),
    ("beyond the envelope", Exchange.between("E001", "E002", 2.5, amount_wh=5), Rule.ENVELOPE),
    ("unknown unit", Exchange.between("E001", "E999", 1.0, amount_wh=5), Rule.KNOWN_UNIT),
    (
        "unknown reference",
        Exchange.between("E001", "E002", 1.0, amount_wh=5, reference="X"),
        Rule.KNOWN_UNIT,
    ),
    (
        "two references",
        Exchange({"E001": 1.0}, {"E002": 1.0}, amount_wh=5, reference=("E002", "E001")),
        Rule.ONE_REFERENCE,
    ),
    ("zero amount", Exchange.between("E001", "E002", 1.0, amount_wh=0), Rule.AMOUNT),
    ("negative duration", Exchange.between("E001", "E002", 1.0, duration=-3), Rule.AMOUNT),
    ("no amount", Exchange.between("E001", "E002", 1.0), Rule.AMOUNT),
    ("zero current", Exchange.between("E001", "E002", 0.0, amount_wh=5), Rule.POSITIVE_CURRENT),
    (
        "nan current",
        Exchange.between("E001", "E002", float("nan"), amount_wh=5),
        Rule.POSITIVE_CURRENT,
    ),
    ("one side", Exchange({"E001": 1.0}, {}, amount_wh=5), Rule.TWO_SIDES),
    ("unbalanced", Exchange({"E001": 1.0, "E002": 1.0}, {"E003": 1.5}, amount_wh=5), Rule.BALANCED),
    (
        "a load as reference",
        Exchange.between("E001", "E002", 1.0, amount_wh=5, reference="LOAD1"),
        Rule.REFERENCE,
    ),
    (
        "a source-only reference for the charging side",
        Exchange({"E001": 1.0}, {"E002": 1.0}, amount_wh=5, reference="SUP1"),
        Rule.REFERENCE,
    ),
    (
        "bad accounting side",
        Exchange({"E001": 1.0}, {"E002": 1.0}, amount_wh=5, accounting_side="x"),
        Rule.ACCOUNTING_SIDE,
    ),
]


@pytest.mark.parametrize(("case", "exchange", "rule"), BAD, ids=[b[0] for b in BAD])
def test_impossible_exchange_is_refused_untouched(
    untouched: tuple[ExchangeEngine, Mapping[str, Untouchable]],
    case: str,
    exchange: Exchange,
    rule: Rule,
) -> None:
    engine, units = untouched
    with pytest.raises(ExchangeError, match=rf"\[rule {rule.value}\]") as info:
        engine.run(exchange)
    assert "refused before any instrument was touched" in str(info.value)
    assert all(not u.touched for u in units.values()), case
    assert not engine.history and not engine.running


def test_the_message_names_the_unit_and_the_limit(
    untouched: tuple[ExchangeEngine, Mapping[str, Untouchable]],
) -> None:
    engine, _ = untouched
    with pytest.raises(ExchangeError) as info:
        engine.start(Exchange.between("E001", "E002", 2.5, amount_wh=5))
    text = str(info.value)
    assert "E001" in text and "2.3" in text and "current_source_max" in text


def plan(exchange: Exchange, load: BusLoad | None = None, config: BenchConfig = CONFIG) -> Any:
    units = {uid: Untouchable(uid) for uid in config.unit_ids}
    bench = Bench(config, units, SimClock(_clock_never_used))
    return plan_exchange(exchange, bench, load)


def test_rules_that_depend_on_the_running_exchanges() -> None:
    running = BusLoad(legs={"E001": 2.0, "E003": -2.0}, reference="E003", current_sum=2.0)
    cases = [
        (Exchange.between("E003", "E002", 1.0, amount_wh=5), Rule.SAME_DIRECTION),
        (Exchange.between("E001", "E002", 0.5, amount_wh=5), Rule.ENVELOPE),
        (Exchange.between("E002", "E004", 1.0, amount_wh=5, reference="E004"), Rule.ONE_REFERENCE),
        (Exchange.between("E002", "E003", 0.25, amount_wh=5), Rule.REFERENCE_HEADROOM),
        # A supply and a load could not take the bus over if E001->E003 ended first.
        (Exchange.between("SUP1", "LOAD1", 0.5, duration=5), Rule.REFERENCE),
    ]
    for exchange, rule in cases:
        with pytest.raises(ExchangeError, match=rf"\[rule {rule.value}\]"):
            plan(exchange, running)
    small = dataclasses.replace(
        CONFIG, apis=dataclasses.replace(CONFIG.apis, unit_current_capacity=2.0)
    )
    with pytest.raises(ExchangeError, match=r"above its capacity 2 A .*\[rule unit-capacity\]"):
        plan(Exchange.between("E001", "E002", 2.2, amount_wh=5), None, small)
    joined = plan(Exchange.between("E002", "E004", 1.0, amount_wh=5), running)
    assert joined.reference == "E003" and not joined.activates_bus
    assert joined.cc_units == ("E002", "E004")


def test_sum_of_exchange_currents_and_branch_capacity() -> None:
    heavy = BusLoad(legs={"BID1": 2.0, "E004": -2.0}, reference="BID1", current_sum=9.5)
    with pytest.raises(ExchangeError, match=r"\[rule sum-of-exchange-currents\]"):
        plan(Exchange.between("E001", "E002", 1.0, amount_wh=5), heavy)
    assert CONFIG.topology is not None
    narrow = dataclasses.replace(
        CONFIG,
        topology=Topology(
            True, {**CONFIG.topology.branches, "A": Branch("A", 3.0, ("E001", "E002"))}
        ),
    )
    running = BusLoad(legs={"E001": 2.0, "E003": -2.0}, reference="E003", current_sum=2.0)
    assert plan(Exchange.between("E002", "E004", 1.0, amount_wh=5), running, narrow)
    with pytest.raises(ExchangeError, match=r"branch A .*\[rule branch-capacity\]"):
        plan(Exchange.between("E002", "E004", 1.5, amount_wh=5), running, narrow)


def test_plan_orders_warm_up_sides_alternately_and_picks_the_adjuster() -> None:
    p = plan(
        Exchange({"E001": 1.0, "E002": 0.6, "SUP1": 1.0}, {"E003": 1.6, "LOAD1": 1.0}, duration=5)
    )
    assert p.reference == "E003"
    assert p.cc_units == ("E001", "LOAD1", "E002", "SUP1")
    assert p.adjuster == "E001"  # the largest current on the side opposite the reference
    assert p.accounting_units == ("E003", "LOAD1")
    assert dict(p.legs) == {"E001": 1.0, "E002": 0.6, "SUP1": 1.0, "E003": -1.6, "LOAD1": -1.0}
