"""The exchange engine: one bus, one voltage reference, every running exchange.

:class:`ExchangeEngine` runs APIS's sequence for each exchange (``docs/exchanges.md``):

``activate`` (dead-bus check, UVLO mask wait, the reference holds the bus) → ``rampUp``
(until the bus is within ``voltage_allowance`` of the operation voltage) → ``authorize``
(random set-point moves, each confirmed) → ``warmUp`` (constant-current units in
``current_step`` steps, a checkpoint after each) → ``compensate`` (the adjuster's set-point
moves until the reference carries its target within ``compensation_drift_allowance``) →
``start`` (running: energy counted from battery power each supervisor period) → ``stop``
(step down, idle) → ``deactivate`` (lower the reference voltage, idle) or ``handOver``
(another unit takes over the reference while other exchanges run).

A new exchange joins a running bus without touching the others: its compensation target
is the reference's current before it joined. A unit's set-point is the sum of its legs
over every running exchange.

All waiting goes through :meth:`ExchangeEngine.wait`, which advances the bench clock and,
every supervisor period, reads every unit, runs the :class:`~hil.supervisor.Supervisor`,
counts energy and samples the series — so the supervisor runs during every step. Any
exception inside a public method (a supervisor error, a failed checkpoint, a dropped line,
a signal) runs the ordered shutdown (:mod:`hil.shutdown`) before it propagates; new
exchanges are then refused for ``error_sustaining`` seconds.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hil.controller import Mode, Reading
from hil.errors import CapabilityError, ExchangeError, HilError, SafetyTrip
from hil.exchange import (
    BusLoad,
    Exchange,
    ExchangePlan,
    Rule,
    Side,
    pick_reference,
    plan_exchange,
    reference_problem,
    refusal,
)
from hil.recorder import Recorder, safe_write
from hil.shutdown import OrderedShutdown, ShutdownReport
from hil.supervisor import BusExpectation, CheckReport, Expectation, Supervisor

if TYPE_CHECKING:
    from hil.bench import Bench

log = logging.getLogger(__name__)

EPS_S = 1e-9
#: Set-points closer than this to 0 A are 0 A (float residue of sums of legs).
ZERO_A = 1e-9
#: Extra accounting ticks (predicted end of an amount) are at least this far apart.
MIN_TICK_S = 1e-3


class Step(StrEnum):
    """The steps of an exchange, with APIS's names (``docs/exchanges.md``)."""

    PLAN = "plan"
    ACTIVATE = "activate"
    RAMP_UP = "rampUp"
    AUTHORIZE = "authorize"
    WARM_UP = "warmUp"
    COMPENSATE = "compensate"
    START = "start"
    STOP = "stop"
    DEACTIVATE = "deactivate"
    HAND_OVER = "handOver"


class State(StrEnum):
    """Where an exchange is in its life."""

    PLANNED = "planned"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    SCRAMMED = "scrammed"


ACTIVE = frozenset({State.PLANNED, State.STARTING, State.RUNNING, State.STOPPING})


@dataclass(eq=False)
class ExchangeRun:
    """One exchange as it runs: its plan, state, compensated currents, energy and record.

    ``compensated`` holds each constant-current unit's signed current in this exchange
    after compensation (APIS ``…CompensatedGridCurrentA``); ``energy_wh`` the energy
    counted so far (APIS ``cumulateAmountWh``); ``series`` the per-period samples for
    plots (columns ``t``, ``bus_voltage``, ``residual``, ``energy_wh`` and one per unit).
    """

    plan: ExchangePlan
    state: State = State.PLANNED
    compensated: dict[str, float] = field(default_factory=dict)
    vr_target: float | None = None
    energy_wh: float = 0.0
    last_power: float = 0.0
    t_activate: float | None = None
    t_start: float | None = None
    t_stop: float | None = None
    last_cumulate: float | None = None
    stop_reason: str | None = None
    due: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def exchange(self) -> Exchange:
        return self.plan.exchange

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def leg(self, unit_id: str) -> float:
        """This exchange's signed current for ``unit_id`` (compensated where it was)."""
        return self.compensated.get(unit_id, self.plan.legs.get(unit_id, 0.0))

    def step(self, name: str) -> dict[str, Any] | None:
        """The last recorded step called ``name``."""
        return next((s for s in reversed(self.steps) if s["step"] == name), None)


def battery_power(reading: Reading) -> float:
    """Battery power (W), positive while discharging; bus power for units without one."""
    if reading.battery_voltage is not None and reading.battery_current is not None:
        return reading.battery_voltage * reading.battery_current
    return reading.bus_voltage * reading.bus_current


StepHook = Callable[[str, ExchangeRun], None]


