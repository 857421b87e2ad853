"""An electric vehicle on the bus: a V2H charger/discharger in exchanges.

The car discharges into the bus with two batteries' worth of company (many-to-one); it
charges a fixed amount from two batteries, with the charger's own amount stop as the
backstop; and it is driven away mid-exchange, which must end in a scram with every output
safe. Where the emulated twin is there the benches also check the physics: the energy the
car's battery really took.
"""

from __future__ import annotations

import pytest

from fixtures.checks import shutdown_order_problems
from fixtures.exchanges import ExchangeFactory
from fixtures.measure import Measure
from fixtures.twin import Twin
from hil.clock import Clock
from hil.errors import HilError
from hil.units import EvUnit
from hil.units.bench import Bench

#: The units of the default emulated bench these benches name (skipped on a bench without them).
pytestmark = pytest.mark.units("EV1", "E001", "E002", "E003")


def ev_unit(bench: Bench) -> EvUnit:
    unit = bench.units["EV1"]
    assert isinstance(unit, EvUnit), f"EV1 is a {type(unit).__name__}, not an EV unit"
    return unit


def report_ev(measure: Measure, car: EvUnit) -> list[str]:
    """Put the car's charger and what it announced (mode and connection changes, ECHONET
    Lite INF) since the last look on the test's page of the report; returns the operation
    modes announced."""
    for ident in car.identify():
        measure.note(
            f"{ident.unit}.{ident.instrument}: {ident.vendor} {ident.model}, serial "
            f"{ident.serial} ({ident.firmware}) at {ident.resource}"
        )
    notices = car.notices()
    start = notices[0].t if notices else 0.0
    for n in notices:
        measure.note(
            f"{car.unit_id} announced (INF) EPC 0x{n.epc:02X} {n.name}: {n.value} "
            f"(+{n.t - start:.1f} s)"
        )
    return [n.value for n in notices if n.epc == 0xDA]


def test_ev_discharges_into_the_bus_many_to_one(
    exchange: ExchangeFactory, measure: Measure, bench: Bench, twin: Twin | None
) -> None:
    before = twin.battery_wh("EV1") if twin else 0.0
    run = exchange(
        discharge={"EV1": 1.2, "E001": 0.8},
        charge={"E003": 2.0},
        duration=60,
        name="car-and-house-to-one",
    )
    assert run.plan.reference == "E003"  # the car cannot hold the bus: a battery does
    measure.exchange(run)
    assert report_ev(measure, ev_unit(bench))[-2:] == ["discharge", "standby"]
    if twin:
        given = twin.battery_wh("EV1") - before
        measure("energy the car's battery gave", given, "Wh", low=1.0)


def test_ev_trades_one_to_one_with_a_house(exchange: ExchangeFactory, measure: Measure) -> None:
    # the car is the only unit to compensate with: its 0.1 A steps leave the rest of the
    # drift (bus bleed, meter errors) on the reference, within APIS's allowance
    run = exchange(discharge={"E002": 1.0}, charge={"EV1": 1.0}, duration=30, name="house-to-car")
    assert run.plan.reference == "E002" and run.plan.adjuster == "EV1"
    measure.exchange(run)


def test_ev_charges_a_fixed_amount_from_two_batteries(
    exchange: ExchangeFactory, measure: Measure, bench: Bench, twin: Twin | None
) -> None:
    car = ev_unit(bench)
    before = twin.battery_wh("EV1") if twin else 0.0
    car.set_amount(15.0)  # the charger's own stop, a little past the exchange's amount
    try:
        run = exchange(
            discharge={"E001": 0.8, "E002": 0.7},
            charge={"EV1": 1.5},
            amount_wh=10,
            name="two-to-car",
        )
    finally:
        car.set_amount(0.0)
    assert run.plan.reference in ("E001", "E002")
    measure.exchange(run)
    measure.near("energy counted on the car's side", run.energy_wh, 10.0, 0.5, "Wh")
    modes = report_ev(measure, car)
    assert "charge" in modes and modes[-1] == "standby", modes
    if twin:
        taken = before - twin.battery_wh("EV1")
        measure("energy the car's battery took", taken, "Wh", low=8.0, high=10.5)


@pytest.mark.emulated
def test_car_unplugged_mid_exchange_scrams_all_safe(
    exchange: ExchangeFactory, measure: Measure, bench: Bench, emulator: Twin, clock: Clock
) -> None:
    exchange.start(
        discharge={"E001": 0.6, "E002": 0.4}, charge={"EV1": 1.0}, duration=600, name="unplugged"
    )
    exchange.wait(20)
    emulator.fault("EV1.ev", "unplug")
    with pytest.raises(HilError, match="EV1"):
        exchange.serve()
    report = exchange.engine.last_shutdown
    assert report is not None and not shutdown_order_problems(report)
    assert emulator.wait_safe(clock) == []
    report_ev(measure, ev_unit(bench))
    emulator.set("EV1", "plugged", True)
