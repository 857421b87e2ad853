"""Process-level safety: the same ordered shutdown on signals, at exit and when all else
fails, and the emulator's watchdog armed and fed.

:class:`ProcessGuard` installs handlers for SIGINT and SIGTERM and an ``atexit`` hook:

- the **first** signal: if the engine is in the middle of an operation, a
  :class:`SignalInterrupt` (a ``KeyboardInterrupt``) is raised in it, so the operation
  unwinds and the engine runs its ordered shutdown on the way out (never two commands
  interleaved on one line); otherwise the guard runs the ordered shutdown itself, then
  raises the interrupt so the program stops;
- a **second** signal while that runs: ``safe_off()`` on every unit at once, then
  ``SystemExit(128 + signal)``;
- at **exit**: the ordered shutdown if anything is still on (after a forced exit, the
  ``safe_off`` of every unit once more).

Under pytest (the plugin, ``hil run``) the guard is built with ``defer=True``: the first
signal only raises the interrupt, pytest ends the session as on Ctrl-C, and the plugin runs
the ordered shutdown from ``pytest_sessionfinish`` while the emulator still answers — never
from inside a signal handler that may have cut a driver's exchange in half. Its second
signal exits at once (``os._exit``) after ``safe_off`` on every unit. :class:`Interrupts`
keeps the same two-signal rule before a bench is guarded and after (opening the bench,
building the report); one :class:`SignalTally` per process counts for both.

:class:`EmulatorWatchdog` arms the emulator's control-channel watchdog on a connection of
its own and feeds it from a thread, so that the emulator makes every output safe when this
process dies (even by SIGKILL: the connection closes) or falls silent. ``trip()`` closes
that connection on purpose: the last resort when a shutdown could not confirm a unit.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self

from hil.controller import CurrentController
from hil.exchange.shutdown import (
    SAFE_OFF_JOIN_MARGIN_S,
    OrderedShutdown,
    ShutdownReport,
    safe_off_all,
)
from hil.recorder import Recorder, safe_write
from hil.units.base import SAFE_OFF_TIMEOUT_S

if TYPE_CHECKING:
    from hil.exchange.engine import ExchangeEngine
    from hil.units.bench import Bench
    from instruments.emulation.client import ControlClient

log = logging.getLogger(__name__)

GUARDED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
#: The watchdog is fed this many times per period.
FEEDS_PER_PERIOD = 4
#: How long a second signal waits for the forced ``safe_off`` of every unit before the
#: process exits anyway: every unit's own bound, its join margin and a record line.
FORCE_WAIT_S = SAFE_OFF_TIMEOUT_S + SAFE_OFF_JOIN_MARGIN_S + 2.0


class SignalInterrupt(KeyboardInterrupt):
    """A guarded signal arrived; raised where the program was, so it unwinds."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"received {signal.Signals(signum).name}")


