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
every supervisor period, reads every unit, runs the :class:`~hil.exchange.supervisor.Supervisor`,
counts energy and samples the series — so the supervisor runs during every step. Any
exception inside a public method (a supervisor error, a failed checkpoint, a dropped line,
a signal) runs the ordered shutdown (:mod:`hil.exchange.shutdown`) before it propagates; new
exchanges are then refused for ``error_sustaining`` seconds.

The engine is a facade over one part per responsibility: the bus state and each run
(:mod:`hil.exchange.bus`), the step sequence as a table of step functions
(:mod:`hil.exchange.steps`), unit commands and checkpoints (:mod:`hil.exchange.commands`), the
clock and supervisor tick (:mod:`hil.exchange.ticks`), energy accounting and series
(:mod:`hil.exchange.energy`) and the scram (:mod:`hil.exchange.scram`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hil.controller import Reading
from hil.errors import ExchangeError
from hil.exchange import BusLoad, Exchange, ExchangePlan, Side, plan_exchange
from hil.exchange.bus import (
    ACTIVE,
    EPS_S,
    MIN_TICK_S,
    ZERO_A,
    BusState,
    EngineContext,
    ExchangeRun,
    State,
    Step,
    StepHook,
    battery_power,
    log,
)
from hil.exchange.commands import UnitCommands
from hil.exchange.energy import EnergyAccounting, SeriesSampler
from hil.exchange.scram import Scram
from hil.exchange.shutdown import OrderedShutdown, ShutdownReport
from hil.exchange.steps import Sequencer
from hil.exchange.supervisor import BusExpectation, CheckReport, Supervisor
from hil.exchange.ticks import Ticker
from hil.recorder import Recorder, safe_write

if TYPE_CHECKING:
    from hil.units.bench import Bench

__all__ = [
    "ACTIVE",
    "EPS_S",
    "MIN_TICK_S",
    "ZERO_A",
    "ExchangeEngine",
    "ExchangeRun",
    "State",
    "Step",
    "StepHook",
    "battery_power",
]


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
        self._ctx = EngineContext(
            bench,
            self.recorder,
            supervisor or Supervisor(bench.config, recorder=self.recorder),
            BusState(),
            on_step=on_step,
            on_unsafe=on_unsafe,
        )
        self.authorize = authorize
        self.shutdown = OrderedShutdown(
            bench.units,
            self.clock,
            self.policy,
            recorder=self.recorder,
            confirm_timeout=confirm_timeout,
        )
        self.history: list[ExchangeRun] = []
        self.refused: list[tuple[Exchange, ExchangeError]] = []
        accounting, sampler = EnergyAccounting(self._ctx), SeriesSampler(self._ctx)
        self._ticker = Ticker(self._ctx, accounting, sampler, full_every)
        self._sequencer = Sequencer(
            self._ctx,
            UnitCommands(self._ctx, self._ticker.wait, sampler.sample_transition),
            accounting,
            sampler,
            authorize=authorize,
            reference_side=reference_side,
            seed=seed,
            history=self.history,
        )
        self._scram = Scram(self._ctx, self.shutdown, sampler, self.history)
        self._names = itertools.count(1)
        self._depth = 0

    # -- state for others ----------------------------------------------------------------
    @property
    def supervisor(self) -> Supervisor:
        """The supervisor every tick and reading goes through (replaceable)."""
        return self._ctx.supervisor

    @supervisor.setter
    def supervisor(self, supervisor: Supervisor) -> None:
        self._ctx.supervisor = supervisor

    @property
    def on_step(self) -> StepHook | None:
        return self._ctx.on_step

    @on_step.setter
    def on_step(self, hook: StepHook | None) -> None:
        self._ctx.on_step = hook

    @property
    def on_unsafe(self) -> Callable[[ShutdownReport], None] | None:
        return self._ctx.on_unsafe

    @on_unsafe.setter
    def on_unsafe(self, hook: Callable[[ShutdownReport], None] | None) -> None:
        self._ctx.on_unsafe = hook

    @property
    def on_tick(self) -> Callable[[float, Mapping[str, Reading]], None] | None:
        return self._ctx.on_tick

    @on_tick.setter
    def on_tick(self, hook: Callable[[float, Mapping[str, Reading]], None] | None) -> None:
        self._ctx.on_tick = hook

    @property
    def reference_side(self) -> Side:
        return self._sequencer.reference_side

    @property
    def full_every(self) -> int:
        return self._ticker.full_every

    @property
    def reference(self) -> str | None:
        """The unit holding the bus voltage, if any."""
        return self._ctx.bus.reference

    @property
    def last_report(self) -> CheckReport | None:
        """The supervisor's report of the last tick."""
        return self._ticker.last_report

    @property
    def last_readings(self) -> dict[str, Reading]:
        """Each unit's latest reading from a supervisor tick (agents reuse a fresh one, as
        APIS's house-keeping uses the unit data its controller last acquired)."""
        return self._ticker.last_readings

    @property
    def last_shutdown(self) -> ShutdownReport | None:
        """The report of the last ordered shutdown."""
        return self._scram.last_shutdown

    @property
    def running(self) -> list[ExchangeRun]:
        """The exchanges not yet ended, in start order."""
        return list(self._ctx.bus.runs.values())

    @property
    def busy(self) -> bool:
        """True while a public method runs (a signal then unwinds it into the shutdown)."""
        return self._depth > 0

    @property
    def setpoints(self) -> dict[str, float]:
        """The constant-current set-point of every unit in CURRENT mode (A, signed)."""
        return dict(self._ctx.bus.cc)

    @property
    def active(self) -> bool:
        """True while anything is on: an exchange, a reference or a CC unit."""
        bus = self._ctx.bus
        return bool(bus.runs or bus.reference or bus.cc)

    def bus_load(self) -> BusLoad:
        """What runs on the bus, as the exchange rules see it (each unit's planned legs)."""
        return self._ctx.bus.bus_load(self.history)

    def expectations(self) -> BusExpectation:
        """What every unit and the bus should be doing now (for the supervisor)."""
        return self._ctx.bus.expectations(list(self.units))

    # -- the guard around every public method ---------------------------------------------
    @contextmanager
    def _operation(self, what: str) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException as exc:
            if self._depth == 1 and not self._scram.scramming:
                trip = self._scram.diagnose(exc)
                cause = trip or exc
                self.scram(f"{what}: {type(cause).__name__}: {cause}")
                if trip is not None:
                    raise trip from exc
            raise
        finally:
            self._depth -= 1

    # -- public API -------------------------------------------------------------------------
    def admit(self, exchange: Exchange, *, name: str | None = None) -> ExchangePlan:
        """Check ``exchange`` against the bench and what runs now; no I/O.

        Raises ``ExchangeError`` naming the broken rule (``global-stop`` while an error is
        held after a shutdown)."""
        label = name or exchange.name or f"X{next(self._names)}"
        self._scram.check_global_stop(exchange, label)
        return plan_exchange(
            exchange, self.bench, self.bus_load(), name=label, reference_side=self.reference_side
        )

    def start(self, exchange: Exchange, *, name: str | None = None) -> ExchangeRun:
        """Check, then run ``exchange`` from activation (or joining) to running."""
        plan = self.admit(exchange, name=name)
        with self._operation(f"starting exchange {plan.name}"):
            return self._sequencer.launch(plan)

    def stop(self, run: ExchangeRun | str, reason: str = "stop requested") -> ExchangeRun:
        """Stop a running exchange (step down, idle; deactivate or hand over the reference)."""
        runs = self._ctx.bus.runs
        target = runs.get(run) if isinstance(run, str) else run
        if target is None or target.state is not State.RUNNING:
            name = run if isinstance(run, str) else run.name
            raise ExchangeError(
                f"exchange {name} is not running; running: {', '.join(runs) or 'none'}"
            )
        with self._operation(f"stopping exchange {target.name}"):
            self._sequencer.stop(target, reason)
        return target

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the bench clock; every supervisor period, supervise and
        count energy (the only way the engine waits)."""
        with self._operation(f"waiting {seconds:g} s"):
            self._ticker.wait(seconds)

    def serve(self, timeout: float | None = None) -> None:
        """Keep the bus running until every exchange has ended (amount, duration, SoC)."""
        with self._operation("serving the running exchanges"):
            self._serve(timeout)

    def run(self, *exchanges: Exchange, timeout: float | None = None) -> list[ExchangeRun]:
        """Start every exchange (the first activates the bus, the others join), then serve
        until all have ended. The whole set is checked before anything is touched."""
        self._preflight(exchanges)
        with self._operation("running exchanges"):
            runs = [self._sequencer.launch(self.admit(ex)) for ex in exchanges]
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
        ticker, sequencer = self._ticker, self._sequencer
        with self._operation("running a schedule of exchanges"):
            for at, _, exchange in items:
                while self.clock.now() < at - EPS_S:
                    sequencer.stop_due()
                    ticker.wait(min(at, ticker.next_tick()) - self.clock.now())
                sequencer.stop_due()
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
                runs.append(sequencer.launch(plan))
            self._serve(timeout)
        return runs

    def scram(self, reason: str) -> ShutdownReport:
        """The ordered shutdown of the whole bench (APIS scram); sets the global stop."""
        return self._scram(reason)

    def close(self) -> None:
        """Shut down in order if anything is still on; the bench stays open."""
        if self.active:
            self.scram("exchange engine closed while active")

    # -- serving ---------------------------------------------------------------------------
    def _serve(self, timeout: float | None) -> None:
        runs, ticker = self._ctx.bus.runs, self._ticker
        deadline = None if timeout is None else self.clock.now() + timeout
        while runs:
            self._sequencer.stop_due()
            if not runs:
                break
            if deadline is not None and self.clock.now() >= deadline:
                raise ExchangeError(f"exchanges {', '.join(runs)} did not end within {timeout:g} s")
            ticker.wait(max(ticker.next_tick() - self.clock.now(), 0.0))

    def _preflight(self, exchanges: Sequence[Exchange]) -> None:
        """Check a set of exchanges as if they all ran at once; no I/O."""
        for exchange in exchanges:
            self._scram.check_global_stop(exchange, exchange.name or "")
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
