"""Exchanges: one-to-one, many-to-one, one-to-many, concurrent, joining, hand-over, and
every kind of unit as source, sink and voltage reference.

Each bench runs the APIS sequence through the engine and records its key figures
(``measure.exchange``: energy, settling time, bus voltage, balance residual, currents).
Where the emulated twin is there it also checks the physics: the energy the charging
battery really took, the current each unit really pushed into the bus.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.exchanges import ExchangeFactory
from fixtures.measure import Measure
from fixtures.twin import Twin
from hil.controller import CurrentController
from hil.exchange import Exchange
from hil.units import ConverterUnit, SupplyLoadBattery
from hil.units.bench import Bench

#: The units of the default emulated bench these benches name (skipped on a bench without them).
pytestmark = pytest.mark.units(
    "BID1", "BID2", "BID3", "E001", "E002", "E003", "E004", "E005", "LOAD1", "SUP1", "SUP2"
)

#: What an emulated meter may differ from the truth (offset + gain + noise, A).
METER_MARGIN_A = 0.02


@pytest.mark.parametrize(("source", "sink"), [("E001", "E003"), ("E003", "E001")])
def test_one_to_one_in_both_directions(
    exchange: ExchangeFactory, measure: Measure, twin: Twin | None, source: str, sink: str
) -> None:
    before = twin.battery_wh(sink) if twin else 0.0
    run = exchange(discharge={source: 1.5}, charge={sink: 1.5}, amount_wh=20, name="one-to-one")
    assert run.plan.reference == sink  # APIS: the charging side holds the bus
    measure.exchange(run)
    if twin:  # the energy counted is what really went into the charging battery
        taken = before - twin.battery_wh(sink)
        measure.near("energy taken by the charging battery", taken, run.energy_wh, 0.2, "Wh")


def test_many_to_one(exchange: ExchangeFactory, measure: Measure) -> None:
    run = exchange(
        discharge={"E001": 0.8, "E002": 0.7, "SUP1": 0.5},
        charge={"E003": 2.0},
        duration=30,
        name="three-to-one",
    )
    assert run.plan.reference == "E003"
    measure.exchange(run)


def test_one_to_many(exchange: ExchangeFactory, measure: Measure) -> None:
    run = exchange(
        discharge={"E004": 1.6},
        charge={"E001": 0.6, "E002": 0.5, "LOAD1": 0.5},
        duration=30,
        name="one-to-three",
    )
    assert run.plan.reference == "E004"  # a large-capacity unit holds the bus
    measure.exchange(run)


def test_many_to_many_concurrent_exchanges(
    exchange: ExchangeFactory, measure: Measure, bench: Bench, twin: Twin | None
) -> None:
    houses = exchange.start(
        discharge={"E001": 1.0, "E002": 0.5},
        charge={"E003": 1.0, "E004": 0.5},
        duration=40,
        name="houses",
    )
    lab = exchange.start(
        discharge={"SUP1": 0.8}, charge={"E003": 0.3, "LOAD1": 0.5}, duration=30, name="lab"
    )
    exchange.wait(10)
    members = {*houses.plan.legs, *lab.plan.legs}
    measure.balance("balance residual, both exchanges", bench.snapshot().readings, members)
    if twin:  # a unit in two exchanges carries their sum
        currents = twin.currents()
        measure.near("E003 true current", currents["E003"], -1.3, 0.125 + METER_MARGIN_A, "A")
        measure.near("LOAD1 true current", currents["LOAD1"], -0.5, METER_MARGIN_A, "A")
    exchange.serve(timeout=600)
    for run in (houses, lab):
        measure.exchange(run, concurrent=True)


def test_exchange_joins_a_running_bus(
    exchange: ExchangeFactory, measure: Measure, twin: Twin | None
) -> None:
    first = exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=60, name="first")
    exchange.wait(10)
    setpoint = exchange.engine.setpoints["E001"]
    before = twin.currents() if twin else {}
    second = exchange.start(
        discharge={"E002": 1.1}, charge={"E003": 1.1}, duration=20, name="joining"
    )
    joined = second.step("activate")
    assert joined is not None and joined["joined"] is True
    assert exchange.engine.setpoints["E001"] == setpoint  # the running exchange is untouched
    if twin:
        after = twin.currents()
        measure.near(
            "E001 current change when the second joined",
            after["E001"] - before["E001"],
            0.0,
            METER_MARGIN_A,
            "A",
        )
        measure.near(
            "E003 current change", after["E003"] - before["E003"], -1.1, 0.03 + METER_MARGIN_A, "A"
        )
    exchange.serve(timeout=600)
    measure.exchange(first, concurrent=True)
    measure.exchange(second, concurrent=True)


def test_voltage_reference_hand_over(exchange: ExchangeFactory, measure: Measure) -> None:
    exchange.schedule(
        [
            (0.0, Exchange.between("E001", "E003", 1.0, duration=20.0, name="ends-first")),
            (5.0, Exchange.between("SUP1", "E002", 0.8, duration=60.0, name="goes-on")),
        ],
        timeout=600,
    )
    first, second = exchange.history
    hand = first.step("handOver")
    assert hand is not None, "the reference's exchanges ended first: it must hand over"
    assert (hand["old_reference"], hand["new_reference"]) == ("E003", "E002")
    measure.near("new reference voltage after hand-over", hand["new_voltage"], 350.0, 4.0, "V")
    measure("old reference current after hand-over", abs(hand["old_current"]), "A", high=0.125)
    measure.exchange(second, concurrent=True)


def test_supply_and_load_with_a_converter_as_reference(
    exchange: ExchangeFactory, measure: Measure
) -> None:
    run = exchange(
        discharge={"SUP1": 1.0}, charge={"LOAD1": 1.0}, duration=30, reference="E002", name="lab"
    )
    assert run.plan.reference == "E002" and set(run.plan.cc_units) == {"SUP1", "LOAD1"}
    measure.exchange(run)


@pytest.mark.parametrize(
    ("source", "sink"),
    [
        ("BID1", "BID2"),
        ("BID2", "BID1"),
        ("BID2", "E001"),
        ("E001", "BID1"),
        ("BID3", "E001"),
        ("E001", "BID3"),
        ("SUP2", "BID3"),
    ],
    ids=[
        "IT6000C-to-PSB",
        "PSB-to-IT6000C",
        "PSB-to-battery",
        "battery-to-IT6000C",
        "RP7900-to-battery",
        "battery-to-RP7900",
        "PWR01-to-RP7900",
    ],
)
def test_bidirectional_supplies_source_and_sink(
    exchange: ExchangeFactory, measure: Measure, source: str, sink: str
) -> None:
    run = exchange(discharge={source: 1.5}, charge={sink: 1.5}, duration=30, name="bidirectional")
    measure.exchange(run)


def _battery_side(unit: CurrentController) -> SupplyLoadBattery:
    assert isinstance(unit, ConverterUnit) and isinstance(unit.battery, SupplyLoadBattery), (
        f"unit {unit.unit_id} is not a converter with a supply + load battery side"
    )
    return unit.battery


@pytest.mark.parametrize(("source", "sink"), [("E005", "E002"), ("E002", "E005")])
def test_converter_on_a_supply_and_load_exchanges_with_a_battery_unit(
    exchange: ExchangeFactory,
    measure: Measure,
    unit: Callable[[str], CurrentController],
    source: str,
    sink: str,
) -> None:
    run = exchange.start(discharge={source: 1.5}, charge={sink: 1.5}, duration=30, name="rig")
    exchange.wait(10)
    rig = unit("E005")
    battery = _battery_side(rig)
    converter = rig.read()
    supply, load = battery.psu.read(), battery.load.read()
    assert converter.battery_current is not None and converter.battery_voltage is not None
    # what the converter draws from its battery node = supply in - load out (+ discharging)
    node = supply.current - load.current
    allowance = 0.02 * abs(node) + 0.1
    measure.near(
        "E005 battery current: converter vs supply - load",
        converter.battery_current,
        node,
        allowance,
        "A",
    )
    measure.near(
        "E005 battery voltage: converter vs supply",
        converter.battery_voltage,
        supply.voltage,
        0.5,
        "V",
    )
    assert (converter.battery_current > 0) == (source == "E005")
    exchange.serve(timeout=600)
    measure.exchange(run)
