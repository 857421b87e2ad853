"""The exchange engine's scram: the ordered shutdown of the whole bench, and what follows.

:class:`Scram` runs :class:`~hil.exchange.shutdown.OrderedShutdown` (APIS scram), ends every
running exchange as scrammed, clears the bus state, holds the global stop for
``error_sustaining`` seconds (APIS ``errorSustainingMsec``) and calls ``on_unsafe`` when a
unit could not be confirmed safe. :meth:`Scram.diagnose` tells a protection's trip from an
error before the shutdown runs, so the verdict names the cause.
"""

from __future__ import annotations

import math

from hil.errors import HilError, SafetyTrip
from hil.exchange import Exchange, Rule, refusal
from hil.exchange.bus import EngineContext, ExchangeRun, State, log
from hil.exchange.energy import SeriesSampler
from hil.exchange.shutdown import OrderedShutdown, ShutdownReport
from hil.exchange.supervisor import Expectation
from hil.recorder import safe_write


class Scram:
    """The ordered shutdown of one engine's bench, and the global stop that follows it."""

    def __init__(
        self,
        ctx: EngineContext,
        shutdown: OrderedShutdown,
        sampler: SeriesSampler,
        history: list[ExchangeRun],
    ) -> None:
        self.ctx = ctx
        self.shutdown = shutdown
        self.sampler = sampler
        self.history = history
        self.global_stop_until = -math.inf
        self.scramming = False
        self.last_shutdown: ShutdownReport | None = None

    def check_global_stop(self, exchange: Exchange, label: str) -> None:
        """Refuse ``exchange`` while the error after a shutdown is held (``global-stop``)."""
        now = self.ctx.clock.now()
        if now < self.global_stop_until:
            raise refusal(
                Rule.GLOBAL_STOP,
                f"exchange {label} ({exchange.describe()})",
                f"the bench is held stopped after an error until t = "
                f"{self.global_stop_until:.6g} s (errorSustainingMsec "
                f"{self.ctx.policy.error_sustaining:g} s); now t = {now:.6g} s",
            )

    def __call__(self, reason: str) -> ShutdownReport:
        """Scram once: a scram asked for while one runs returns the last report."""
        if self.scramming and self.last_shutdown is not None:
            return self.last_shutdown
        self.scramming = True
        try:
            return self._run(reason)
        finally:
            self.scramming = False

    def _run(self, reason: str) -> ShutdownReport:
        ctx, bus = self.ctx, self.ctx.bus
        now = ctx.clock.now()
        safe_write(
            ctx.recorder,
            "safety_event",
            kind="scram",
            level="error",
            t=now,
            message=reason,
            reference=bus.reference,
            exchanges=list(bus.runs),
        )
        lower_to = None
        if bus.reference is not None and bus.vr_limit is not None:
            lower_to = (ctx.policy.stop_voltage, bus.vr_limit)
        report = self.shutdown.run(reason, reference=bus.reference, lower_to=lower_to)
        for run in bus.runs.values():
            run.state = State.SCRAMMED
            run.stop_reason = f"scram: {reason}"
            run.t_stop = run.t_stop if run.t_stop is not None else now
            self.history.append(run)
            self.sampler.write(run)
        bus.clear()
        self.global_stop_until = ctx.clock.now() + ctx.policy.error_sustaining
        self.last_shutdown = report
        ctx.supervisor.reset()
        if report.unconfirmed and ctx.on_unsafe is not None:
            try:
                ctx.on_unsafe(report)
            except Exception as exc:
                log.error("on_unsafe after the shutdown failed: %s", exc)
        return report

    def diagnose(self, exc: BaseException) -> SafetyTrip | None:
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
        bus, units = self.ctx.bus, self.ctx.units
        legs = bus.planned_legs()
        involved = [uid for uid in units if uid in legs or uid in bus.cc or uid == bus.reference]
        found: list[str] = []
        for uid in involved:
            try:
                reading = units[uid].read()
            except Exception as error:
                log.info("diagnosis: unit %s did not answer: %s", uid, error)
                continue
            expected = bus.expectation(uid)
            if expected.direction == 0 and legs.get(uid):
                direction = 1 if legs[uid] > 0 else -1
                expected = Expectation(expected.mode, expected.setpoint, direction, True)
            report = self.ctx.supervisor.inspect(reading, expected)
            found.extend(f"{v.key}: {v.message}" for v in report.errors)
        if not found:
            return None
        return SafetyTrip(f"{'; '.join(found)} (found when {type(exc).__name__}: {exc})")
