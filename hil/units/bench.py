"""The bench: the units of one bus as controllers, their envelopes, the clock.

``Bench.open(config)`` turns a loaded bench file into open controllers, in an order that
touches nothing until everything is known to be there:

1. every instrument is checked without I/O (a driver without an adapter, a resource that is
   still the ``"emulated"`` placeholder) — all problems are reported in one ``ConfigError``;
2. every transport is opened and every instrument asked who it is (``*IDN?``, or a read
   for the EZA-2500 and the BMS), concurrently — the wait is one timeout, not one per
   instrument, and an answer is the only proof of life (a VISA socket to a closed port
   "opens" fine). All that fail are reported in one ``CommunicationError`` naming each
   instrument and resource, and the others are closed again;
3. the adapters are built.
No setting has been sent when ``open`` returns; ``arm_all()`` programmes the protections.

``snapshot()`` reads every unit at once on threads owned by the bench (one per unit, started
once and reused by every snapshot): each driver serialises its own I/O with its lock, so
units on separate lines never wait for each other, and one unit that fails leaves its error
in the snapshot, not an exception.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, Self, TypeVar

from hil.clock import Clock, SimClock, WallClock
from hil.config.bench import BenchConfig, InstrumentConfig
from hil.controller import CurrentController, InstrumentIdentity, Mode, Reading
from hil.envelope import Envelope
from hil.errors import (
    BenchOpenError,
    CommunicationError,
    ConfigError,
    HilError,
    InstrumentFailure,
)
from hil.units import (
    EMULATOR_DRIVER_OPTIONS,
    SAFE_OFF_TIMEOUT_S,
    UnitBase,
    build_unit,
    instrument_problem,
    probe_identity,
)
from hil.units import open_instrument as _open_instrument
from instruments.base import Instrument

log = logging.getLogger(__name__)

#: Opens one bench-file instrument (the real one, or a scripted stand-in in tests).
InstrumentOpener = Callable[[InstrumentConfig], Instrument]

MAX_OPEN_WORKERS = 32
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """Every unit read at (about) the same time ``t`` (bench clock, start of the reads).

    ``readings`` holds the units that answered, ``errors`` the others (unit → message).
    """

    t: float
    readings: Mapping[str, Reading]
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every unit answered."""
        return not self.errors


def _describe(inst: InstrumentConfig) -> str:
    return f"{inst.key} ({inst.driver} at {inst.resource})"


#: One job for the unit threads: its key, the call, and where its outcome goes.
_Job = tuple[str, Callable[[], Any], "queue.SimpleQueue[tuple[str, bool, Any]]"]


class WorkersClosed(RuntimeError):
    """The bench's unit threads are shut down (the bench was closed)."""


class _UnitWorkers:
    """Long-lived threads that run the bench's per-unit jobs, each thread one job at a time.

    Jobs and results travel through ``queue.SimpleQueue`` (implemented in C), so fanning a
    snapshot out to 19 units costs a few microseconds of Python rather than a ``Future``, a
    ``Condition`` and a ``Semaphore`` per job as ``ThreadPoolExecutor`` does. The threads
    start on first use, ``size`` of them (one per unit: no unit's read waits for another's),
    and are daemons, so a bench that is never closed cannot hold the interpreter at exit.
    :func:`open_instruments` uses a short-lived set, one thread per instrument (up to
    ``MAX_OPEN_WORKERS``), closed once every instrument has answered or failed.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = max(1, size)
        self._name = name
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()  # reentrant: a signal handler may fan out meanwhile
        self._closed = False

    def run_all(
        self, jobs: Mapping[str, Callable[[], T]]
    ) -> tuple[dict[str, T], dict[str, Exception]]:
        """Run every job at once; results and failures keyed, and ordered, like ``jobs``.

        Waits for every job. A job that raises something other than an ``Exception``
        (``KeyboardInterrupt``) has it raised here once all are done. Raises
        :class:`WorkersClosed` after :meth:`close`.
        """
        if not jobs:
            return {}, {}
        outbox: queue.SimpleQueue[tuple[str, bool, Any]] = queue.SimpleQueue()
        with self._lock:
            if self._closed:
                raise WorkersClosed(f"{self._name}: the bench's unit threads are shut down")
            while len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            for key, job in jobs.items():
                self._inbox.put((key, job, outbox))
        done: dict[str, tuple[bool, Any]] = {}
        for _ in range(len(jobs)):
            key, ok, value = outbox.get()
            done[key] = (ok, value)
        results: dict[str, T] = {}
        failures: dict[str, Exception] = {}
        fatal: BaseException | None = None
        for key in jobs:
            ok, value = done[key]
            if ok:
                results[key] = value
            elif isinstance(value, Exception):
                failures[key] = value
            elif fatal is None:
                fatal = value
        if fatal is not None:
            raise fatal
        return results, failures

    def _work(self) -> None:
        inbox = self._inbox
        while (item := inbox.get()) is not None:
            key, job, outbox = item
            try:
                outbox.put((key, True, job()))
            except BaseException as exc:  # handed to run_all, which decides
                outbox.put((key, False, exc))

    def close(self) -> None:
        """Let the threads finish the jobs already queued, then end them; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
            for _ in threads:
                self._inbox.put(None)  # after every queued job: the inbox is FIFO
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()


