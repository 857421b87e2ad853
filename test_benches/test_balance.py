"""Grid-current balance: compensation balances the bus, the supervisor catches what does not.

APIS compensates each new exchange until the voltage reference carries what it carried
before (within ``driftAllowanceA``), and the supervisor requires |Σ currents| of the units
in exchanges to stay within ``balance_allowance_per_unit`` x their number.
"""

from __future__ import annotations

import pytest

from fixtures.checks import shutdown_order_problems, verdicts
from fixtures.exchanges import ExchangeFactory
from fixtures.measure import Measure
from fixtures.options import BenchOptions
from fixtures.twin import Twin
from hil.clock import Clock
from hil.errors import HilError, SafetyTrip
from hil.units.bench import Bench

#: The units of the default emulated bench these benches name (skipped on a bench without them).
pytestmark = pytest.mark.units("E001", "E002", "E003")


def test_compensation_balances_the_bus(
    exchange: ExchangeFactory, measure: Measure, bench: Bench, twin: Twin | None
) -> None:
    policy = bench.config.apis
    run = exchange.start(
        discharge={"E001": 1.2, "E002": 0.8}, charge={"E003": 2.0}, duration=30, name="balanced"
    )
    compensation = run.step("compensate")
    assert compensation is not None
    drift = compensation["trace"][-1]["drift"]
    measure(
        "reference drift after compensation",
        abs(drift),
        "A",
        high=policy.compensation_drift_allowance,
    )
    readings = bench.snapshot().readings
    measure.balance("Σ currents after compensation", readings, run.plan.legs)
    reference = readings[run.plan.reference].bus_current
    target = run.vr_target if run.vr_target is not None else 0.0
    measure.near(
        "reference current after compensation", reference, target, policy.current_allowance, "A"
    )
    if twin:  # the true currents balance too (the bus bleed and capacitor take the rest)
        true = twin.currents()
        residual = abs(sum(true[uid] for uid in run.plan.legs))
        limit = bench.config.envelope.bus.balance_limit(len(run.plan.legs))
        measure("true Σ currents after compensation", residual, "A", high=limit)
    exchange.serve(timeout=600)
    measure.exchange(run)


@pytest.mark.emulated
def test_sensor_offset_on_one_unit_is_caught_as_an_imbalance(
    exchange: ExchangeFactory, measure: Measure, emulator: Twin, clock: Clock
) -> None:
    exchange.start(discharge={"E001": 1.0, "E002": 0.5}, charge={"E003": 1.5}, duration=300)
    emulator.fault("E003.converter", "offset", value=0.6)  # the reference's meter reads 0.6 A high
    with pytest.raises(SafetyTrip, match="balance"):
        exchange.serve()
    (balance,) = verdicts(exchange.engine.last_report, "balance")
    assert balance.value is not None and balance.limit is not None
    measure("Σ currents the supervisor saw", abs(balance.value), "A", low=balance.limit)
    report = exchange.engine.last_shutdown
    assert report is not None and not shutdown_order_problems(report)
    assert emulator.wait_safe(clock) == []


@pytest.mark.emulated
@pytest.mark.parametrize(
    ("delay_in_timeouts", "converges"),
    [(0.1, True), (2.4, False)],
    ids=["slow-but-in-time", "slower-than-its-timeout"],
)
def test_slow_unit_converges_or_fails_cleanly(
    exchange: ExchangeFactory,
    measure: Measure,
    emulator: Twin,
    clock: Clock,
    hil_options: BenchOptions,
    delay_in_timeouts: float,
    converges: bool,
) -> None:
    timeout = hil_options.instrument_timeout
    assert timeout is not None
    emulator.fault("E001.converter", "delay", seconds=delay_in_timeouts * timeout)
    if converges:
        run = exchange(discharge={"E001": 1.0}, charge={"E003": 1.0}, amount_wh=5, name="slow")
        measure.exchange(run)
        return
    with pytest.raises(HilError, match=r"E001|resource"):
        exchange(discharge={"E001": 1.0}, charge={"E003": 1.0}, amount_wh=5, name="too-slow")
    report = exchange.engine.last_shutdown
    assert report is not None and not shutdown_order_problems(report)
    assert emulator.wait_safe(clock) == []
