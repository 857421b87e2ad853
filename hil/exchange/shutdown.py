"""The ordered shutdown (APIS *scram*) and the last resort, ``safe_off`` on every unit.

:meth:`OrderedShutdown.run` is what runs on any error, exception, signal or exit:

1. every unit but the voltage reference steps to 0 A and goes idle (APIS: every CC unit to
   WAIT); each is confirmed by read-back (mode idle, |I| ≤ ``current_allowance``) within
   ``confirm_timeout``; a unit that refuses, fails or does not confirm gets ``safe_off()``;
2. after ``scram_vr_delay`` (APIS ``scramVoltageReferenceDelayMsec``) the voltage
   reference lowers its voltage to the stop voltage (when its current limit is known), then
   goes idle, confirmed the same way (``safe_off()`` otherwise).

Every step is timed on the bench clock, bounded, and recorded as a ``shutdown`` line; the
returned :class:`ShutdownReport` names every unit that did not confirm. The shutdown never
raises: a failing unit is handled and named, and the next one is still made safe.

:func:`safe_off_all` is the second layer (a second signal, an unconfirmed unit):
``safe_off()`` on every unit at once, each on its own thread, bounded in time.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hil.clock import Clock
from hil.config.apis_policy import ApisPolicy
from hil.controller import CurrentController, Mode, Reading
from hil.recorder import Recorder, safe_write

log = logging.getLogger(__name__)

#: Extra wall seconds ``safe_off_all`` waits beyond the units' own bound.
SAFE_OFF_JOIN_MARGIN_S = 1.0
DEFAULT_CONFIRM_TIMEOUT_S = 1.0
#: Reads a unit gets while its safe state is confirmed before it counts as unconfirmed.
CONFIRM_READ_TRIES = 2


@dataclass(frozen=True)
class ShutdownStep:
    """One action of the shutdown on one unit, with its outcome."""

    unit: str
    action: str
    t: float
    ok: bool
    detail: str = ""
    bus_voltage: float | None = None
    bus_current: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "action": self.action,
            "t": self.t,
            "ok": self.ok,
            "detail": self.detail,
            "bus_voltage": self.bus_voltage,
            "bus_current": self.bus_current,
        }


@dataclass
class ShutdownReport:
    """What an ordered shutdown did: its steps, and the units it could not confirm."""

    reason: str
    started: float
    finished: float = 0.0
    reference: str | None = None
    steps: list[ShutdownStep] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    safe_off_failures: dict[str, list[str]] = field(default_factory=dict)

    @property
    def all_confirmed(self) -> bool:
        return not self.unconfirmed

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "reference": self.reference,
            "unconfirmed": list(self.unconfirmed),
            "safe_off_failures": dict(self.safe_off_failures),
            "steps": [s.as_dict() for s in self.steps],
        }


def _safe_off_one(uid: str, unit: CurrentController) -> list[str]:
    try:
        return unit.safe_off()
    except Exception as exc:  # safe_off must never raise; if it does, it is a failure
        return [f"{uid}: safe_off raised {type(exc).__name__}: {exc}"]


def safe_off_all(
    units: Mapping[str, CurrentController], *, timeout: float | None = None
) -> dict[str, list[str]]:
    """``safe_off()`` on every unit at once (one thread each); never raises.

    Returns the failures per unit; a unit whose ``safe_off`` did not return within
    ``timeout`` wall seconds (default: the units' own bound plus a margin) is named too.
    """
    results: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(uid: str, unit: CurrentController) -> None:
        failures = _safe_off_one(uid, unit)
        with lock:
            results[uid] = failures

    threads = [
        threading.Thread(target=work, args=(uid, unit), name=f"safe_off_all-{uid}", daemon=True)
        for uid, unit in units.items()
    ]
    for thread in threads:
        thread.start()
    bound = timeout
    if bound is None:
        bound = max((getattr(u, "_safe_off_timeout", 5.0) for u in units.values()), default=5.0)
        bound += SAFE_OFF_JOIN_MARGIN_S
    for thread in threads:
        thread.join(bound)
    with lock:
        outcome = dict(results)
    for uid in units:
        if uid not in outcome:
            outcome[uid] = [f"{uid}: safe_off did not return within {bound:g} s"]
    return {uid: failures for uid, failures in outcome.items() if failures}


def commanded_reference(units: Mapping[str, CurrentController]) -> str | None:
    """The unit last told to hold the bus voltage, if an adapter says so."""
    for uid, unit in units.items():
        if getattr(unit, "commanded_mode", None) is Mode.VOLTAGE_REFERENCE:
            return uid
    return None


class OrderedShutdown:
    """Current-controlled units to 0 A and idle first, the voltage reference last."""

    def __init__(
        self,
        units: Mapping[str, CurrentController],
        clock: Clock,
        policy: ApisPolicy,
        *,
        recorder: Recorder | None = None,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT_S,
        reference_delay: float | None = None,
    ) -> None:
        self.units = units
        self.clock = clock
        self.policy = policy
        self.recorder = recorder
        self.confirm_timeout = confirm_timeout
        self.reference_delay = policy.scram_vr_delay if reference_delay is None else reference_delay
        self._report: ShutdownReport | None = None

    # -- steps ---------------------------------------------------------------------------
    def _step(
        self, unit: str, action: str, ok: bool, detail: str = "", reading: Reading | None = None
    ) -> None:
        assert self._report is not None
        step = ShutdownStep(
            unit,
            action,
            self.clock.now(),
            ok,
            detail,
            None if reading is None else reading.bus_voltage,
            None if reading is None else reading.bus_current,
        )
        self._report.steps.append(step)
        (log.info if ok else log.error)("shutdown %s %s: %s", unit, action, detail or "ok")
        safe_write(
            self.recorder, "shutdown", event="step", reason=self._report.reason, **step.as_dict()
        )

    def _command(self, uid: str, action: str, call: Callable[[], None]) -> bool:
        try:
            call()
        except Exception as exc:
            self._step(uid, action, False, f"{type(exc).__name__}: {exc}")
            return False
        self._step(uid, action, True)
        return True

    def _sleep(self, seconds: float) -> None:
        try:
            self.clock.sleep(seconds)
        except Exception as exc:  # a dead clock (emulator gone) must not stop the shutdown
            log.error("shutdown: the clock could not wait %.3g s: %s", seconds, exc)

    def _is_idle(self, reading: Reading) -> bool:
        return (
            reading.mode is Mode.IDLE and abs(reading.bus_current) <= self.policy.current_allowance
        )

    def _confirm(self, uids: list[str], what: str, test: Callable[[Reading], bool]) -> list[str]:
        """Poll ``uids`` until each passes ``test``; returns those that did not in time.

        A unit whose read fails twice in a row is not asked again (each try costs a
        timeout); one failed read — a lost frame, a slow answer — is tried once more."""
        pending = list(uids)
        deadline = self.clock.now() + self.confirm_timeout
        poll = self.policy.checkpoint_wait
        failed: list[str] = []
        misses: dict[str, int] = {}
        while pending:
            for uid in list(pending):
                try:
                    reading = self.units[uid].read()
                except Exception as exc:
                    misses[uid] = misses.get(uid, 0) + 1
                    gave_up = misses[uid] >= CONFIRM_READ_TRIES
                    self._step(
                        uid,
                        f"confirm {what}",
                        False,
                        f"read failed ({misses[uid]} of {CONFIRM_READ_TRIES}): {exc}",
                    )
                    if gave_up:
                        pending.remove(uid)
                        failed.append(uid)
                    continue
                misses.pop(uid, None)
                if test(reading):
                    self._step(uid, f"confirm {what}", True, reading=reading)
                    pending.remove(uid)
            if not pending:
                break
            if self.clock.now() >= deadline:
                for uid in pending:
                    self._step(
                        uid,
                        f"confirm {what}",
                        False,
                        f"not confirmed within {self.confirm_timeout:g} s",
                    )
                failed.extend(pending)
                break
            self._sleep(poll)
        return failed

    def _safe_off(self, uids: list[str]) -> None:
        assert self._report is not None
        for uid in uids:
            if uid not in self._report.unconfirmed:
                self._report.unconfirmed.append(uid)
        failures = safe_off_all({uid: self.units[uid] for uid in uids})
        for uid in uids:
            detail = "; ".join(failures.get(uid, [])) or "done"
            self._step(uid, "safe_off", uid not in failures, detail)
        self._report.safe_off_failures.update(failures)

    # -- the whole shutdown ----------------------------------------------------------------
    def run(
        self,
        reason: str,
        *,
        reference: str | None = None,
        lower_to: tuple[float, float] | None = None,
    ) -> ShutdownReport:
        """Shut the bench down in order; never raises.

        ``reference`` is the voltage-reference unit (found from the adapters' commanded
        mode if None); ``lower_to`` = (volts, current limit) lowers its voltage before it
        goes idle (APIS: to min + separation).
        """
        reference = reference or commanded_reference(self.units)
        report = ShutdownReport(reason=reason, started=self.clock.now(), reference=reference)
        self._report = report
        log.error("ordered shutdown: %s", reason)
        safe_write(
            self.recorder,
            "shutdown",
            event="begin",
            reason=reason,
            reference=reference,
            t=report.started,
        )
        cc = [uid for uid in self.units if uid != reference]
        sent: list[str] = []
        refused: list[str] = []
        for uid in cc:
            unit = self.units[uid]
            ok = True
            if getattr(unit, "commanded_mode", Mode.CURRENT) is Mode.CURRENT:
                ok = self._command(uid, "set_current(0)", functools.partial(unit.set_current, 0.0))
            # a unit that failed once is not asked again (another timeout): safe_off instead
            ok = ok and self._command(uid, "idle", unit.idle)
            (sent if ok else refused).append(uid)
        failed = self._confirm(sent, "idle", self._is_idle)
        if refused or failed:
            self._safe_off(refused + failed)
        if reference is not None:
            self._shut_reference(reference, lower_to, bool(cc))
        report.finished = self.clock.now()
        safe_write(self.recorder, "shutdown", event="end", t=report.finished, **report.as_dict())
        if report.unconfirmed:
            log.error("ordered shutdown: not confirmed: %s", ", ".join(report.unconfirmed))
        self._report = None
        return report

    def _shut_reference(
        self, reference: str, lower_to: tuple[float, float] | None, others: bool
    ) -> None:
        unit = self.units[reference]
        if others and self.reference_delay > 0:
            self._step(
                reference, f"wait {self.reference_delay:g} s (scramVoltageReferenceDelayMsec)", True
            )
            self._sleep(self.reference_delay)
        if lower_to is not None:
            volts, limit = lower_to
            if self._command(
                reference, f"hold_voltage({volts:g} V)", lambda: unit.hold_voltage(volts, limit)
            ):
                allowance = self.policy.voltage_allowance
                self._confirm(
                    [reference],
                    f"bus ≤ {volts + allowance:g} V",
                    lambda r: r.bus_voltage <= volts + allowance,
                )
        if self._command(reference, "idle", unit.idle):
            if self._confirm([reference], "idle", self._is_idle):
                self._safe_off([reference])
        else:
            self._safe_off([reference])
