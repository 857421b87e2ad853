"""The exchange engine's clock: every wait, and the supervisor tick inside it.

:meth:`Ticker.wait` is the only way the engine lets time pass. It advances the bench clock
and, every supervisor period (and at each exchange's predicted end), reads the units, runs
the :class:`~hil.exchange.supervisor.Supervisor`, counts energy and samples the series; a supervisor
error is raised as a ``SafetyTrip`` from inside the wait, so it interrupts any step.
"""

from __future__ import annotations

from hil.controller import Reading
from hil.errors import SafetyTrip
from hil.exchange.bus import EPS_S, MIN_TICK_S, EngineContext
from hil.exchange.energy import EnergyAccounting, SeriesSampler
from hil.exchange.supervisor import CheckReport


class Ticker:
    """Waits on the bench clock and ticks every supervisor period.

    While exchanges run, a tick reads the units in exchanges and the reference, and every
    ``full_every``-th tick every unit (a unit switched on by mistake also shows at once in
    the balance of the units in exchanges)."""

    def __init__(
        self,
        ctx: EngineContext,
        accounting: EnergyAccounting,
        sampler: SeriesSampler,
        full_every: int,
    ) -> None:
        if full_every < 1:
            raise ValueError(f"full_every must be ≥ 1, got {full_every}")
        self.ctx = ctx
        self.accounting = accounting
        self.sampler = sampler
        self.full_every = full_every
        self.ticks = 0
        self.last_tick = ctx.clock.now()
        self.last_report: CheckReport | None = None
        #: Each unit's latest reading from a tick (agents reuse a fresh one, as APIS's
        #: house-keeping uses the unit data its controller last acquired).
        self.last_readings: dict[str, Reading] = {}

    def next_tick(self) -> float:
        """When the next tick is due: one period on, or earlier at a predicted end."""
        t = self.accounting.next_end(self.last_tick + self.ctx.supervisor.period)
        return max(t, self.last_tick + MIN_TICK_S)

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the bench clock, ticking whenever a tick is due."""
        clock = self.ctx.clock
        end = clock.now() + max(seconds, 0.0)
        while True:
            now = clock.now()
            if now >= self.next_tick() - EPS_S:
                self.tick()
                continue
            if now >= end - EPS_S:
                return
            clock.sleep(min(end, self.next_tick()) - now)

    def watched(self) -> list[str] | None:
        """The units this tick reads: every unit (None) on every ``full_every``-th tick and
        while nothing runs; otherwise the units in exchanges and the reference."""
        bus = self.ctx.bus
        self.ticks += 1
        if not bus.runs or self.ticks % self.full_every == 0:
            return None
        members = bus.members()
        if bus.reference is not None:
            members.add(bus.reference)
        return [uid for uid in self.ctx.units if uid in members]

    def tick(self) -> None:
        """Read, supervise, count energy, sample; a supervisor error is a ``SafetyTrip``."""
        ctx = self.ctx
        watched = self.watched()
        snap = ctx.bench.snapshot(watched)
        t, readings, errors = snap.t, dict(snap.readings), dict(snap.errors)
        self.last_tick = t
        self.last_readings.update(readings)
        expected = ctx.bus.expectations(list(ctx.units))
        report = ctx.supervisor.check(t, readings, errors, expected, units=watched)
        self.last_report = report
        self.accounting.account(t, readings)
        self.sampler.sample(t, readings)
        if ctx.on_tick is not None:
            ctx.on_tick(t, readings)
        if report.errors:
            raise SafetyTrip(f"supervisor at t = {t:.6g} s: {report.describe_errors()}")
