"""Safety limits: refused before sending, tripped in the loop, shut down in order.

Layer 1 (the envelope) refuses a set-point before anything reaches an instrument; layers
2 and 3 (the instrument's protection, the supervisor) stop a running exchange, and the
ordered shutdown takes every unit off the bus before the voltage reference.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.checks import shutdown_order_problems, verdicts
from fixtures.exchanges import ExchangeFactory
from fixtures.measure import Measure
from fixtures.twin import Twin
from hil.clock import Clock
from hil.controller import CurrentController, Mode
from hil.errors import EnvelopeError, ExchangeError, SafetyTrip
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine
from hil.units.bench import Bench

#: The units of the default emulated bench these benches name (skipped on a bench without them).
pytestmark = pytest.mark.units(
    "BID1", "BID2", "BID3", "E001", "E002", "E003", "E004", "LOAD1", "SUP1", "SUP2"
)

#: Amps and volts beyond a limit, for set-points that must be refused.
BEYOND_A = 0.5
BEYOND_V = 10.0


def _check_ordered_shutdown(engine: ExchangeEngine, measure: Measure) -> None:
    report = engine.last_shutdown
    assert report is not None, "a trip must end in the ordered shutdown"
    assert not shutdown_order_problems(report)
    measure(
        "ordered shutdown duration",
        report.finished - report.started,
        "s",
        low=0.0,
        high=engine.policy.scram_vr_delay + 10.0,
    )


def _beyond(
    ctl: CurrentController, source_max: float, sink_max: float, voltage_max: float
) -> list[Callable[[], None]]:
    """Set-points just beyond a unit's envelope: source, sink and hold the bus too high."""
    return [
        lambda: ctl.set_current(source_max + BEYOND_A),
        lambda: ctl.set_current(-(sink_max + BEYOND_A)),
        lambda: ctl.hold_voltage(voltage_max + BEYOND_V, 1.0),
    ]


def test_setpoints_beyond_each_envelope_are_refused_before_sending(
    bench: Bench, measure: Measure, twin: Twin | None
) -> None:
    before = twin.status() if twin else None
    refused = 0
    for uid, ctl in bench.units.items():
        env = ctl.envelope
        for attempt in _beyond(ctl, env.current_source_max, env.current_sink_max, env.voltage_max):
            with pytest.raises(EnvelopeError, match=uid):
                attempt()
            refused += 1
    measure("set-points refused", refused, "", low=3 * len(bench.units), high=3 * len(bench.units))
    for uid, reading in bench.snapshot().readings.items():
        assert reading.mode is Mode.IDLE, f"unit {uid} left idle after refused set-points"
    if twin and before:  # not one set-point reached an instrument
        after = twin.status()
        for name, port in twin.ports(before).items():
            assert twin.ports(after)[name]["setpoints"] == port["setpoints"], name


@pytest.mark.parametrize(
    ("exchanges", "rule"),
    [
        ([Exchange.between("E001", "E003", 2.5, duration=10)], "envelope"),
        ([Exchange({"LOAD1": 1.0}, {"E003": 1.0}, duration=10)], "capability"),
        ([Exchange({"E001": 1.0}, {"E003": 0.5}, duration=10)], "balanced"),
        (
            [
                Exchange.between("E001", "E003", 1.0, duration=10),
                Exchange.between("E003", "E002", 1.0, duration=10),
            ],
            "same-direction",
        ),
    ],
    ids=["unit-current", "load-cannot-source", "unbalanced", "mixed-directions"],
)
def test_exchanges_beyond_the_rules_are_refused_untouched(
    exchange: ExchangeFactory, twin: Twin | None, exchanges: list[Exchange], rule: str
) -> None:
    before = twin.status() if twin else None
    with pytest.raises(ExchangeError, match=f"rule {rule}"):
        exchange.run(*exchanges)
    assert exchange.engine.last_shutdown is None  # nothing was on, nothing to shut down
    if twin and before:
        after = twin.status()
        for name, port in twin.ports(before).items():
            assert twin.ports(after)[name]["setpoints"] == port["setpoints"], name


@pytest.mark.emulated
@pytest.mark.parametrize(
    ("instrument", "trip", "source", "sink"),
    [
        ("SUP1.supply", "OVP", "SUP1", "E003"),
        ("SUP1.supply", "OCP", "SUP1", "E003"),
        ("E001.converter", "OVP", "E001", "E003"),
        ("LOAD1.load", "OTP", "E002", "LOAD1"),
        ("BID2.bidirectional", "OVP", "BID2", "E003"),  # the voltage reference trips
        ("SUP2.supply", "OVP", "SUP2", "E003"),
        ("BID3.bidirectional", "OCP", "BID3", "E003"),  # the voltage reference trips
    ],
    ids=[
        "supply-OVP",
        "supply-OCP",
        "converter-OVP",
        "load-OTP",
        "reference-OVP",
        "second-supply-OVP",
        "second-reference-OCP",
    ],
)
def test_protection_trip_ends_in_an_ordered_shutdown(
    exchange: ExchangeFactory,
    measure: Measure,
    emulator: Twin,
    clock: Clock,
    instrument: str,
    trip: str,
    source: str,
    sink: str,
) -> None:
    exchange.start(discharge={source: 1.0}, charge={sink: 1.0}, duration=300, name="tripped")
    exchange.wait(6)
    emulator.fault(instrument, "trip", trip=trip)
    with pytest.raises(SafetyTrip, match=f"protection:{instrument.split('.')[0]}"):
        exchange.serve()
    _check_ordered_shutdown(exchange.engine, measure)
    assert emulator.wait_safe(clock) == []