@dataclass(frozen=True)
class OpenedInstruments:
    """The outcome of :func:`open_instruments`, each keyed ``<unit>.<instrument>``: the open
    drivers, the identities of those that were asked, and why the others failed."""

    drivers: dict[str, Instrument]
    identities: dict[str, InstrumentIdentity]
    failures: dict[str, str]

    def close(self) -> None:
        """Close every open driver; never raises."""
        for key, driver in self.drivers.items():
            try:
                driver.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", key, exc)


def _open_one(
    inst: InstrumentConfig, opener: InstrumentOpener, identify: bool
) -> tuple[Instrument, InstrumentIdentity | None]:
    driver = opener(inst)
    if not identify:
        return driver, None
    try:
        ident = probe_identity(driver)
    except BaseException:
        driver.close()
        raise
    return driver, InstrumentIdentity(
        unit=inst.unit_id,
        instrument=inst.name,
        driver=inst.driver,
        resource=inst.resource,
        vendor=ident.vendor,
        model=ident.model,
        serial=ident.serial,
        firmware=ident.firmware,
    )


def open_instruments(
    config: BenchConfig, opener: InstrumentOpener, *, identify: bool = True
) -> OpenedInstruments:
    """Open every instrument of ``config`` concurrently and, with ``identify``, ask each
    who it is — the only proof that it answers (a VISA socket to a closed port opens
    without complaint). Queries only: no setting is sent. Never raises for an instrument:
    its failure is in ``failures``, in bench-file order.
    """
    instruments = {inst.key: inst for inst in config.instruments()}
    if not instruments:
        return OpenedInstruments({}, {}, {})
    jobs = {
        key: functools.partial(_open_one, inst, opener, identify)
        for key, inst in instruments.items()
    }
    workers = _UnitWorkers(min(MAX_OPEN_WORKERS, len(instruments)), name="bench-open")
    try:
        opened, failed = workers.run_all(jobs)
    finally:
        workers.close()
    return OpenedInstruments(
        drivers={key: driver for key, (driver, _) in opened.items()},
        identities={key: ident for key, (_, ident) in opened.items() if ident is not None},
        failures={
            key: f"{type(failed[key]).__name__}: {failed[key]}"
            for key in instruments
            if key in failed
        },
    )


def _safe_off_one(unit_id: str, unit: CurrentController) -> list[str]:
    """``unit.safe_off()``, turning even an unexpected exception into a failure message."""
    try:
        return unit.safe_off()
    except Exception as exc:
        message = f"{unit_id}: safe_off raised {type(exc).__name__}: {exc}"
        log.error(message)
        return [message]


class SimulatedTime(Protocol):
    """An emulator's control channel as a clock: simulated time that moves on request."""

    def time(self) -> float: ...

    def advance(self, seconds: float) -> float: ...


class RunningEmulator(Protocol):
    """A running sim-clock emulator: where its instruments answer and its control channel."""

    @property
    def resources(self) -> dict[str, str]: ...

    @property
    def control(self) -> SimulatedTime: ...


