"""The exchange engine on the emulated bench, checked against the plant's true state."""

from __future__ import annotations

from typing import Any

import pytest
from emulated_rig import Rig

from hil.controller import Mode
from hil.errors import ExchangeError, SafetyTrip
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine, ExchangeRun, State
from hil.recorder import MemoryRecorder

#: What the emulated meters may differ from the truth (offset + gain + noise, A).
SENSOR_MARGIN_A = 0.02
APIS_STEPS = ["plan", "activate", "rampUp", "authorize", "warmUp", "compensate", "start", "stop"]


class TrueState:
    """Records the plant's true state as each step begins (the engine's ``on_step``)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.at: dict[tuple[str, str], dict[str, Any]] = {}

    def __call__(self, step: str, run: ExchangeRun) -> None:
        self.at[(run.name, step)] = self.rig.status()

    def bus(self, name: str, step: str) -> dict[str, dict[str, Any]]:
        return self.rig.bus_ports(self.at[(name, step)])

    def battery_wh(self, name: str, step: str, unit: str) -> float:
        """Energy the battery delivered at its terminals so far (Wh, + discharging)."""
        return float(self.rig.battery_ports(self.at[(name, step)])[unit]["energy_j"]) / 3600


def recorder(engine: ExchangeEngine) -> MemoryRecorder:
    assert isinstance(engine.recorder, MemoryRecorder)
    return engine.recorder


def test_one_to_one_runs_every_apis_step_with_exact_energy_and_ends_safe(rig: Rig) -> None:
    truth = TrueState(rig)
    engine = rig.engine(on_step=truth)
    (run,) = engine.run(Exchange.between("E001", "E003", 1.5, amount_wh=20, name="one"))

    assert [s["step"] for s in run.steps] == [*APIS_STEPS, "deactivate"]
    times = [s["t"] for s in run.steps]
    assert times == sorted(times)
    assert run.state is State.DONE and run.stop_reason is not None
    assert "amount reached" in run.stop_reason
    assert run.plan.reference == "E003" and run.plan.adjuster == "E001"
    # after compensation the reference carries the exchange current, the bus is balanced
    bus = truth.bus("one", "start")
    assert abs(bus["E003"]["current"] - (-1.5)) <= 0.03 + SENSOR_MARGIN_A
    assert abs(bus["E001"]["current"] + bus["E003"]["current"]) <= 2 * 0.125
    assert bus["E001"]["mode"] == "DISCHARGE" and bus["E003"]["mode"] == "VOLTAGE_REFERENCE"
    # energy counted = energy into the charging battery (true) within 1 %
    into = truth.battery_wh("one", "start", "E003") - truth.battery_wh("one", "stop", "E003")
    assert run.energy_wh == pytest.approx(into, rel=0.01)
    assert run.energy_wh >= 20.0 * (1 - 1e-9)  # the engine's stop rule (float sums)
    status = rig.status()
    assert status["all_safe"], [p["port"] for p in status["ports"] if not p["safe"]]
    assert engine.reference is None and not engine.setpoints
    lines = recorder(engine).lines
    assert [line["step"] for line in lines if line["type"] == "step"] == [
        s["step"] for s in run.steps
    ]
    series = next(line for line in lines if line["type"] == "series")
    assert {"t", "bus_voltage", "residual", "energy_wh", "E001", "E003"} <= set(series["columns"])
    assert len(series["data"]["t"]) >= 2


def test_warm_up_steps_by_current_step_and_checks_each(engine: ExchangeEngine) -> None:
    (run,) = engine.run(Exchange.between("E002", "E004", 2.1, duration=10.0))
    warm = run.step("warmUp")
    assert warm is not None
    assert [t["setpoint"] for t in warm["trace"]] == pytest.approx([1.0, 2.0, 2.1])
    for entry in warm["trace"]:
        assert abs(entry["read_current"] - entry["setpoint"]) <= 0.125
    stop = run.step("stop")
    assert stop is not None
    assert [t["setpoint"] for t in stop["trace"]][-1] == 0.0


def test_reference_is_the_charging_side_then_large_capacity_then_explicit(
    engine: ExchangeEngine,
) -> None:
    load = engine.bus_load()
    plans = [
        engine.admit(Exchange.between("E001", "E003", 1.0, amount_wh=1)),
        engine.admit(Exchange.between("E004", "E002", 1.0, amount_wh=1)),  # E004 large capacity
        engine.admit(Exchange.between("E001", "E002", 1.0, amount_wh=1, reference="E001")),
        engine.admit(Exchange.between("E001", "LOAD1", 1.0, amount_wh=1)),  # a load cannot hold
    ]
    assert [p.reference for p in plans] == ["E003", "E004", "E001", "E001"]
    assert engine.bus_load() == load  # admitting touched nothing


def test_many_to_one_sets_each_unit_and_balances(rig: Rig) -> None:
    truth = TrueState(rig)
    engine = rig.engine(on_step=truth)
    ex = Exchange({"E001": 0.8, "E002": 0.7, "SUP1": 0.5}, {"E003": 2.0}, duration=20.0, name="m1")
    (run,) = engine.run(ex)
    assert run.plan.reference == "E003"
    bus = truth.bus("m1", "start")
    for uid, amps in (("E001", 0.8), ("E002", 0.7), ("SUP1", 0.5)):
        assert abs(bus[uid]["current"] - amps) <= 0.125 + 0.05  # compensation moves one
    assert abs(bus["E003"]["current"] + 2.0) <= 0.03 + SENSOR_MARGIN_A
    residual = sum(bus[u]["current"] for u in ("E001", "E002", "SUP1", "E003"))
    assert abs(residual) <= 4 * 0.125
    assert rig.status()["all_safe"]


def test_one_to_many_with_the_large_capacity_unit_as_reference(rig: Rig) -> None:
    truth = TrueState(rig)
    engine = rig.engine(on_step=truth)
    (run,) = engine.run(
        Exchange({"E004": 1.6}, {"E001": 0.9, "E002": 0.7}, duration=15.0, name="o1")
    )
    assert run.plan.reference == "E004"
    assert set(run.plan.accounting_units) == {"E001", "E002"}
    bus = truth.bus("o1", "start")
    assert bus["E004"]["mode"] == "VOLTAGE_REFERENCE"
    assert abs(bus["E004"]["current"] - 1.6) <= 0.03 + SENSOR_MARGIN_A
    assert rig.status()["all_safe"]


def test_joining_exchange_leaves_the_running_one_alone(rig: Rig) -> None:
    truth = TrueState(rig)
    engine = rig.engine(on_step=truth)
    first = engine.start(Exchange.between("E001", "E003", 1.0, duration=60.0, name="a"))
    engine.wait(10.0)
    setpoint_a = engine.setpoints["E001"]
    before = truth.rig.bus_ports()
    second = engine.start(Exchange.between("E002", "E003", 1.1, duration=20.0, name="b"))
    # the first exchange's unit was not touched; the reference's target is before + leg
    assert engine.setpoints["E001"] == setpoint_a
    join = second.step("activate")
    assert join is not None and join["joined"] is True
    assert second.vr_target == pytest.approx(join["reference_current_before"] - 1.1)
    after = truth.bus("b", "start")
    assert abs(after["E001"]["current"] - before["E001"]["current"]) <= 0.01
    assert (
        abs(after["E003"]["current"] - (before["E003"]["current"] - 1.1)) <= 0.03 + SENSOR_MARGIN_A
    )
    # a unit in two exchanges of the same direction carries their sum
    third = engine.start(Exchange.between("E001", "E004", 0.5, duration=5.0, name="c"))
    assert engine.setpoints["E001"] == pytest.approx(setpoint_a + third.leg("E001"))
    engine.serve(timeout=200)
    assert [r.state for r in (first, second, third)] == [State.DONE] * 3
    assert first.step("deactivate") is not None  # the last one to end takes the bus down
    assert rig.status()["all_safe"]


def test_reference_is_handed_over_when_its_exchanges_end(rig: Rig) -> None:
    truth = TrueState(rig)
    engine = rig.engine(on_step=truth)
    engine.run_schedule(
        [
            (0.0, Exchange.between("E001", "E003", 1.0, duration=20.0, name="h1")),
            (5.0, Exchange.between("SUP1", "E002", 0.8, duration=60.0, name="h2")),
        ],
        timeout=300,
    )
    first, second = engine.history
    hand = first.step("handOver")
    assert hand is not None
    assert hand["old_reference"] == "E003" and hand["new_reference"] == "E002"
    assert hand["droop_old"] == pytest.approx(0.039) and hand["droop_new"] == pytest.approx(0.039)
    after = truth.bus("h1", "handOver")  # true state as the hand-over began
    assert after["E003"]["mode"] == "VOLTAGE_REFERENCE"
    assert len({len(column) for column in first.series.values()}) == 1  # aligned columns
    deact = second.step("deactivate")
    assert deact is not None and deact["reference"] == "E002"
    assert rig.status()["all_safe"]


def test_soc_force_stop_ends_the_exchange_early(rig: Rig) -> None:
    rig.control.set("E001", "soc", 0.203)
    engine = rig.engine()
    (run,) = engine.run(Exchange.between("E001", "E003", 1.0, amount_wh=200))
    assert run.stop_reason is not None and "dischargeUnitLowerLimitRsoc" in run.stop_reason
    assert "E001" in run.stop_reason
    assert run.energy_wh < 200
    assert rig.status()["all_safe"]


def test_duration_exchange_stops_on_time(engine: ExchangeEngine) -> None:
    (run,) = engine.run(Exchange.between("BID1", "E002", 1.0, duration=42.0))
    assert run.t_start is not None and run.t_stop is not None
    assert run.t_stop - run.t_start == pytest.approx(42.0, abs=1e-6)
    assert run.plan.reference == "BID1"  # large capacity first


def test_supply_and_load_exchange_with_a_converter_reference(rig: Rig) -> None:
    engine = rig.engine()
    (run,) = engine.run(Exchange({"SUP1": 1.0}, {"LOAD1": 1.0}, duration=10.0, reference="E002"))
    assert run.plan.reference == "E002" and set(run.plan.cc_units) == {"SUP1", "LOAD1"}
    assert run.state is State.DONE
    assert rig.status()["all_safe"]


def test_error_scrams_and_holds_new_exchanges(rig: Rig) -> None:
    engine = rig.engine()
    engine.start(Exchange.between("E001", "E003", 1.0, duration=600.0))
    rig.control.fault("E001.converter", "offset", value=0.6)
    with pytest.raises(SafetyTrip, match="E001"):
        engine.serve()
    report = engine.last_shutdown
    assert report is not None and report.reference == "E003"
    # its meter still reads 0.6 A too much, so the shutdown cannot confirm it idle: safe_off
    assert report.unconfirmed == ["E001"] and not report.safe_off_failures
    steps = [(s.unit, s.action) for s in report.steps]
    assert steps.index(("E001", "idle")) < steps.index(("E003", "idle"))
    assert ("E001", "safe_off") in steps
    assert engine.history[0].state is State.SCRAMMED
    with pytest.raises(ExchangeError, match="rule global-stop"):
        engine.start(Exchange.between("E002", "E004", 1.0, amount_wh=1))
    with pytest.raises(ExchangeError, match="rule global-stop"):
        engine.run(Exchange.between("E002", "E004", 1.0, amount_wh=1))
    assert engine.last_shutdown is report  # a refusal touches nothing, not even a shutdown
    rig.control.clear()
    engine.wait(rig.config.apis.error_sustaining)
    assert engine.admit(Exchange.between("E002", "E004", 1.0, amount_wh=1)).reference == "E004"
    assert rig.status()["all_safe"]


def test_readings_after_the_run_show_every_unit_idle(rig: Rig) -> None:
    engine = rig.engine()
    engine.run(Exchange.between("E002", "E001", 1.0, amount_wh=2))
    snapshot = rig.bench.snapshot()
    assert all(r.mode is Mode.IDLE for r in snapshot.readings.values())


def test_sony_rig_unit_takes_part(rig: Rig) -> None:
    engine = rig.engine()
    (run,) = engine.run(Exchange.between("E005", "E002", 1.0, duration=10.0))
    assert run.state is State.DONE
    bus = [p for p in rig.status()["ports"] if p["node"] == "bus"]
    assert all(p["safe"] for p in bus), [p["port"] for p in bus if not p["safe"]]
    # its battery emulator stays energised through idle(), as a battery stays connected,
    # until the unit is switched off
    assert rig.bench.safe_off_all() == {uid: [] for uid in rig.bench.units}
    rig.control.advance(0.1)
    assert rig.status()["all_safe"]


def test_a_new_step_is_one_function_and_one_table_entry(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sequence is the table: a step added to it runs in its place, with the bus up."""
    from hil.exchange import steps as engine_steps
    from hil.exchange.bus import Step
    from hil.exchange.steps import START_SEQUENCE, Sequencer, Stage, always

    def probe(seq: Sequencer, run: ExchangeRun) -> None:
        adjuster = run.plan.adjuster
        reading = seq.commands.read(adjuster)
        seq.ctx.record(
            run,
            Step.START,
            probe=True,
            adjuster_current=reading.bus_current,
            adjuster_setpoint=seq.ctx.bus.cc[adjuster],
        )

    table = (*START_SEQUENCE[:-1], Stage(always, probe), START_SEQUENCE[-1])
    monkeypatch.setattr(engine_steps, "START_SEQUENCE", table)
    engine = rig.engine()
    (run,) = engine.run(Exchange.between("E001", "E003", 1.0, amount_wh=5, name="probed"))

    steps = [s["step"] for s in run.steps]
    assert steps == [*APIS_STEPS[:-2], "start", *APIS_STEPS[-2:], "deactivate"]
    probed = run.steps[steps.index("start")]
    assert probed["probe"] is True and probed["adjuster_setpoint"] > 0
    allowance = engine.policy.current_allowance
    assert abs(probed["adjuster_current"] - probed["adjuster_setpoint"]) <= allowance
    assert run.state is State.DONE and not engine.active