def test_bus_under_voltage_trips(
    exchange: ExchangeFactory,
    measure: Measure,
    unit: Callable[[str], CurrentController],
    bench: Bench,
    twin: Twin | None,
    clock: Clock,
) -> None:
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=300, name="sagging")
    # two units outside any exchange draw more than the voltage reference can give
    unit("E002").set_current(-2.3)
    unit("E004").set_current(-2.3)
    with pytest.raises(SafetyTrip, match=r"bus\.voltage"):
        exchange.serve()
    (low,) = verdicts(exchange.engine.last_report, "bus.voltage")
    assert low.value is not None
    measure("bus voltage at the trip", low.value, "V", high=bench.config.envelope.bus.voltage_min)
    _check_ordered_shutdown(exchange.engine, measure)
    if twin:
        assert twin.wait_safe(clock) == []


@pytest.mark.emulated
def test_over_temperature_trips(
    exchange: ExchangeFactory, measure: Measure, emulator: Twin, clock: Clock
) -> None:
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=300, name="hot")
    emulator.fault("E001.converter", "offset", quantity="temperature", value=30.0)  # reads ~55 °C
    with pytest.raises(SafetyTrip, match=r"range\.temperature:E001"):
        exchange.serve()
    (hot,) = verdicts(exchange.engine.last_report, "range.temperature")
    assert hot.value is not None
    measure("converter temperature at the trip", hot.value, "°C", low=45.0)
    _check_ordered_shutdown(exchange.engine, measure)
    assert emulator.wait_safe(clock) == []


@pytest.mark.emulated
@pytest.mark.parametrize(
    ("side", "soc", "limit"),
    [("discharge", 0.203, 0.20), ("charge", 0.947, 0.95)],
    ids=["discharging-unit-at-20%", "charging-unit-at-95%"],
)
def test_soc_force_stop(
    exchange: ExchangeFactory, measure: Measure, emulator: Twin, side: str, soc: float, limit: float
) -> None:
    watched = "E001" if side == "discharge" else "E003"
    emulator.set(watched, "soc", soc)
    run = exchange(discharge={"E001": 2.0}, charge={"E003": 2.0}, amount_wh=500, name="soc")
    assert run.stop_reason is not None and "force stop" in run.stop_reason
    assert watched in run.stop_reason
    measure.near(
        f"{watched} state of charge at the force stop", emulator.soc(watched), limit, 0.005
    )
    measure("energy before the force stop", run.energy_wh, "Wh", low=0.0, high=500.0)


@pytest.mark.emulated
def test_battery_permission_withdrawn_mid_exchange(
    exchange: ExchangeFactory, measure: Measure, emulator: Twin, clock: Clock
) -> None:
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=300, name="withdrawn")
    exchange.wait(6)
    emulator.fault("E001.battery", "permission", value=0)
    with pytest.raises(SafetyTrip, match="permission:E001"):
        exchange.serve()
    _check_ordered_shutdown(exchange.engine, measure)
    assert emulator.wait_safe(clock) == []


@pytest.mark.emulated
def test_converter_heavy_alarm(
    exchange: ExchangeFactory, measure: Measure, emulator: Twin, clock: Clock
) -> None:
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=300, name="alarmed")
    exchange.wait(6)
    emulator.fault("E001.converter", "alarm", level="heavy")
    with pytest.raises(SafetyTrip, match="protection:E001"):
        exchange.serve()
    _check_ordered_shutdown(exchange.engine, measure)
    assert emulator.wait_safe(clock) == []


def test_second_voltage_source_on_a_dead_bus_blocks_activation(
    exchange: ExchangeFactory,
    measure: Measure,
    unit: Callable[[str], CurrentController],
    clock: Clock,
    bench: Bench,
) -> None:
    rogue = unit("BID1")
    rogue.hold_voltage(350.0, 1.0)  # a source the engine did not start
    rogue.read()  # the instrument has taken the commands before time moves on
    clock.sleep(1.0)
    found = unit("E003").read().bus_voltage
    limit = bench.config.apis.activation_voltage_max
    measure("bus voltage before activation", found, "V", low=limit)
    with pytest.raises(SafetyTrip, match="another source holds the bus"):
        exchange(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=10, name="blocked")
    (run,) = exchange.history
    assert [s["step"] for s in run.steps] == ["plan"], "no current may flow: activation refused"
    _check_ordered_shutdown(exchange.engine, measure)
