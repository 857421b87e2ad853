"""The live page's events: record lines and unit readings, numbered, kept and throttled.

:class:`EventHub` is fed from two places: every line the run record gets (the plugin tees
:class:`~hil.records.RecordWriter`), and the unit readings the engine and the bench session
take (``readings``). Each event gets the next id, so a client that lost the stream asks for
everything after the last id it saw (the ``Last-Event-ID`` of server-sent events) and gets
exactly the events it missed, in order.

Throttling: readings and the supervisor's per-cycle verdicts come as fast as the engine
ticks (thousands a second on simulated time); they are *coalesced* — the newest values are
kept and emitted at most ``rate_hz`` times a second. Every other line (test verdicts,
exchange steps, safety events, the shutdown) is emitted as it comes. The hub also keeps the
state a new client starts from (:meth:`EventHub.state`): bench, run, progress, latest
readings, exchanges, a log tail and the recent points of the live plots.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hil.controller import Reading

if TYPE_CHECKING:
    from hil.config.bench import BenchConfig

#: Coalesced kinds are emitted at most this often (updates per second).
RATE_HZ = 5.0
#: Events kept for clients that reconnect (older ones: the client gets the state instead).
KEEP_EVENTS = 5000
#: Log lines and plot points in a new client's state.
LOG_TAIL = 200
PLOT_POINTS = 600
#: Record line types shown in the page's log.
#: Events before which every pending coalesced value goes out, due or not: the run waits
#: (a prompt) or a test ends, and the page must show the values it stopped at.
FLUSH_BEFORE = frozenset({"prompt", "test_end", "run_end", "stopping"})
LOGGED = frozenset({"test_end", "safety_event", "shutdown", "note", "prompt", "answer", "run_end"})


class LiveEvent(NamedTuple):
    """One event of the stream: its id (strictly increasing) and its JSON fields."""

    id: int
    data: dict[str, Any]


def reading_fields(reading: Reading) -> dict[str, Any]:
    """A unit reading as the page shows it (sign convention: + pushes into the bus)."""
    return {
        "t": reading.t,
        "mode": reading.mode.value,
        "current": reading.bus_current,
        "voltage": reading.bus_voltage,
        "setpoint": reading.setpoint,
        "soc": reading.soc,
        "flags": sorted(reading.flags),
    }


def bench_event(
    config: BenchConfig, path: Path, *, emulated: bool, run_id: str | None = None
) -> dict[str, Any]:
    """The bench as the page draws it before the bench opens: units, functions, limits."""
    return {
        "type": "bench",
        "name": config.name,
        "path": str(path),
        "emulated": emulated,
        "run_id": run_id,
        "units": [
            {"id": u.id, "kind": u.kind, "branch": u.branch, "envelope": u.envelope.as_dict()}
            for u in config.units
        ],
        "bus": config.envelope.bus.as_dict(),
    }


def summarise_line(line: Mapping[str, Any]) -> dict[str, Any] | None:
    """What of a record line goes on the stream (None: a coalesced supervisor cycle).

    Bulky fields stay in the record: the bench file's text and software versions of
    ``run_start``, the data of ``series`` (the page plots readings), a community day."""
    kind = str(line.get("type", ""))
    skip = {"schema", "version"}
    if kind == "run_start":
        skip |= {"software", "unidentified"}
        fields = {k: v for k, v in line.items() if k not in skip}
        bench = dict(fields.get("bench") or {})
        bench.pop("text", None)
        fields["bench"] = bench
        return fields
    if kind == "series":
        skip |= {"data", "columns"}
    if kind == "community":
        return {"type": kind, "name": line.get("name"), "wall": line.get("wall")}
    if kind == "measurement" and line.get("name") == "supervisor":
        return None
    return {k: v for k, v in line.items() if k not in skip}


class _Coalesced:
    """The newest value of one throttled kind and when it was last emitted."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None
        self.last_emit = float("-inf")


class LiveState:
    """What a client that connects now starts from; updated by every emitted event."""

    def __init__(self) -> None:
        self.bench: dict[str, Any] | None = None
        self.run: dict[str, Any] | None = None
        self.total: int | None = None
        self.running: str | None = None
        self.outcomes: dict[str, int] = {}
        self.units: dict[str, dict[str, Any]] = {}
        self.bus: dict[str, Any] = {}
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.cycle: dict[str, Any] | None = None
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_TAIL)
        self.points: deque[dict[str, Any]] = deque(maxlen=PLOT_POINTS)
        self.prompts: dict[int, dict[str, Any]] = {}
        self.end: dict[str, Any] | None = None
        self.stopping: dict[str, Any] | None = None

    def apply(self, data: Mapping[str, Any]) -> None:
        kind = data["type"]
        if kind == "bench":
            self.bench = dict(data)
        elif kind == "run_start":
            self.run = dict(data)
        elif kind == "progress":
            self.total = data.get("total")
        elif kind == "test_start":
            self.running = data.get("nodeid")
        elif kind == "test_end":
            self.running = None
            outcome = str(data.get("outcome"))
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        elif kind == "step":
            name = str(data.get("exchange"))
            self.exchanges[name] = {"exchange": name, "step": data.get("step"), "t": data.get("t")}
        elif kind == "series":
            name = str(data.get("exchange"))
            self.exchanges[name] = {"exchange": name, "step": "ended", "state": data.get("state")}
        elif kind == "readings":
            self.units.update(data.get("units", {}))
            self.bus = dict(data.get("bus", {}))
            self.points.append(data.get("point", {}))
        elif kind == "cycle":
            self.cycle = dict(data)
        elif kind == "prompt":
            self.prompts[int(data["id"])] = dict(data)
        elif kind == "answer":
            self.prompts.pop(int(data["id"]), None)
        elif kind == "run_end":
            self.end = dict(data)
        elif kind == "stopping":
            self.stopping = dict(data)
        if kind in LOGGED:
            self.log.append(dict(data))

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "state",
            "bench": self.bench,
            "run": self.run,
            "total": self.total,
            "running": self.running,
            "outcomes": dict(self.outcomes),
            "units": dict(self.units),
            "bus": dict(self.bus),
            "exchanges": list(self.exchanges.values())[-20:],
            "cycle": self.cycle,
            "log": list(self.log),
            "points": list(self.points),
            "prompts": list(self.prompts.values()),
            "end": self.end,
            "stopping": self.stopping,
        }