class Bench:
    """The units of one bus (controllers keyed by unit id), the envelope and the clock."""

    def __init__(
        self,
        config: BenchConfig,
        units: Mapping[str, CurrentController],
        clock: Clock,
        identities: tuple[InstrumentIdentity, ...] = (),
    ) -> None:
        self.config = config
        self.units: Mapping[str, CurrentController] = MappingProxyType(dict(units))
        self.clock = clock
        self.identities = identities
        self._workers = _UnitWorkers(len(self.units), name=f"bench-{config.name}")
        self._closed = False
        #: Units read through :meth:`read_units` and :meth:`snapshot` since the bench
        #: opened (the work a run asked of the instruments; benchmarks/community_scale.py).
        self.units_read = 0

    # -- building --------------------------------------------------------------------
    @classmethod
    def on_emulator(
        cls,
        config: BenchConfig,
        emulator: RunningEmulator,
        *,
        timeout_s: float | None = None,
        identify: bool = True,
        driver_options: Mapping[str, Mapping[str, Any]] = EMULATOR_DRIVER_OPTIONS,
    ) -> Bench:
        """:meth:`open` on a running sim-clock emulator: its loopback resources, its
        simulated time as the bench clock, and the drivers' options for loopback."""
        control = emulator.control
        return cls.open(
            config,
            resources=emulator.resources,
            clock=SimClock(control.advance, start=control.time()),
            timeout_s=timeout_s,
            identify=identify,
            driver_options=driver_options,
        )

    @classmethod
    def open(
        cls,
        config: BenchConfig,
        *,
        resources: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        timeout_s: float | None = None,
        identify: bool = True,
        driver_options: Mapping[str, Mapping[str, Any]] | None = None,
        opener: InstrumentOpener | None = None,
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> Bench:
        """Open every instrument of ``config`` and wrap each unit in its adapter.

        ``resources`` (``<unit>.<instrument>`` → resource) replaces the file's resources,
        e.g. with the emulator's; ``timeout_s`` replaces every instrument's timeout;
        ``driver_options`` adds keyword options per driver name (against the emulator:
        :data:`hil.units.EMULATOR_DRIVER_OPTIONS`); ``opener`` replaces how an instrument
        is opened (tests); ``identify=False`` skips asking the instruments who they are
        (then a silent instrument is only found at its first command). Raises
        ``ConfigError`` or ``CommunicationError`` naming every instrument that is wrong or
        does not answer, before any setting is sent.
        """
        if resources:
            config = config.with_resources(resources)
        clock = clock or WallClock()
        where = f"bench {config.name} ({config.path})"
        if opener is None:
            problems = {
                _describe(inst): problem
                for inst in config.instruments()
                if (problem := instrument_problem(inst)) is not None
            }
            if problems:
                raise ConfigError(
                    f"{where}: {len(problems)} instrument(s) cannot be opened; nothing was "
                    "touched:\n" + "\n".join(f"  {key}: {why}" for key, why in problems.items())
                )
            opener = functools.partial(_open_instrument, timeout=timeout_s, extra=driver_options)
        opened = open_instruments(config, opener, identify=identify)
        if opened.failures:
            opened.close()
            described = {inst.key: _describe(inst) for inst in config.instruments()}
            failures = [
                InstrumentFailure(inst.unit_id, inst.name, inst.resource, opened.failures[inst.key])
                for inst in config.instruments()
                if inst.key in opened.failures
            ]
            raise BenchOpenError(
                f"{where}: {len(opened.failures)} of {len(described)} instrument(s) did not "
                "answer; nothing was sent:\n"
                + "\n".join(f"  {described[key]}: {why}" for key, why in opened.failures.items()),
                failures,
            )
        units: dict[str, CurrentController] = {}
        try:
            for unit in config.units:
                unit_drivers = {inst.name: opened.drivers[inst.key] for inst in unit.instruments}
                units[unit.id] = build_unit(
                    unit, unit_drivers, clock, safe_off_timeout=safe_off_timeout
                )
        except BaseException:
            opened.close()
            raise
        identities = tuple(
            opened.identities[inst.key]
            for inst in config.instruments()
            if inst.key in opened.identities
        )
        log.info("%s: opened %d units, %d instruments", where, len(units), len(opened.drivers))
        return cls(config, units, clock, identities)

    # -- access ----------------------------------------------------------------------
    @property
    def envelope(self) -> Envelope:
        return self.config.envelope

    def unit(self, unit_id: str) -> CurrentController:
        """The controller of ``unit_id``; ``ConfigError`` naming the known units otherwise."""
        try:
            return self.units[unit_id]
        except KeyError:
            known = ", ".join(self.units) or "none"
            raise ConfigError(
                f"bench {self.config.name}: no unit {unit_id!r}; units: {known}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)

    # -- all units at once -----------------------------------------------------------------
    def _on_all(
        self, action: Callable[[CurrentController], T], units: Mapping[str, CurrentController]
    ) -> tuple[dict[str, T], dict[str, Exception]]:
        if self._closed:
            raise ConfigError(f"bench {self.config.name} is closed")
        jobs = {uid: functools.partial(action, unit) for uid, unit in units.items()}
        return self._workers.run_all(jobs)

    def read_units(
        self, unit_ids: Iterable[str]
    ) -> tuple[dict[str, Reading], dict[str, Exception]]:
        """Read ``unit_ids`` concurrently: readings and failures by unit."""
        units = {uid: self.unit(uid) for uid in unit_ids}
        self.units_read += len(units)
        return self._on_all(lambda unit: unit.read(), units)

    def snapshot(self, unit_ids: Iterable[str] | None = None) -> Snapshot:
        """Read every unit (or ``unit_ids``) concurrently; one timestamped record (errors
        per unit)."""
        t = self.clock.now()
        readings, failures = self.read_units(self.units if unit_ids is None else unit_ids)
        errors = {uid: f"{type(exc).__name__}: {exc}" for uid, exc in failures.items()}
        for uid, message in errors.items():
            log.warning("snapshot: unit %s did not read: %s", uid, message)
        return Snapshot(t=t, readings=MappingProxyType(readings), errors=MappingProxyType(errors))

    def identify(self) -> list[InstrumentIdentity]:
        """Every instrument's identity (each is asked), concurrently per unit.

        Raises one ``CommunicationError`` naming every unit whose instruments did not answer.
        """
        results, failures = self._on_all(lambda unit: unit.identify(), self.units)
        if failures:
            raise CommunicationError(
                f"bench {self.config.name}: {len(failures)} unit(s) did not identify:\n"
                + "\n".join(f"  {uid}: {exc}" for uid, exc in sorted(failures.items()))
            )
        return [ident for uid in self.units for ident in results[uid]]

    def arm_all(self) -> None:
        """Arm every unit (protections from the envelopes), concurrently; every unit is
        tried, then one ``HilError`` names each that failed."""
        _, failures = self._on_all(lambda unit: unit.arm(), self.units)
        if failures:
            raise HilError(
                f"bench {self.config.name}: {len(failures)} unit(s) could not be armed:\n"
                + "\n".join(f"  {uid}: {exc}" for uid, exc in sorted(failures.items()))
            )

    def safe_off_all(self) -> dict[str, list[str]]:
        """``safe_off`` on every unit; never raises. Current-controlled units go first and
        concurrently, then the voltage references. Returns what failed, per unit."""
        first = {
            uid: unit
            for uid, unit in self.units.items()
            if not (isinstance(unit, UnitBase) and unit.commanded_mode is Mode.VOLTAGE_REFERENCE)
        }
        last = {uid: unit for uid, unit in self.units.items() if uid not in first}
        outcome: dict[str, list[str]] = {}
        for group in (first, last):
            jobs = {uid: functools.partial(_safe_off_one, uid, unit) for uid, unit in group.items()}
            try:
                done, failed = self._workers.run_all(jobs)
            except WorkersClosed:  # the bench is closed: do it here
                done, failed = {uid: job() for uid, job in jobs.items()}, {}
            for uid in group:
                if uid in done:
                    outcome[uid] = done[uid]
                else:
                    exc = failed[uid]
                    outcome[uid] = [f"{uid}: safe_off raised {type(exc).__name__}: {exc}"]
        return outcome

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection (outputs unchanged); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._workers.close()
        for uid, unit in self.units.items():
            try:
                unit.close()
            except Exception as exc:
                log.warning("closing unit %s failed: %s", uid, exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