class SignalTally:
    """How many guarded signals this process has received (shared by its handlers)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def add(self, signum: int) -> int:
        """Count ``signum``; returns how many signals have arrived, this one included."""
        self.count += 1
        if self.first is None:
            self.first = signal.Signals(signum).name
        return self.count


def within_bound(work: Callable[[], object], seconds: float, what: str) -> None:
    """Run ``work`` on a thread of its own and wait for it at most ``seconds``.

    For a signal handler's work: the handler runs on the thread it interrupted, which may
    hold a lock that ``work`` needs (the record's, an instrument line's, the control
    channel's); run on that thread, ``work`` would wait for itself forever."""
    worker = threading.Thread(target=work, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        log.error("%s still running after %g s; going on without it", what, seconds)


def exit_now(code: int) -> None:
    """Leave the process at once (no unwinding, no exit hooks): the second signal's end."""
    logging.shutdown()
    os._exit(code)


class Interrupts:
    """SIGINT/SIGTERM while no bench guard is installed: the first raises
    :class:`SignalInterrupt` (a Ctrl-C to pytest, even for SIGTERM), a second calls
    ``exit(128 + signal)`` at once. Installed only from the main thread."""

    def __init__(
        self,
        tally: SignalTally,
        *,
        exit: Callable[[int], object] = exit_now,
        signals: tuple[signal.Signals, ...] = GUARDED_SIGNALS,
    ) -> None:
        self.tally = tally
        self._exit = exit
        self._signals = signals
        self._previous: dict[signal.Signals, Any] = {}
        #: While set, a first signal is only counted (the caller finishes its job, e.g. the
        #: report, and reports the interruption itself).
        self.hold = False

    def install(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.tally.add(signum) > 1:
            log.error("second signal %s: exiting now", name)
            self._exit(128 + signum)
            return
        if self.hold:
            log.error("%s: finishing first (a second signal stops at once)", name)
            return
        raise SignalInterrupt(signum)


class EmulatorWatchdog:
    """The emulator's watchdog, armed on a connection of its own and fed by a thread.

    ``period`` is in wall seconds. When this process dies its connection closes and the
    emulator makes every output safe at once; when it falls silent (the feeder thread is
    gone) it does so after ``period``.
    """

    def __init__(
        self, control: ControlClient, period: float, recorder: Recorder | None = None
    ) -> None:
        if not period > 0:
            raise ValueError(f"watchdog period must be > 0 s, got {period!r}")
        self.control = control
        self.period = period
        self.recorder = recorder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tripped = False

    @classmethod
    def arm(cls, address: str, period: float, recorder: Recorder | None = None) -> EmulatorWatchdog:
        """Connect to the emulator's control channel at ``address``, arm, start feeding;
        a trip is recorded to ``recorder``."""
        from instruments.emulation.client import ControlClient

        dog = cls(ControlClient(address), period, recorder)
        dog.start()
        return dog

    def start(self) -> None:
        self.control.arm_watchdog(self.period)
        self._thread = threading.Thread(target=self._feed, name="emulator-watchdog", daemon=True)
        self._thread.start()
        log.info("emulator watchdog armed: %g s", self.period)

    def _feed(self) -> None:
        while not self._stop.wait(self.period / FEEDS_PER_PERIOD):
            try:
                self.control.request("time")
            except Exception as exc:
                log.error("emulator watchdog: feeding failed: %s", exc)
                return

    def trip(self, reason: str = "") -> None:
        """Stop feeding and close the connection: the emulator makes every output safe.

        The record gets a ``safety_event`` (kind ``watchdog``): this is how outputs the
        ordered shutdown could not reach end safe."""
        message = "emulator watchdog tripped on purpose" + (f": {reason}" if reason else "")
        log.error("%s", message)
        safe_write(
            self.recorder,
            "safety_event",
            kind="watchdog",
            level="error",
            message=f"{message}; the emulator makes every output safe",
        )
        self.tripped = True
        self._stop.set()
        self.control.close()

    def close(self) -> None:
        """Disarm and close (a normal end: outputs are not touched)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.period)
        if not self.tripped:
            try:
                self.control.arm_watchdog(0)
            except Exception as exc:
                log.warning("emulator watchdog: disarming failed: %s", exc)
            self.control.close()


class ProcessGuard:
    """Signals, exit and last resort around one bench (and its engine, if any).

    ``shutdown(reason)`` is the ordered shutdown (the engine's scram, or an
    :class:`~hil.exchange.shutdown.OrderedShutdown` of the bench); ``force(reason)`` makes every
    unit safe at once; ``busy()`` says whether the main thread is inside an engine
    operation (then a signal unwinds it instead of shutting down from the handler).
    """

    def __init__(
        self,
        shutdown: Callable[[str], object],
        force: Callable[[str], object],
        *,
        busy: Callable[[], bool] = lambda: False,
        signals: tuple[signal.Signals, ...] = GUARDED_SIGNALS,
        defer: bool = False,
        tally: SignalTally | None = None,
        exit: Callable[[int], object] | None = None,
    ) -> None:
        self._shutdown = shutdown
        self._force = force
        self._busy = busy
        self._signals = signals
        self._defer = defer
        self._tally = tally if tally is not None else SignalTally()
        self._exit = exit
        self._previous: dict[signal.Signals, Any] = {}
        self._lock = threading.Lock()
        self._running = False
        self.forced = False
        self.installed = False
        self.outcomes: list[str] = []

    # -- installing ------------------------------------------------------------------------
    def install(self) -> Self:
        """Register the exit hook and (from the main thread) the signal handlers."""
        atexit.register(self._at_exit)
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        else:
            log.warning("process guard: not on the main thread, so no signal handlers")
        self.installed = True
        return self

    def uninstall(self) -> None:
        """Restore the previous handlers and drop the exit hook (a normal end)."""
        atexit.unregister(self._at_exit)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self.installed = False

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None and not isinstance(exc, SignalInterrupt):
                self.shutdown(f"exception: {type(exc).__name__}: {exc}")
        finally:
            self.uninstall()

    # -- what runs -------------------------------------------------------------------------
    def shutdown(self, reason: str) -> None:
        """The ordered shutdown, once at a time; never raises (a failure is logged)."""
        with self._lock:
            if self._running:
                return
            self._running = True
        try:
            self._shutdown(reason)
            self.outcomes.append(f"shutdown: {reason}")
        except (Exception, SignalInterrupt) as exc:
            log.error("process guard: the ordered shutdown (%s) failed: %s", reason, exc)
            self.outcomes.append(f"shutdown failed: {reason}: {exc}")
        finally:
            self._running = False

    def force(self, reason: str) -> None:
        """``safe_off`` on every unit at once; never raises."""
        self.forced = True
        try:
            self._force(reason)
            self.outcomes.append(f"forced: {reason}")
        except Exception as exc:
            log.error("process guard: forcing safe_off (%s) failed: %s", reason, exc)

    def _force_within_bound(self, reason: str) -> None:
        """:meth:`force` off the signal's thread, waited for at most ``FORCE_WAIT_S``; past
        the bound the process exits anyway (the emulator's lifeline and the instruments' own
        watchdogs take over)."""
        within_bound(lambda: self.force(reason), FORCE_WAIT_S, "forced safe_off")

    @property
    def running(self) -> bool:
        """True while the ordered shutdown runs."""
        return self._running

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._tally.add(signum) > 1 or self._running:
            log.error("process guard: second signal %s: safe_off on every unit now", name)
            self._force_within_bound(f"second signal {name}")
            if self._exit is not None:
                self._exit(128 + signum)
            raise SystemExit(128 + signum)
        log.error("process guard: %s: ordered shutdown", name)
        if not self._busy() and not self._defer:
            self.shutdown(f"signal {name}")
        raise SignalInterrupt(signum)

    def _at_exit(self) -> None:
        if self.forced:
            self.force("process exit after a forced stop")
        else:
            self.shutdown("process exit")


def bench_shutdown(
    bench: Bench, engine: ExchangeEngine | None = None
) -> Callable[[str], ShutdownReport | None]:
    """The ordered shutdown of ``bench``: the engine's scram if there is an engine,
    otherwise an :class:`~hil.exchange.shutdown.OrderedShutdown` of every unit."""
    plain = OrderedShutdown(bench.units, bench.clock, bench.config.apis)

    def run(reason: str) -> ShutdownReport | None:
        if engine is not None:
            return engine.scram(reason)
        return plain.run(reason)

    return run


def guard_bench(
    bench: Bench,
    engine: ExchangeEngine | None = None,
    *,
    watchdog: EmulatorWatchdog | None = None,
    recorder: Recorder | None = None,
) -> ProcessGuard:
    """A :class:`ProcessGuard` for ``bench`` (installed), wired to its engine and watchdog.

    An ordered shutdown that could not confirm a unit trips the watchdog (if any), so the
    emulator (or the hardware behind it) makes every output safe. A forced stop is
    recorded as a ``shutdown`` line (``event: forced``) naming what could not be done."""
    units: Mapping[str, CurrentController] = bench.units

    def force(reason: str) -> None:
        failures = safe_off_all(units)
        safe_write(recorder, "shutdown", event="forced", reason=reason, failures=failures)
        if failures and watchdog is not None:
            watchdog.trip(f"{reason}: safe_off failed on {', '.join(failures)}")

    if engine is not None and watchdog is not None and engine.on_unsafe is None:

        def on_unsafe(report: ShutdownReport) -> None:
            watchdog.trip(f"shutdown could not confirm {', '.join(report.unconfirmed)}")

        engine.on_unsafe = on_unsafe
    guard = ProcessGuard(
        bench_shutdown(bench, engine),
        force,
        busy=(lambda: engine.busy) if engine is not None else (lambda: False),
    )
    return guard.install()


__all__ = [
    "EmulatorWatchdog",
    "Interrupts",
    "ProcessGuard",
    "SignalInterrupt",
    "SignalTally",
    "bench_shutdown",
    "exit_now",
    "guard_bench",
    "within_bound",
]