class EventHub:
    """Numbers, keeps and throttles the live events; thread-safe (see the module doc).

    ``now`` is the wall clock the throttle uses (a test passes its own)."""

    def __init__(
        self,
        *,
        rate_hz: float = RATE_HZ,
        keep: int = KEEP_EVENTS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.interval = 1.0 / rate_hz
        self._now = now
        self._events: deque[LiveEvent] = deque(maxlen=keep)
        self._next_id = 1
        self._lock = threading.RLock()
        self._coalesced: dict[str, _Coalesced] = {}
        self._state = LiveState()
        self.closed = False

    # -- feeding -------------------------------------------------------------------------
    def record_line(self, line: Mapping[str, Any]) -> None:
        """A line the run record got (the tee): emitted, or coalesced if a supervisor cycle."""
        data = summarise_line(line)
        if data is not None:
            self.publish(data)
            return
        checks = line.get("checks") or {}
        self.offer(
            "cycle",
            {
                "t": line.get("t"),
                "verdict": line.get("verdict"),
                "failing": sorted(k for k, v in checks.items() if v != "pass"),
            },
        )

    def readings(self, t: float, readings: Mapping[str, Reading]) -> None:
        """Unit readings (from an engine tick or a bench snapshot), coalesced."""
        self.unit_values(t, {uid: reading_fields(r) for uid, r in readings.items()})

    def unit_values(self, t: float, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Units' values as the page shows them (``t``, ``mode``, ``current``, ``voltage``,
        ``setpoint``, ``soc``, ``flags``), coalesced; units not given keep their last."""
        if not values:
            return
        with self._lock:  # re-entrant: ``offer`` takes it again
            pending = self._slot("readings").pending or {"units": {}}
            units = dict(pending["units"])
            units.update({uid: dict(v) for uid, v in values.items()})
            every = {**self._state.units, **units}
            currents = {uid: u["current"] for uid, u in every.items()}
            volts = [u["voltage"] for u in every.values() if u["voltage"] is not None]
            bus = {"voltage": max(volts) if volts else None, "residual": sum(currents.values())}
            point = {"t": t, "bus_voltage": bus["voltage"], "residual": bus["residual"], **currents}
            self.offer("readings", {"t": t, "units": units, "bus": bus, "point": point})

    def publish(self, data: Mapping[str, Any]) -> LiveEvent:
        """Emit one event now (``data`` must have a ``type``); pending coalesced ones that are
        due go first (all of them before a :data:`FLUSH_BEFORE` kind), so the stream stays
        in the order things happened."""
        with self._lock:
            self._flush_due(force=data.get("type") in FLUSH_BEFORE)
            return self._emit(dict(data))

    def offer(self, kind: str, fields: Mapping[str, Any]) -> None:
        """The newest value of a throttled ``kind``: emitted now if due, else kept pending."""
        with self._lock:
            slot = self._slot(kind)
            slot.pending = {"type": kind, **fields}
            self._flush_due()

    def flush_due(self) -> None:
        """Emit every pending coalesced value whose interval has passed (the server calls
        this while it waits, so the last value of a burst is not held back)."""
        with self._lock:
            self._flush_due()

    def close(self) -> None:
        """No more events: every pending value is emitted; streams end once they sent it all."""
        with self._lock:
            for slot in self._coalesced.values():
                if slot.pending is not None:
                    self._emit(slot.pending)
                    slot.pending = None
            self.closed = True

    # -- reading -------------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        with self._lock:
            return self._next_id - 1

    def since(self, last_id: int | None) -> tuple[list[LiveEvent], bool]:
        """The events after ``last_id`` and whether they are complete (False when some
        were already dropped: the client must start again from :meth:`state`)."""
        with self._lock:
            if last_id is None:
                return [], False
            first = self._events[0].id if self._events else self._next_id
            complete = last_id >= first - 1 and last_id < self._next_id
            return [e for e in self._events if e.id > last_id], complete

    def state(self) -> LiveEvent:
        """The state a new client starts from, with the id of the last event it includes."""
        with self._lock:
            return LiveEvent(self._next_id - 1, self._state.as_dict())

    # -- inside the lock -----------------------------------------------------------------
    def _slot(self, kind: str) -> _Coalesced:
        return self._coalesced.setdefault(kind, _Coalesced())

    def _flush_due(self, *, force: bool = False) -> None:
        now = self._now()
        for slot in self._coalesced.values():
            if slot.pending is not None and (force or now - slot.last_emit >= self.interval):
                self._emit(slot.pending)
                slot.pending, slot.last_emit = None, now

    def _emit(self, data: dict[str, Any]) -> LiveEvent:
        event = LiveEvent(self._next_id, data)
        self._next_id += 1
        self._events.append(event)
        self._state.apply(data)
        return event