class ExchangeEngine:
    """Runs exchanges on one bench's bus with the APIS sequence; see the module docstring.

    ``reference_side`` is the side whose unit becomes the voltage reference when the
    exchange does not name one and no large-capacity unit takes part (APIS
    ``masterSide``); ``authorize`` runs APIS's authorization moves after ramp-up; ``seed``
    makes them reproducible. While exchanges run, each supervisor period reads the units in
    exchanges and the reference, and every ``full_every``-th period every unit (a unit
    switched on by mistake also shows at once in the balance of the units in exchanges).
    ``on_step(step, run)`` is called as each step begins (tests
    inject faults there); ``on_unsafe(report)`` when a shutdown could not confirm a unit
    (the safety guard trips the emulator or hardware watchdog there).
    """

    def __init__(
        self,
        bench: Bench,
        *,
        recorder: Recorder | None = None,
        supervisor: Supervisor | None = None,
        reference_side: Side = "charge",
        authorize: bool = True,
        seed: int = 0,
        confirm_timeout: float = 1.0,
        full_every: int = 4,
        on_step: StepHook | None = None,
        on_unsafe: Callable[[ShutdownReport], None] | None = None,
    ) -> None:
        self.bench = bench
        self.clock = bench.clock
        self.units = bench.units
        self.policy = bench.config.apis
        self.recorder = recorder if recorder is not None else getattr(bench, "recorder", None)
        self.supervisor = supervisor or Supervisor(bench.config, recorder=self.recorder)
        self.reference_side: Side = reference_side
        self.authorize = authorize
        self.on_step = on_step
        self.on_unsafe = on_unsafe
        self.shutdown = OrderedShutdown(
            bench.units,
            self.clock,
            self.policy,
            recorder=self.recorder,
            confirm_timeout=confirm_timeout,
        )
        self._rng = random.Random(seed)
        self._names = itertools.count(1)
        self._runs: dict[str, ExchangeRun] = {}
        self.history: list[ExchangeRun] = []
        self.refused: list[tuple[Exchange, ExchangeError]] = []
        self.reference: str | None = None
        self._vr_setpoint: float | None = None
        self._vr_limit: float | None = None
        self._bus_settling = False
        self._cc: dict[str, float] = {}
        self._settling: set[str] = set()
        if full_every < 1:
            raise ValueError(f"full_every must be ≥ 1, got {full_every}")
        self.full_every = full_every
        self._ticks = 0
        self._last_tick = self.clock.now()
        self._global_stop_until = -math.inf
        self._depth = 0
        self._scramming = False
        self.last_report: CheckReport | None = None
        #: Each unit's latest reading from a supervisor tick (agents reuse a fresh one, as
        #: APIS's house-keeping uses the unit data its controller last acquired).
        self.last_readings: dict[str, Reading] = {}
        self.last_shutdown: ShutdownReport | None = None

    # -- state for others ----------------------------------------------------------------
    @property
    def running(self) -> list[ExchangeRun]:
        """The exchanges not yet ended, in start order."""
        return list(self._runs.values())

    @property
    def busy(self) -> bool:
        """True while a public method runs (a signal then unwinds it into the shutdown)."""
        return self._depth > 0

    @property
    def setpoints(self) -> dict[str, float]:
        """The constant-current set-point of every unit in CURRENT mode (A, signed)."""
        return dict(self._cc)

    @property
    def active(self) -> bool:
        """True while anything is on: an exchange, a reference or a CC unit."""
        return bool(self._runs or self.reference or self._cc)

    def bus_load(self) -> BusLoad:
        """What runs on the bus, as the exchange rules see it.

        A constant-current unit counts with its actual set-point, compensation included,
        so a joining exchange cannot push it past its envelope by that small rest.
        """
        legs: dict[str, float] = {}
        for run in self._runs.values():
            for uid, leg in run.plan.legs.items():
                legs[uid] = legs.get(uid, 0.0) + leg
        for uid in legs.keys() & self._cc.keys():
            legs[uid] = self._cc[uid]
        return BusLoad(
            legs=legs,
            reference=self.reference,
            current_sum=sum(run.exchange.current for run in self._runs.values()),
            names=frozenset(self._runs) | {run.name for run in self.history},
        )

    # -- the guard around every public method ---------------------------------------------
    @contextmanager
    def _operation(self, what: str) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException as exc:
            if self._depth == 1 and not self._scramming:
                trip = self._diagnose(exc)
                cause = trip or exc
                self.scram(f"{what}: {type(cause).__name__}: {cause}")
                if trip is not None:
                    raise trip from exc
            raise
        finally:
            self._depth -= 1

    def _diagnose(self, exc: BaseException) -> SafetyTrip | None:
        """Why a step failed, when a protection is the cause: a ``SafetyTrip`` if a unit
        on the bus reports a latched trip, a heavy alarm or a withdrawn battery permission.

        A tripped converter refuses commands (EZA-2500 NAK 0xFFFD, "valid but not accepted
        now": apis-dcdc_batt_comm ``drivers/essx/essx_type_oes.py``; that a latched trip is
        answered so is what our emulator does, assumed for the hardware) and a tripped unit
        fails its checkpoint; both are the protection's doing, so the verdict is a safety
        trip, not an error. Only toolkit and OS errors are looked into (not Ctrl-C); a unit
        that does not answer is left to the shutdown."""
        if isinstance(exc, SafetyTrip) or not isinstance(exc, HilError | OSError):
            return None
        legs: dict[str, float] = {}
        for run in self._runs.values():
            for uid, leg in run.plan.legs.items():
                legs[uid] = legs.get(uid, 0.0) + leg
        involved = [
            uid for uid in self.units if uid in legs or uid in self._cc or uid == self.reference
        ]
        found: list[str] = []
        for uid in involved:
            try:
                reading = self.units[uid].read()
            except Exception as error:
                log.info("diagnosis: unit %s did not answer: %s", uid, error)
                continue
            expected = self._expectation(uid)
            if expected.direction == 0 and legs.get(uid):
                direction = 1 if legs[uid] > 0 else -1
                expected = Expectation(expected.mode, expected.setpoint, direction, True)
            report = self.supervisor.inspect(reading, expected)
            found.extend(f"{v.key}: {v.message}" for v in report.errors)
        if not found:
            return None
        return SafetyTrip(f"{'; '.join(found)} (found when {type(exc).__name__}: {exc})")

    # -- public API -------------------------------------------------------------------------
    def admit(self, exchange: Exchange, *, name: str | None = None) -> ExchangePlan:
        """Check ``exchange`` against the bench and what runs now; no I/O.

        Raises ``ExchangeError`` naming the broken rule (``global-stop`` while an error is
        held after a shutdown)."""
        label = name or exchange.name or f"X{next(self._names)}"
        self._check_global_stop(exchange, label)
        return plan_exchange(
            exchange, self.bench, self.bus_load(), name=label, reference_side=self.reference_side
        )

    def _check_global_stop(self, exchange: Exchange, label: str) -> None:
        now = self.clock.now()
        if now < self._global_stop_until:
            raise refusal(
                Rule.GLOBAL_STOP,
                f"exchange {label} ({exchange.describe()})",
                f"the bench is held stopped after an error until t = "
                f"{self._global_stop_until:.6g} s (errorSustainingMsec "
                f"{self.policy.error_sustaining:g} s); now t = {now:.6g} s",
            )

    def start(self, exchange: Exchange, *, name: str | None = None) -> ExchangeRun:
        """Check, then run ``exchange`` from activation (or joining) to running."""
        plan = self.admit(exchange, name=name)
        with self._operation(f"starting exchange {plan.name}"):
            return self._launch(plan)

    def stop(self, run: ExchangeRun | str, reason: str = "stop requested") -> ExchangeRun:
        """Stop a running exchange (step down, idle; deactivate or hand over the reference)."""
        target = self._runs.get(run) if isinstance(run, str) else run
        if target is None or target.state is not State.RUNNING:
            name = run if isinstance(run, str) else run.name
            raise ExchangeError(
                f"exchange {name} is not running; running: {', '.join(self._runs) or 'none'}"
            )
        with self._operation(f"stopping exchange {target.name}"):
            self._stop(target, reason)
        return target

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the bench clock; every supervisor period, supervise and
        count energy (the only way the engine waits)."""
        with self._operation(f"waiting {seconds:g} s"):
            self._wait(seconds)

    def serve(self, timeout: float | None = None) -> None:
        """Keep the bus running until every exchange has ended (amount, duration, SoC)."""
        with self._operation("serving the running exchanges"):
            self._serve(timeout)

    def run(self, *exchanges: Exchange, timeout: float | None = None) -> list[ExchangeRun]:
        """Start every exchange (the first activates the bus, the others join), then serve
        until all have ended. The whole set is checked before anything is touched."""
        self._preflight(exchanges)
        with self._operation("running exchanges"):
            runs = [self._launch(self.admit(ex)) for ex in exchanges]
            self._serve(timeout)
        return runs

    def run_schedule(
        self, schedule: Sequence[tuple[float, Exchange]], *, timeout: float | None = None
    ) -> list[ExchangeRun]:
        """Start each exchange ``offset`` seconds from now while serving the others.

        An exchange that is refused when its time comes (its rules checked against what
        runs then) is recorded in :attr:`refused` and skipped; the others go on."""
        start = self.clock.now()
        items = sorted(
            ((start + offset, i, ex) for i, (offset, ex) in enumerate(schedule)),
            key=lambda item: (item[0], item[1]),
        )
        runs: list[ExchangeRun] = []
        with self._operation("running a schedule of exchanges"):
            for at, _, exchange in items:
                while self.clock.now() < at - EPS_S:
                    self._stop_due()
                    self._wait(min(at, self._next_tick()) - self.clock.now())
                self._stop_due()
                try:
                    plan = self.admit(exchange)
                except ExchangeError as exc:
                    self.refused.append((exchange, exc))
                    safe_write(
                        self.recorder,
                        "step",
                        step="refused",
                        t=self.clock.now(),
                        reason=str(exc),
                        exchange=exchange.as_dict(),
                    )
                    log.warning("%s", exc)
                    continue
                runs.append(self._launch(plan))
            self._serve(timeout)
        return runs

    def scram(self, reason: str) -> ShutdownReport:
        """The ordered shutdown of the whole bench (APIS scram); sets the global stop."""
        if self._scramming and self.last_shutdown is not None:
            return self.last_shutdown
        self._scramming = True
        try:
            return self._scram(reason)
        finally:
            self._scramming = False

    def close(self) -> None:
        """Shut down in order if anything is still on; the bench stays open."""
        if self.active:
            self.scram("exchange engine closed while active")

    # -- waiting and the periodic tick --------------------------------------------------
    def _next_tick(self) -> float:
        t = self._last_tick + self.supervisor.period
        for run in self._runs.values():
            if run.state is not State.RUNNING or run.due is not None or run.t_start is None:
                continue
            ex = run.exchange
            if ex.duration is not None:
                t = min(t, run.t_start + ex.duration)
            if ex.amount_wh is not None and run.last_power > 0 and run.last_cumulate is not None:
                remaining = max(ex.amount_wh - run.energy_wh, 0.0)
                t = min(t, run.last_cumulate + remaining / run.last_power * 3600.0)
        return max(t, self._last_tick + MIN_TICK_S)

    def _wait(self, seconds: float) -> None:
        end = self.clock.now() + max(seconds, 0.0)
        while True:
            now = self.clock.now()
            if now >= self._next_tick() - EPS_S:
                self._tick()
                continue
            if now >= end - EPS_S:
                return
            self.clock.sleep(min(end, self._next_tick()) - now)

    def _watched(self) -> list[str] | None:
        """The units this tick reads: every unit (None) on every ``full_every``-th tick and
        while nothing runs; otherwise the units in exchanges and the reference."""
        self._ticks += 1
        if not self._runs or self._ticks % self.full_every == 0:
            return None
        members = {uid for run in self._runs.values() for uid in run.plan.legs}
        if self.reference is not None:
            members.add(self.reference)
        return [uid for uid in self.units if uid in members]

    def _tick(self) -> None:
        watched = self._watched()
        if watched is None:
            snap = self.bench.snapshot()
            t, readings, errors = snap.t, dict(snap.readings), dict(snap.errors)
        else:
            t, readings, errors = self.clock.now(), {}, {}
            for uid in watched:
                try:
                    readings[uid] = self.units[uid].read()
                except Exception as exc:
                    errors[uid] = f"{type(exc).__name__}: {exc}"
        self._last_tick = t
        self.last_readings.update(readings)
        report = self.supervisor.check(t, readings, errors, self.expectations(), units=watched)
        self.last_report = report
        self._account(t, readings)
        self._sample(t, readings)
        if report.errors:
            raise SafetyTrip(f"supervisor at t = {t:.6g} s: {report.describe_errors()}")

    def _expectation(self, uid: str) -> Expectation:
        if uid == self.reference:
            legs = sum(run.leg(uid) for run in self._runs.values())
            return Expectation(
                Mode.VOLTAGE_REFERENCE,
                self._vr_setpoint,
                direction=(legs > 0) - (legs < 0),
                settling=self._bus_settling or uid in self._settling,
            )
        if uid in self._cc:
            sp = self._cc[uid]
            return Expectation(
                Mode.CURRENT, sp, direction=(sp > 0) - (sp < 0), settling=uid in self._settling
            )
        return Expectation(settling=uid in self._settling)

    def expectations(self) -> BusExpectation:
        """What every unit and the bus should be doing now (for the supervisor)."""
        members = {uid for run in self._runs.values() for uid in run.plan.legs}
        return BusExpectation(
            units={uid: self._expectation(uid) for uid in self.units},
            in_exchange=frozenset(members),
            reference=self.reference,
            bus_up=self.reference is not None and not self._bus_settling,
        )

    def _serve(self, timeout: float | None) -> None:
        deadline = None if timeout is None else self.clock.now() + timeout
        while self._runs:
            self._stop_due()
            if not self._runs:
                break
            if deadline is not None and self.clock.now() >= deadline:
                raise ExchangeError(
                    f"exchanges {', '.join(self._runs)} did not end within {timeout:g} s"
                )
            self._wait(max(self._next_tick() - self.clock.now(), 0.0))

    def _stop_due(self) -> None:
        for run in list(self._runs.values()):
            if run.state is State.RUNNING and run.due is not None:
                self._stop(run, run.due)

    def _preflight(self, exchanges: Sequence[Exchange]) -> None:
        """Check a set of exchanges as if they all ran at once; no I/O."""
        for exchange in exchanges:
            self._check_global_stop(exchange, exchange.name or "")
        load = self.bus_load()
        legs = dict(load.legs)
        reference, total, names = load.reference, load.current_sum, set(load.names)
        for i, exchange in enumerate(exchanges):
            label = exchange.name or f"#{i + 1}"
            plan = plan_exchange(
                exchange,
                self.bench,
                BusLoad(legs, reference, total, frozenset(names)),
                name=label,
                reference_side=self.reference_side,
            )
            for uid, leg in plan.legs.items():
                legs[uid] = legs.get(uid, 0.0) + leg
            reference = plan.reference
            total += exchange.current
            names.add(label)

    # -- energy, stop conditions, series ----------------------------------------------------
    def _share(self, run: ExchangeRun, uid: str) -> float:
        mine = abs(run.leg(uid))
        total = sum(abs(r.leg(uid)) for r in self._runs.values() if uid in r.plan.legs)
        return mine / total if total > 0 else 1.0

    def _cumulate(self, run: ExchangeRun, t: float, readings: Mapping[str, Reading]) -> None:
        """APIS ``cumulate``: Wh += P_battery(accounting units) x Δt / 3600, each unit's
        power split by this exchange's share of its current."""
        if run.last_cumulate is None or t <= run.last_cumulate:
            return
        power = 0.0
        for uid in run.plan.accounting_units:
            reading = readings.get(uid)
            if reading is None:
                return
            p = battery_power(reading)
            power += (p if run.plan.legs[uid] > 0 else -p) * self._share(run, uid)
        run.energy_wh += power * (t - run.last_cumulate) / 3600.0
        run.last_power = power
        run.last_cumulate = t

    def _due_reason(
        self, run: ExchangeRun, t: float, readings: Mapping[str, Reading]
    ) -> str | None:
        ex, policy = run.exchange, self.policy
        if ex.amount_wh is not None and run.energy_wh >= ex.amount_wh * (1 - 1e-9):
            return f"amount reached: {run.energy_wh:.6g} Wh of {ex.amount_wh:g} Wh"
        if (
            ex.duration is not None
            and run.t_start is not None
            and t >= run.t_start + ex.duration - EPS_S
        ):
            return f"duration reached: {t - run.t_start:.6g} s of {ex.duration:g} s"
        for uid, leg in run.plan.legs.items():
            soc = readings[uid].soc if uid in readings else None
            if soc is None:
                continue
            if leg > 0 and soc < policy.soc_force_stop_discharge:
                return (
                    f"force stop: discharging unit {uid} at SoC {soc:.4g} < "
                    f"{policy.soc_force_stop_discharge:g} (dischargeUnitLowerLimitRsoc)"
                )
            if leg < 0 and soc > policy.soc_force_stop_charge:
                return (
                    f"force stop: charging unit {uid} at SoC {soc:.4g} > "
                    f"{policy.soc_force_stop_charge:g} (chargeUnitUpperLimitRsoc)"
                )
        return None

    def _account(self, t: float, readings: Mapping[str, Reading]) -> None:
        for run in self._runs.values():
            if run.state is not State.RUNNING or run.due is not None:
                continue
            self._cumulate(run, t, readings)
            reason = self._due_reason(run, t, readings)
            if reason is not None:
                run.due = reason
                log.info("exchange %s: %s", run.name, reason)

    def _sample(self, t: float, readings: Mapping[str, Reading]) -> None:
        ref = readings.get(self.reference) if self.reference else None
        for run in self._runs.values():
            members = [*run.plan.legs]
            if self.reference and self.reference not in members:
                members.append(self.reference)
            currents = {uid: readings[uid].bus_current for uid in members if uid in readings}
            row: dict[str, float | None] = {
                "t": t,
                "bus_voltage": None if ref is None else ref.bus_voltage,
                "residual": sum(currents.values()) if len(currents) == len(members) else None,
                "energy_wh": run.energy_wh,
                **currents,
            }
            rows = len(run.series.get("t", []))
            for column in set(row) | set(run.series):
                values = run.series.setdefault(column, [None] * rows)
                values.append(row.get(column))

    # -- recording ---------------------------------------------------------------------------
    def _enter(self, run: ExchangeRun, step: Step) -> None:
        log.info("exchange %s: %s", run.name, step.value)
        if self.on_step is not None:
            self.on_step(step.value, run)

    def _record(self, run: ExchangeRun, step: Step, **fields: Any) -> None:
        entry = {"step": step.value, "t": self.clock.now(), **fields}
        run.steps.append(entry)
        safe_write(self.recorder, "step", exchange=run.name, **entry)

    def _write_series(self, run: ExchangeRun) -> None:
        safe_write(
            self.recorder,
            "series",
            name=f"exchange {run.name}",
            exchange=run.name,
            state=run.state.value,
            stop_reason=run.stop_reason,
            energy_wh=run.energy_wh,
            columns=list(run.series),
            data=run.series,
        )

    # -- unit commands and checkpoints ----------------------------------------------------
    def _read(self, uid: str) -> Reading:
        reading = self.units[uid].read()
        report = self.supervisor.inspect(reading, self._expectation(uid))
        if report.errors:
            raise SafetyTrip(f"at t = {reading.t:.6g} s: {report.describe_errors()}")
        return reading

    def _set(self, uid: str, amps: float) -> None:
        """Command a constant-current set-point (0 A: idle)."""
        if abs(amps) <= ZERO_A:
            self.units[uid].idle()
            self._cc.pop(uid, None)
        else:
            self.units[uid].set_current(amps)
            self._cc[uid] = amps

    def _checkpoint(self, uid: str, amps: float, first_wait: float) -> Reading:
        """APIS checkpoint: wait, read back, |I - set-point| ≤ current_allowance (and idle
        at 0 A), up to ``checkpoint_retries`` tries; ``ExchangeError`` otherwise."""
        policy = self.policy
        idle = abs(amps) <= ZERO_A
        reading: Reading | None = None
        tries = max(1, policy.checkpoint_retries)
        for attempt in range(tries):
            self._wait(first_wait if attempt == 0 else policy.checkpoint_wait)
            reading = self._read(uid)
            mode_ok = reading.mode is (Mode.IDLE if idle else Mode.CURRENT)
            if mode_ok and abs(reading.bus_current - amps) <= policy.current_allowance:
                return reading
        assert reading is not None
        raise ExchangeError(
            f"checkpoint failed: unit {uid} reads {reading.bus_current:+.4g} A in mode "
            f"{reading.mode.value} after {tries} tries; set to {amps:+.4g} A "
            f"({'idle' if idle else 'current'}) ± {policy.current_allowance:g} A"
        )

    def _checkpoint_voltage(self, uid: str, volts: float) -> Reading:
        policy = self.policy
        reading: Reading | None = None
        tries = max(1, policy.checkpoint_retries)
        for _ in range(tries):
            self._wait(policy.checkpoint_wait)
            reading = self._read(uid)
            if abs(reading.bus_voltage - volts) <= policy.voltage_allowance:
                return reading
        assert reading is not None
        raise ExchangeError(
            f"checkpoint failed: unit {uid} holds the bus at {reading.bus_voltage:.5g} V after "
            f"{tries} tries; set to {volts:.5g} V ± {policy.voltage_allowance:g} V"
        )

    def _ramp(self, targets: Mapping[str, float]) -> list[dict[str, Any]]:
        """Move each unit's set-point to its target in ``current_step`` steps, with a
        checkpoint after every step (no faster than ``slew_max``).

        Steps are interleaved so that the voltage reference, which carries what the
        current-controlled units leave (the negative of their set-points' sum), carries as
        little as possible after each one: a deal joining a running bus first moves the side
        that relieves the reference (APIS: the new deal's reference-side unit goes first), so
        the reference never has to pass its ``gridCurrentCapacityA``. Ties keep the order of
        ``targets``. A unit whose target is 0 A goes idle at once (APIS: WAIT), as switching
        a current off is always allowed, even where the envelope forbids a smaller current
        (SoC)."""
        policy = self.policy
        pending = {uid: t for uid, t in targets.items() if abs(t - self._cc.get(uid, 0.0)) > ZERO_A}
        order = {uid: k for k, uid in enumerate(targets)}
        trace: list[dict[str, Any]] = []

        def next_setpoint(uid: str) -> float:
            target, now_sp = pending[uid], self._cc.get(uid, 0.0)
            delta = target - now_sp
            direct = abs(delta) <= policy.current_step + ZERO_A or abs(target) <= ZERO_A
            return target if direct else now_sp + math.copysign(policy.current_step, delta)

        while pending:
            total = sum(self._cc.values())
            uid = min(
                pending,
                key=lambda u: (abs(total - self._cc.get(u, 0.0) + next_setpoint(u)), order[u]),
            )
            now_sp, nxt = self._cc.get(uid, 0.0), next_setpoint(uid)
            slew = self.units[uid].envelope.slew_max
            dwell = max(policy.checkpoint_wait, abs(nxt - now_sp) / slew)
            self._settling.add(uid)
            self._set(uid, nxt)
            reading = self._checkpoint(uid, nxt, dwell)
            self._settling.discard(uid)
            trace.append(
                {
                    "unit": uid,
                    "setpoint": nxt,
                    "read_current": reading.bus_current,
                    "read_voltage": reading.bus_voltage,
                    "t": reading.t,
                }
            )
            if abs(pending[uid] - nxt) <= ZERO_A:
                pending.pop(uid)
        return trace

    def _reference_limit(self, uid: str, volts: float) -> float:
        """The reference's current limit: APIS ``gridCurrentCapacityA`` within its envelope."""
        unit = self.units[uid]
        env, caps = unit.envelope, unit.capabilities
        limit = self.policy.unit_current_capacity
        if caps.can_source and env.can_source:
            limit = min(limit, env.current_source_max)
        if caps.can_sink and env.can_sink:
            limit = min(limit, env.current_sink_max)
        return min(limit, env.power_max / volts)

    def _hold(self, uid: str, volts: float, limit: float, droop: float = 0.0) -> float:
        """``hold_voltage``; a unit without droop gets none. Returns the droop used."""
        unit = self.units[uid]
        if droop:
            try:
                unit.hold_voltage(volts, limit, droop)
                return droop
            except CapabilityError as exc:
                log.info("unit %s: no droop (%s); holding without", uid, exc)
        unit.hold_voltage(volts, limit)
        return 0.0

    # -- the sequence ------------------------------------------------------------------------
    def _launch(self, plan: ExchangePlan) -> ExchangeRun:
        run = ExchangeRun(plan)
        self._runs[plan.name] = run
        self._record(
            run,
            Step.PLAN,
            spec=plan.exchange.as_dict(),
            legs=dict(plan.legs),
            reference=plan.reference,
            adjuster=plan.adjuster,
            accounting_units=list(plan.accounting_units),
        )
        run.state = State.STARTING
        run.t_activate = self.clock.now()
        if plan.activates_bus:
            self._activate(run)
            self._ramp_up(run)
            if self.authorize and self.policy.authorization_trials > 0:
                self._authorize(run)
            self._bus_settling = False
            target = plan.legs.get(plan.reference, 0.0)
        else:
            target = self._join(run)
        run.vr_target = target
        self._warm_up(run)
        self._compensate(run, target)
        now = self.clock.now()
        run.state = State.RUNNING
        run.t_start = run.last_cumulate = now
        self._enter(run, Step.START)
        self._record(run, Step.START, setpoints=dict(self._cc), compensated=dict(run.compensated))
        return run

    def _activate(self, run: ExchangeRun) -> None:
        """Dead-bus check and UVLO mask wait, then the reference holds the bus."""
        self._enter(run, Step.ACTIVATE)
        policy, vr = self.policy, run.plan.reference
        deadline = self.clock.now() + policy.ramp_up_timeout
        low = policy.voltage_range_min - policy.uvlo_mask
        high = policy.voltage_range_min + policy.uvlo_mask
        waited = 0
        while True:
            reading = self._read(vr)
            vg = reading.bus_voltage
            if vg > policy.activation_voltage_max:
                raise SafetyTrip(
                    f"activate: the bus reads {vg:.5g} V at unit {vr} before any reference "
                    f"started, above {policy.activation_voltage_max:g} V (min + 2 x "
                    "gridVoltageSeparationV): another source holds the bus"
                )
            if not low <= vg <= high:
                break
            if self.clock.now() >= deadline:
                raise SafetyTrip(
                    f"activate: the bus read by unit {vr} stayed at {vg:.5g} V, inside the "
                    f"UVLO mask {low:g}-{high:g} V, for {policy.ramp_up_timeout:g} s"
                )
            waited += 1
            self._wait(policy.checkpoint_wait)
        dvg = policy.operation_voltage
        top = dvg + 2 * policy.voltage_separation if self.authorize else dvg
        limit = self._reference_limit(vr, max(dvg, top))
        self.reference, self._vr_setpoint, self._vr_limit = vr, dvg, limit
        self._bus_settling = True
        self._hold(vr, dvg, limit)
        self._record(
            run,
            Step.ACTIVATE,
            reference=vr,
            bus_voltage_before=vg,
            uvlo_waits=waited,
            dvg=dvg,
            dig=limit,
            drg=0.0,
        )

    def _ramp_up(self, run: ExchangeRun) -> None:
        self._enter(run, Step.RAMP_UP)
        policy, vr = self.policy, run.plan.reference
        dvg = policy.operation_voltage
        started = self.clock.now()
        while True:
            self._wait(policy.checkpoint_wait)
            reading = self._read(vr)
            if reading.bus_voltage >= dvg - policy.voltage_allowance:
                break
            if self.clock.now() - started >= policy.ramp_up_timeout:
                raise SafetyTrip(
                    f"rampUp: unit {vr} brought the bus only to {reading.bus_voltage:.5g} V in "
                    f"{policy.ramp_up_timeout:g} s (needs ≥ {dvg - policy.voltage_allowance:g} V)"
                )
        self._record(
            run,
            Step.RAMP_UP,
            reference=vr,
            bus_voltage=reading.bus_voltage,
            duration=self.clock.now() - started,
        )

    def _authorize(self, run: ExchangeRun) -> None:
        """APIS authorization: random moves of the reference voltage, each confirmed, so a
        second voltage source on the bus shows up before any current flows."""
        self._enter(run, Step.AUTHORIZE)
        policy, vr = self.policy, run.plan.reference
        env, bus = self.units[vr].envelope, self.bench.config.envelope.bus
        dvg = policy.operation_voltage
        moves = [dvg + k * policy.voltage_separation for k in (-2, -1, 1, 2)]
        moves = [
            v
            for v in moves
            if max(env.voltage_min, bus.voltage_min) < v < min(env.voltage_max, bus.voltage_max)
        ]
        trace = []
        assert self._vr_limit is not None
        for volts in (
            [self._rng.choice(moves) for _ in range(policy.authorization_trials)] if moves else []
        ):
            self._vr_setpoint = volts
            self._hold(vr, volts, self._vr_limit)
            reading = self._checkpoint_voltage(vr, volts)
            trace.append({"dvg": volts, "read_voltage": reading.bus_voltage, "t": reading.t})
        self._vr_setpoint = dvg
        self._hold(vr, dvg, self._vr_limit)
        reading = self._checkpoint_voltage(vr, dvg)
        trace.append({"dvg": dvg, "read_voltage": reading.bus_voltage, "t": reading.t})
        self._record(run, Step.AUTHORIZE, reference=vr, moves=trace)

    def _join(self, run: ExchangeRun) -> float:
        """A new exchange on a running bus: the target is the reference's current now."""
        self._enter(run, Step.ACTIVATE)
        vr = self.reference
        assert vr is not None
        reading = self._read(vr)
        target = reading.bus_current + run.plan.legs.get(vr, 0.0)
        self._record(
            run,
            Step.ACTIVATE,
            reference=vr,
            joined=True,
            reference_current_before=reading.bus_current,
            bus_voltage=reading.bus_voltage,
        )
        return target

    def _warm_up(self, run: ExchangeRun) -> None:
        self._enter(run, Step.WARM_UP)
        plan = run.plan
        targets = {uid: self._cc.get(uid, 0.0) + plan.legs[uid] for uid in plan.cc_units}
        trace = self._ramp(targets)
        run.compensated = {uid: plan.legs[uid] for uid in plan.cc_units}
        self._record(run, Step.WARM_UP, targets=targets, trace=trace)

    def _cc_limit(self, uid: str, sign: float) -> float:
        """The largest set-point magnitude ``uid`` may take in direction ``sign``: its
        envelope (current, power at the top of its window) and ``gridCurrentCapacityA``."""
        env = self.units[uid].envelope
        amps = env.current_source_max if sign > 0 else env.current_sink_max
        return min(amps, self.policy.unit_current_capacity, env.power_max / env.voltage_max)

    def _compensate(self, run: ExchangeRun, target: float) -> None:
        """APIS current compensation: move the adjuster's set-point by the reference's
        deviation from ``target`` until it is within the drift allowance.

        The adjuster never leaves its envelope: at its limit compensation ends *limited*
        (recorded), the reference carrying the small rest."""
        self._enter(run, Step.COMPENSATE)
        policy, plan = self.policy, run.plan
        vr, adjuster = self.reference, plan.adjuster
        assert vr is not None
        trace: list[dict[str, Any]] = []
        trials = policy.compensation_trials
        limited = False
        for trial in range(trials + 1):
            reading = self._read(vr)
            drift = reading.bus_current - target
            trace.append({"reference_current": reading.bus_current, "drift": drift, "t": reading.t})
            if abs(drift) <= policy.compensation_drift_allowance or limited:
                break
            if trial == trials:
                raise ExchangeError(
                    f"current compensation failed: reference {vr} carries "
                    f"{reading.bus_current:+.4g} A after {trials} adjustments of unit "
                    f"{adjuster}, target {target:+.4g} A ± "
                    f"{policy.compensation_drift_allowance:g} A (driftAllowanceA)"
                )
            old = self._cc[adjuster]
            new = old + drift
            if new * plan.legs[adjuster] <= 0:
                raise ExchangeError(
                    f"current compensation would reverse unit {adjuster} (set-point "
                    f"{old:+.4g} A, drift {drift:+.4g} A at reference {vr})"
                )
            cap = self._cc_limit(adjuster, new)
            if abs(new) > cap:
                new, limited = math.copysign(cap, new), True
                log.warning(
                    "exchange %s: compensation of unit %s limited to %+.4g A by its envelope",
                    run.name,
                    adjuster,
                    new,
                )
            if new == old:
                break
            self._settling.add(adjuster)
            self._set(adjuster, new)
            run.compensated[adjuster] = run.compensated[adjuster] + (new - old)
            self._wait(policy.checkpoint_wait)
            self._settling.discard(adjuster)
            trace[-1]["adjuster_setpoint"] = new
        self._record(
            run,
            Step.COMPENSATE,
            reference=vr,
            target=target,
            adjuster=adjuster,
            limited=limited,
            compensated=dict(run.compensated),
            trace=trace,
        )

    def _stop(self, run: ExchangeRun, reason: str) -> None:
        self._enter(run, Step.STOP)
        run.state = State.STOPPING
        run.stop_reason = reason
        plan = run.plan
        now = self.clock.now()
        # Every unit of the exchange is read (and inspected) before it steps down, so a
        # protection or a battery permission withdrawn at the stop still trips the bench.
        readings = {uid: self._read(uid) for uid in plan.legs}
        if run.last_cumulate is not None and now > run.last_cumulate + EPS_S:
            self._cumulate(run, now, readings)
        run.t_stop = now
        targets = {}
        for uid in reversed(plan.cc_units):
            if uid in self._cc and uid != self.reference:
                rest = self._cc[uid] - run.leg(uid)
                targets[uid] = 0.0 if abs(rest) <= 1e-6 else rest
        trace = self._ramp(targets)
        del self._runs[run.name]
        self._record(
            run, Step.STOP, reason=reason, energy_wh=run.energy_wh, targets=targets, trace=trace
        )
        vr = self.reference
        if vr is not None:
            if not self._runs:
                self._deactivate(run)
            elif vr in plan.legs and not any(vr in r.plan.legs for r in self._runs.values()):
                self._hand_over(run)
        run.state = State.DONE
        self.history.append(run)
        self._write_series(run)

    def _deactivate(self, run: ExchangeRun) -> None:
        """Lower the reference voltage (APIS: to min + separation), then idle it."""
        self._enter(run, Step.DEACTIVATE)
        policy, vr = self.policy, self.reference
        assert vr is not None and self._vr_limit is not None
        self._bus_settling = True
        self._settling.add(vr)
        volts = policy.stop_voltage
        self._vr_setpoint = volts
        self._hold(vr, volts, self._vr_limit)
        lowered: Reading | None = None
        for _ in range(max(1, policy.checkpoint_retries)):
            self._wait(policy.checkpoint_wait)
            lowered = self._read(vr)
            if lowered.bus_voltage <= volts + policy.voltage_allowance:
                break
        self.units[vr].idle()
        self.reference = self._vr_setpoint = self._vr_limit = None
        reading = self._checkpoint(vr, 0.0, policy.checkpoint_wait)
        self._settling.discard(vr)
        self._bus_settling = False
        self._record(
            run,
            Step.DEACTIVATE,
            reference=vr,
            dvg=volts,
            lowered_to=None if lowered is None else lowered.bus_voltage,
            idle_current=reading.bus_current,
        )

    def _successor(self) -> str:
        legs: dict[str, float] = {}
        for r in self._runs.values():
            for uid in r.plan.legs:
                legs[uid] = legs.get(uid, 0.0) + r.leg(uid)
        chosen, reasons = pick_reference(self.bench, legs, self.reference_side)
        if chosen is None:
            raise ExchangeError(
                "handOver: no unit of the running exchanges can take over the voltage "
                "reference: " + "; ".join(reasons)
            )
        return chosen

    def _hand_over(self, run: ExchangeRun) -> None:
        """APIS hand-over: droop on both, the new one takes over, the old one leaves, the
        new one's droop returns to 0."""
        self._enter(run, Step.HAND_OVER)
        policy = self.policy
        old, dvg, old_limit = self.reference, self._vr_setpoint, self._vr_limit
        assert old is not None and dvg is not None and old_limit is not None
        new = self._successor()
        problem = reference_problem(self.bench, new, self._cc.get(new, 0.0))
        if problem is not None:
            raise ExchangeError(f"handOver: {problem}")
        new_limit = self._reference_limit(new, dvg)
        self._settling |= {old, new}
        old_droop = self._hold(old, dvg, old_limit, policy.handover_droop)
        new_droop = self._hold(new, dvg, new_limit, policy.handover_droop)
        carried = self._cc.pop(new, 0.0)
        self.reference, self._vr_limit = new, new_limit
        self._wait(policy.checkpoint_wait)
        self.units[old].idle()
        old_reading = self._checkpoint(old, 0.0, policy.checkpoint_wait)
        self._hold(new, dvg, new_limit)
        new_reading = self._checkpoint_voltage(new, dvg)
        self._settling -= {old, new}
        self._record(
            run,
            Step.HAND_OVER,
            old_reference=old,
            new_reference=new,
            dvg=dvg,
            droop_old=old_droop,
            droop_new=new_droop,
            carried_current=carried,
            old_current=old_reading.bus_current,
            new_voltage=new_reading.bus_voltage,
        )

    # -- scram ---------------------------------------------------------------------------------
    def _scram(self, reason: str) -> ShutdownReport:
        now = self.clock.now()
        names = list(self._runs)
        safe_write(
            self.recorder,
            "safety_event",
            kind="scram",
            level="error",
            t=now,
            message=reason,
            reference=self.reference,
            exchanges=names,
        )
        lower_to = None
        if self.reference is not None and self._vr_limit is not None:
            lower_to = (self.policy.stop_voltage, self._vr_limit)
        report = self.shutdown.run(reason, reference=self.reference, lower_to=lower_to)
        for run in self._runs.values():
            run.state = State.SCRAMMED
            run.stop_reason = f"scram: {reason}"
            run.t_stop = run.t_stop if run.t_stop is not None else now
            self.history.append(run)
            self._write_series(run)
        self._runs.clear()
        self._cc.clear()
        self._settling.clear()
        self.reference = self._vr_setpoint = self._vr_limit = None
        self._bus_settling = False
        self._global_stop_until = self.clock.now() + self.policy.error_sustaining
        self.last_shutdown = report
        self.supervisor.reset()
        if report.unconfirmed and self.on_unsafe is not None:
            try:
                self.on_unsafe(report)
            except Exception as exc:
                log.error("on_unsafe after the shutdown failed: %s", exc)
        return report
