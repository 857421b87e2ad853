"""Random sets of exchanges on the emulated bench, checked against the plant's true state.

Hypothesis draws exchanges (units, directions, currents inside the envelopes, amounts or
durations, start times); the engine runs them as a schedule. At every step and every
supervisor period the plant's *true* state is read from the emulator and checked: no
envelope is exceeded; after each compensation the bus is balanced and the reference carries
its target within the drift allowance; the energy an exchange counted matches the energy
its battery took in or gave (true, at its terminals) within 1 %; at the end every output is
safe.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulated_rig import Rig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.config.bench import BenchConfig
from hil.controller import Reading
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine, ExchangeRun, State
from hil.exchange.supervisor import BusExpectation, CheckReport, Supervisor

SOURCES = ("E001", "E002", "E003", "E004", "SUP1", "BID1", "BID2")
SINKS = ("E001", "E002", "E003", "E004", "LOAD1", "BID1", "BID2")
BATTERIES = ("E001", "E002", "E003", "E004")
SENSOR_MARGIN_A = 0.02  # what the emulated meters may differ from the truth
TRANSIENT_A = 0.125  # a step may overshoot its set-point by the checkpoint allowance


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[float, Exchange]:
    n_src = draw(st.integers(1, 2))
    n_snk = draw(st.integers(1, 2)) if n_src == 1 else 1
    sources = draw(st.lists(st.sampled_from(SOURCES), min_size=n_src, max_size=n_src, unique=True))
    sinks = draw(
        st.lists(
            st.sampled_from([u for u in SINKS if u not in sources]),
            min_size=n_snk,
            max_size=n_snk,
            unique=True,
        )
    )
    total = draw(st.integers(5, 20)) / 10  # 0.5 … 2.0 A
    ends = draw(st.sampled_from(["amount", "duration"]))
    amount = draw(st.integers(2, 8)) if ends == "amount" else None
    duration = float(draw(st.integers(10, 60))) if ends == "duration" else None
    offset = float(draw(st.integers(0, 40)))
    return offset, Exchange(
        {u: total / n_src for u in sources},
        {u: total / n_snk for u in sinks},
        amount_wh=amount,
        duration=duration,
    )


@dataclass
class Witness:
    """Reads the true state at every step and every supervisor period, and checks it."""

    rig: Rig
    config: BenchConfig
    problems: list[str] = field(default_factory=list)
    at: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[float, str, str]] = field(default_factory=list)

    engine: ExchangeEngine | None = None

    def on_step(self, step: str, run: ExchangeRun) -> None:
        status = self.rig.status()
        self.at[(run.name, step)] = status
        self.events.append((float(status["time"]), run.name, step))
        self.check_envelopes(status, f"{run.name}/{step}")
        if step == "start":
            self.check_compensated(status, run)

    def check_compensated(self, status: Mapping[str, Any], run: ExchangeRun) -> None:
        """Right after compensation: the bus balances, the reference carries its target."""
        assert self.engine is not None
        members = {u for r in self.engine.running for u in r.plan.legs}
        reference = self.engine.reference
        assert reference is not None
        members.add(reference)
        bus = self.rig.bus_ports(status)
        residual = sum(float(port["current"]) for port in bus.values())
        limit = self.config.envelope.bus.balance_limit(len(members))
        if abs(residual) > limit:
            self.problems.append(f"{run.name}: true residual {residual:+.4g} A above {limit:g} A")
        compensate = run.step("compensate")
        if compensate is None or run.vr_target is None:
            self.problems.append(f"{run.name}: started without compensation")
            return
        if not compensate["limited"]:
            drift = float(bus[reference]["current"]) - run.vr_target
            allowed = self.config.apis.compensation_drift_allowance + SENSOR_MARGIN_A
            if abs(drift) > allowed:
                self.problems.append(
                    f"{run.name}: reference {reference} true drift {drift:+.4g} A > {allowed:g} A"
                )

    def check_envelopes(self, status: Mapping[str, Any], where: str) -> None:
        bus = self.config.envelope.bus
        for uid, port in self.rig.bus_ports(status).items():
            env = self.config.unit(uid).envelope
            amps = float(port["current"])
            if (
                not -(env.current_sink_max + TRANSIENT_A)
                <= amps
                <= env.current_source_max + TRANSIENT_A
            ):
                self.problems.append(f"{where}: {uid} carries {amps:+.4g} A outside its envelope")
            if abs(float(port["power"])) > env.power_max * 1.02:
                self.problems.append(
                    f"{where}: {uid} at {port['power']:.5g} W above {env.power_max:g} W"
                )
            if float(port["voltage"]) > bus.voltage_max + 1.0:
                self.problems.append(f"{where}: bus at {port['voltage']:.5g} V at unit {uid}")
        for uid, battery in self.rig.battery_ports(status).items():
            env = self.config.unit(uid).envelope
            soc = battery["soc"]
            if (
                env.soc_min is not None
                and env.soc_max is not None
                and not (env.soc_min - 0.005 <= soc <= env.soc_max + 0.005)
            ):
                self.problems.append(f"{where}: {uid} SoC {soc:.4g} outside its window")


class WitnessedSupervisor(Supervisor):
    """The normal supervisor; the witness checks the true state at every period too."""

    def __init__(self, config: BenchConfig, witness: Witness, **options: Any) -> None:
        super().__init__(config, **options)
        self.witness = witness

    def check(
        self,
        t: float,
        readings: Mapping[str, Reading],
        errors: Mapping[str, str],
        expected: BusExpectation,
        *,
        units: Collection[str] | None = None,
    ) -> CheckReport:
        self.witness.check_envelopes(self.witness.rig.status(), f"period t={t:.6g}")
        return super().check(t, readings, errors, expected, units=units)


def _overlaps(a: ExchangeRun, b: ExchangeRun) -> bool:
    assert a.t_activate is not None and b.t_activate is not None
    a_end = a.t_stop if a.t_stop is not None else float("inf")
    b_end = b.t_stop if b.t_stop is not None else float("inf")
    return a.t_activate <= b_end and b.t_activate <= a_end


def _energy_is_comparable(run: ExchangeRun, runs: list[ExchangeRun]) -> bool:
    """True when the plant's battery energy belongs to this exchange alone: its accounting
    units are APIS batteries in no other overlapping exchange, and either no other exchange
    overlaps it or they are constant-current units (unmoved by other exchanges)."""
    acc = run.plan.accounting_units
    if not all(uid in BATTERIES for uid in acc):
        return False
    others = [r for r in runs if r is not run and _overlaps(run, r)]
    if any(uid in r.plan.legs for r in others for uid in acc):
        return False
    return not others or run.plan.reference not in acc


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=st.lists(exchanges(), min_size=1, max_size=3))
def test_random_exchanges_keep_every_property(
    rig: Rig, schedule: list[tuple[float, Exchange]]
) -> None:
    rig.reset()
    witness = Witness(rig, rig.config)
    supervisor = WitnessedSupervisor(rig.config, witness)
    engine = rig.engine(on_step=witness.on_step, supervisor=supervisor)
    witness.engine = engine
    try:
        runs = engine.run_schedule(schedule, timeout=3600)
    finally:
        engine.close()
    assert not witness.problems, witness.problems
    for run in runs:
        assert run.state is State.DONE, (run.name, run.stop_reason)
        # energy counted against the battery's own (true, at its terminals)
        if _energy_is_comparable(run, runs):
            begin, end = witness.at[(run.name, "start")], witness.at[(run.name, "stop")]
            true_wh = 0.0
            for uid in run.plan.accounting_units:
                delta = (
                    rig.battery_ports(end)[uid]["energy_j"]
                    - rig.battery_ports(begin)[uid]["energy_j"]
                )
                true_wh += (-delta if run.plan.legs[uid] < 0 else delta) / 3600
            assert abs(run.energy_wh - true_wh) <= 0.01 * abs(true_wh) + 1e-3, (
                run.name,
                run.energy_wh,
                true_wh,
            )
    for exchange, error in engine.refused:
        assert "[rule " in str(error), (exchange.describe(), error)
    final = rig.status()
    assert final["all_safe"], [p["port"] for p in final["ports"] if not p["safe"]]
    assert engine.reference is None and not engine.running
