"""A run record turned into what the report shows: run, tests, verdicts, and gaps.

:func:`build_model` reads a :class:`hil.records.RecordSet` line by line and never raises on
its content: a field of the wrong type is treated as absent, and every piece the report
cannot show (no header, a test without an end, a shutdown cut off, a record without
``run_end``) is named in :attr:`ReportModel.missing`, so that the report says exactly what
is missing instead of failing. Lines belong to the test they name (``test``) or else to
the test that was running when they were written (between its ``test_start`` and
``test_end``); the others belong to the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from hil.records import ABORTED, INTERRUPTED, RecordSet
from hil.run_header import SEVERITY, overall_outcome
from reports.community import CommunityDay, parse_community
from reports.fields import FloatArray, floats, mapping, number, sequence, text

#: Outcome of a test whose end is missing although later tests ran.
UNKNOWN = "UNKNOWN"
#: The report's outcome names, worst first (the cover's count table uses this order).
COUNT_ORDER = ("SAFETY TRIP", INTERRUPTED, "ERROR", "FAIL", "PASS", "SKIPPED", ABORTED, UNKNOWN)


def outcome_name(value: Any) -> str | None:
    """``"pass"``, ``"Safety_Trip"`` … → the canonical upper-case outcome, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.replace("_", " ").upper().split())


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """One row of the instrument table; ``problem`` is set for one that did not answer."""

    unit: str
    instrument: str
    driver: str
    resource: str
    vendor: str
    model: str
    serial: str
    firmware: str
    emulated: bool | None
    problem: str = ""
    #: The pytest-xdist worker whose emulator it was (a merged record), else "".
    worker: str = ""
    #: ``calibration_due`` from the bench file (ISO date), else "".
    calibration_due: str = ""


@dataclass(frozen=True)
class Bench:
    name: str
    description: str
    path: str
    sha256: str
    text: str | None

    @property
    def text_sha256(self) -> str | None:
        """SHA-256 of the recorded text, to check it against the recorded hash."""
        return None if self.text is None else hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def text_matches(self) -> bool | None:
        if self.text is None or not self.sha256:
            return None
        return self.text_sha256 == self.sha256.lower()


@dataclass
class Run:
    """The run header (``run_start``) and end (``run_end``), as far as they exist."""

    run_id: str = ""
    bench: Bench | None = None
    emulated: bool | None = None
    instruments: list[Instrument] = field(default_factory=list)
    bus_envelope: dict[str, Any] = field(default_factory=dict)
    unit_envelopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    software: dict[str, str] = field(default_factory=dict)
    git_revision: str = ""
    host: str = ""
    started_at: str = ""
    finished_at: str = ""
    recorded_outcome: str | None = None
    started_wall: float | None = None
    last_wall: float | None = None
    #: Why the run was interrupted (Ctrl-C, SIGTERM), and the tests that never ran.
    interrupted: str = ""
    not_run: list[str] = field(default_factory=list)
    #: Sign-off (``--operator``, ``--dut``, ``--station``); "" when not given.
    operator: str = ""
    dut: str = ""
    station: str = ""
    #: SHA-256 over the collected test modules, and each module's own.
    test_sources_sha256: str = ""
    test_sources: dict[str, str] = field(default_factory=dict)
    #: pytest-xdist workers of a merged record: worker → its record, emulator log, …
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def dirty(self) -> bool:
        """The toolkit's work tree had uncommitted changes when the run started."""
        return self.git_revision.endswith("-dirty")

    def overdue(self) -> list[Instrument]:
        """Instruments whose calibration was due before the run started."""
        day = self.started_at[:10]
        return [i for i in self.instruments if i.calibration_due and day > i.calibration_due]


@dataclass(frozen=True)
class Measurement:
    name: str
    value: Any
    unit: str
    low: float | None
    high: float | None
    verdict: str  # PASS, FAIL, or "" when neither the line nor its limits say

    @property
    def failed(self) -> bool:
        return self.verdict not in ("PASS", "")

    @property
    def value_text(self) -> str:
        x = number(self.value)
        if x is None or isinstance(self.value, bool):
            return text(self.value, "—")
        return quantity_text(x, self.unit)

    def limit_text(self, limit: float | None) -> str:
        return "—" if limit is None else quantity_text(limit, self.unit)


#: Decimals a value in this unit is shown with (a measurement table reads evenly: mA,
#: 10 mV, mWh …); other units get 4 significant digits.
DECIMALS = {"A": 3, "V": 2, "Wh": 3, "W": 1, "s": 2, "°C": 1, "%": 1, "A/s": 2}


def quantity_text(x: float, unit: str) -> str:
    """``x`` as the report prints a value in ``unit`` (never ``-0.000``)."""
    places = DECIMALS.get(unit.strip())
    if places is None or abs(x) >= 1e6:
        return f"{x:.4g}"
    shown = f"{x:.{places}f}"
    return shown[1:] if shown.startswith("-") and float(shown) == 0 else shown


@dataclass
class SupervisorSummary:
    """The supervisor's per-cycle ``measurement`` lines of one test, summed up."""

    cycles: int = 0
    warn_cycles: int = 0
    error_cycles: int = 0
    #: check key → (warnings, errors) over the cycles, for keys that ever failed.
    failing: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class StepMark:
    t: float
    label: str


@dataclass(frozen=True)
class Trace:
    """One plotted line: ``label`` (a unit id, ``bus``, …) over time."""

    label: str
    t: FloatArray
    y: FloatArray
    unit: str


@dataclass
class ExchangeView:
    """Everything recorded about one exchange of a test: traces by panel and its steps."""

    name: str
    currents: list[Trace] = field(default_factory=list)
    voltage: list[Trace] = field(default_factory=list)
    residual: list[Trace] = field(default_factory=list)
    series_steps: list[StepMark] = field(default_factory=list)
    line_steps: list[StepMark] = field(default_factory=list)
    step_lines: int = 0
    problems: list[str] = field(default_factory=list)
    unplotted: set[str] = field(default_factory=set)
    state: str = ""
    stop_reason: str = ""
    energy_wh: float | None = None

    def add(self, panel: str, trace: Trace) -> None:
        """Add a trace to a panel, joining it to an earlier one of the same label."""
        traces: list[Trace] = getattr(self, panel)
        for i, old in enumerate(traces):
            if old.label == trace.label:
                traces[i] = Trace(
                    old.label,
                    np.concatenate([old.t, trace.t]),
                    np.concatenate([old.y, trace.y]),
                    old.unit,
                )
                return
        traces.append(trace)

    @property
    def steps(self) -> list[StepMark]:
        """The steps to mark: the series' own, else those of the ``step`` lines."""
        marks = self.series_steps or self.line_steps
        return sorted(dict.fromkeys(marks), key=lambda m: m.t)

    @property
    def has_data(self) -> bool:
        return bool(self.currents or self.voltage or self.residual)


@dataclass(frozen=True)
class SafetyEvent:
    t: float | None
    level: str  # warn | error | …
    check: str
    unit: str
    message: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class ShutdownStep:
    t: float | None
    unit: str
    action: str
    confirmed: bool | None
    detail: str


@dataclass
class Shutdown:
    reason: str
    reference: str = ""
    started: float | None = None
    finished: float | None = None
    steps: list[ShutdownStep] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    complete: bool = True


@dataclass(frozen=True)
class Stimulus:
    """What a test did to the bench on purpose: a fault injected, a plant setting."""

    t: float | None
    text: str
    #: The exchange step running when it was done ("" when none was).
    during: str = ""


def stimulus_text(line: Mapping[str, Any]) -> str:
    """``fault injected: offset (amps=0.6) on E003.converter`` / ``plant set: E001 soc = 0.21``."""
    if text(line.get("kind")) == "set":
        what = f"{text(line.get('unit'))} {text(line.get('field'))} = {text(line.get('value'))}"
        return f"plant set: {what}"
    params = mapping(line.get("params"))
    given = ", ".join(f"{k}={text(v)}" for k, v in params.items())
    fault = text(line.get("fault"), "a fault") + (f" ({given})" if given else "")
    return f"fault injected: {fault} on {text(line.get('instrument'), 'the bench')}"


@dataclass
class Section:
    """What belongs to a test, or to the run outside any test."""

    measurements: list[Measurement] = field(default_factory=list)
    supervisor: SupervisorSummary = field(default_factory=SupervisorSummary)
    exchanges: dict[str, ExchangeView] = field(default_factory=dict)
    events: list[SafetyEvent] = field(default_factory=list)
    shutdowns: list[Shutdown] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    community: list[CommunityDay] = field(default_factory=list)
    stimuli: list[Stimulus] = field(default_factory=list)

    def exchange(self, name: str) -> ExchangeView:
        if name not in self.exchanges:
            self.exchanges[name] = ExchangeView(name)
        return self.exchanges[name]

    @property
    def empty(self) -> bool:
        return not (
            self.measurements
            or self.supervisor.cycles
            or self.exchanges
            or self.events
            or self.shutdowns
            or self.notes
            or self.community
            or self.stimuli
        )


@dataclass
class TestResult(Section):
    nodeid: str = ""
    name: str = ""
    markers: list[str] = field(default_factory=list)
    outcome: str = ""
    duration_s: float | None = None
    message: str = ""
    ended: bool = False

    @property
    def failed_measurements(self) -> int:
        return sum(1 for m in self.measurements if m.failed)


@dataclass
class ReportModel:
    """The whole report, from one record."""

    record_path: str
    record_sha256: str
    record_lines: int
    run: Run
    tests: list[TestResult]
    session: Section
    verdict: str
    counts: dict[str, int]
    aborted: bool
    corrupt: list[tuple[int, str]]
    missing: list[str]

    @property
    def incomplete(self) -> bool:
        return self.aborted or bool(self.corrupt) or bool(self.missing)


# -- building it ---------------------------------------------------------------------------------

_VOLTAGE_WORDS = ("voltage", "vbus", "bus_v")
_RESIDUAL_WORDS = ("residual", "balance")
_OTHER_WORDS = ("energy", "wh", "soc", "temperature", "power")
PANEL_UNITS = {"currents": "A", "voltage": "V", "residual": "A"}


def panel_of(
    column: str, unit: str, series_name: str = "", unit_ids: frozenset[str] = frozenset()
) -> str | None:
    """The plot panel of a column: ``residual``, ``voltage``, ``currents``, or None for
    one that is none of those (energy, SoC …), which is not plotted.

    The column's own name decides first; then the series' name (series named by their
    quantity, ``"bus voltage"``); then a column named after a unit is that unit's current.
    """
    col = column.lower()
    if any(w in col for w in _RESIDUAL_WORDS):
        return "residual"
    if unit.strip() == "V" or any(w in col for w in _VOLTAGE_WORDS):
        return "voltage"
    name = series_name.lower()
    if any(w in name for w in _RESIDUAL_WORDS):
        return "residual"
    if any(w in name for w in _VOLTAGE_WORDS):
        return "voltage"
    if column in unit_ids or unit.strip() == "A":
        return "currents"
    if any(w in col for w in _OTHER_WORDS) or unit_ids:
        return None
    return "currents"


def _steps(value: Any) -> list[StepMark]:
    marks = []
    for item in sequence(value):
        entry = mapping(item)
        t = number(entry.get("t"))
        if t is not None:
            marks.append(StepMark(t, text(entry.get("label") or entry.get("step"))))
    return marks


class _Builder:
    """Walks the lines once, keeping the test that is running."""

    def __init__(self, records: RecordSet) -> None:
        self.records = records
        self.run = Run()
        self.tests: list[TestResult] = []
        self.by_id: dict[str, TestResult] = {}
        self.session = Section()
        self.current: TestResult | None = None
        self.missing: list[str] = []
        self.open_shutdown: dict[int, Shutdown] = {}

    # -- routing -----------------------------------------------------------------------
    def _test(self, nodeid: str) -> TestResult:
        found = self.by_id.get(nodeid)
        if found is None:
            found = TestResult(nodeid=nodeid, name=nodeid.rsplit("::", 1)[-1])
            self.tests.append(found)
            self.by_id[nodeid] = found
        return found

    def _section(self, line: Mapping[str, Any]) -> Section:
        named = line.get("test")
        if isinstance(named, str) and named:
            if named in self.by_id:
                return self.by_id[named]
            for test in self.tests:
                if test.name == named:
                    return test
        return self.current if self.current is not None else self.session

    # -- line types ---------------------------------------------------------------------
    def run_start(self, line: Mapping[str, Any]) -> None:
        read_run_start(self.run, line)

    def run_end(self, line: Mapping[str, Any]) -> None:
        self.run.finished_at = text(line.get("finished_at"))
        self.run.recorded_outcome = outcome_name(line.get("outcome"))
        self.run.interrupted = text(line.get("interrupted"))
        not_run = line.get("not_run")
        if isinstance(not_run, list):
            self.run.not_run = [text(n) for n in not_run]

    def test_start(self, line: Mapping[str, Any]) -> None:
        nodeid = text(line.get("nodeid")) or text(line.get("name")) or "unnamed test"
        if self.current is not None and not self.current.ended:
            self.current.outcome = UNKNOWN
            self.missing.append(
                f"test {self.current.nodeid} has no test_end line (test {nodeid} started "
                "after it); its outcome is unknown"
            )
        test = self._test(nodeid)
        test.name = text(line.get("name")) or test.name
        test.markers = [text(m) for m in sequence(line.get("markers")) if text(m)]
        self.current = test

    def test_end(self, line: Mapping[str, Any]) -> None:
        nodeid = text(line.get("nodeid")) or (self.current.nodeid if self.current else "")
        if not nodeid:
            self.missing.append("a test_end line names no test; it was ignored")
            return
        if nodeid not in self.by_id:
            self.missing.append(f"test {nodeid} has a test_end line but no test_start line")
        test = self._test(nodeid)
        outcome = outcome_name(line.get("outcome"))
        if outcome is None:
            self.missing.append(f"test {nodeid}: its test_end line has no outcome")
        test.outcome = outcome or UNKNOWN
        test.duration_s = number(line.get("duration_s"))
        test.message = text(line.get("message"))
        test.ended = True
        if self.current is test:
            self.current = None

    def measurement(self, line: Mapping[str, Any]) -> None:
        section = self._section(line)
        checks = line.get("checks")
        if isinstance(checks, Mapping):
            self._supervisor_cycle(section.supervisor, line, checks)
            return
        value = line.get("value")
        low, high = number(line.get("low")), number(line.get("high"))
        limits = sequence(line.get("limits"))
        if len(limits) == 2 and low is None and high is None:
            low, high = number(limits[0]), number(limits[1])
        verdict = outcome_name(line.get("verdict")) or ""
        x = number(value)
        if not verdict and x is not None and (low is not None or high is not None):
            inside = (low is None or x >= low) and (high is None or x <= high)
            verdict = "PASS" if inside else "FAIL"
        section.measurements.append(
            Measurement(
                name=text(line.get("name"), "unnamed"),
                value=value,
                unit=text(line.get("unit")),
                low=low,
                high=high,
                verdict=verdict,
            )
        )

    @staticmethod
    def _supervisor_cycle(
        summary: SupervisorSummary, line: Mapping[str, Any], checks: Mapping[str, Any]
    ) -> None:
        summary.cycles += 1
        levels = {str(k): text(v).lower() for k, v in checks.items()}
        if "error" in levels.values():
            summary.error_cycles += 1
        elif "warn" in levels.values():
            summary.warn_cycles += 1
        for key, level in levels.items():
            if level in ("warn", "error"):
                counts = summary.failing.setdefault(key, [0, 0])
                counts[0 if level == "warn" else 1] += 1

    def series(self, line: Mapping[str, Any], number_: int) -> None:
        """A ``series`` line in either form: ``t`` + ``columns`` {name: values} (with
        ``unit``/``units``), or the engine's ``columns`` [names] + ``data`` {name: values}
        holding ``t``. Lines of the same exchange and column are joined in time."""
        section = self._section(line)
        name = text(line.get("name"), "series")
        view = section.exchange(text(line.get("exchange")) or name)
        units = mapping(line.get("units"))
        default_unit = text(line.get("unit"))
        raw_columns = line.get("columns")
        if isinstance(raw_columns, Mapping):
            t, columns, series_name = floats(line.get("t")), mapping(raw_columns), name
        else:
            data = mapping(line.get("data"))
            names = [text(c) for c in sequence(raw_columns)] or list(data)
            t = floats(data.get("t", line.get("t")))
            columns = {c: data.get(c) for c in names if c != "t"}
            series_name = ""
        for column, values in columns.items():
            unit = text(units.get(column)) or default_unit
            panel = panel_of(column, unit, series_name, self.unit_ids())
            if panel is None:
                view.unplotted.add(column)
                continue
            y = floats(values)
            n = min(len(y), len(t))
            if len(y) != len(t):
                view.problems.append(
                    f"line {number_}: series {name!r} column {column!r} has {len(y)} values "
                    f"for {len(t)} times; the first {n} are plotted"
                )
            view.add(panel, Trace(column, t[:n], y[:n], unit or PANEL_UNITS[panel]))
        view.series_steps.extend(_steps(line.get("steps")))
        view.state = text(line.get("state")) or view.state
        view.stop_reason = text(line.get("stop_reason")) or view.stop_reason
        energy = number(line.get("energy_wh"))
        view.energy_wh = energy if energy is not None else view.energy_wh

    def unit_ids(self) -> frozenset[str]:
        """The bench's unit ids, from the run header (empty without one)."""
        ids = {i.unit for i in self.run.instruments if i.unit}
        return frozenset(ids | set(self.run.unit_envelopes))

    def step(self, line: Mapping[str, Any]) -> None:
        section = self._section(line)
        exchange = line.get("exchange")
        if isinstance(exchange, Mapping) or text(line.get("step")) == "refused":
            described = mapping(exchange)
            sides = [
                " + ".join(f"{u} {text(a)} A" for u, a in mapping(described.get(side)).items())
                for side in ("discharge", "charge")
            ]
            what = text(described.get("name")) or (
                " → ".join(sides) if all(sides) else text(exchange, "(unnamed)")
            )
            reason = text(line.get("reason"), "no reason recorded")
            rule = text(line.get("rule"))
            by = f" by rule {rule}" if rule else ""
            section.notes.append(f"exchange {what} was refused{by}: {reason}")
            return
        view = section.exchange(text(exchange, "exchange"))
        view.step_lines += 1
        t = number(line.get("t"))
        label = text(line.get("step")) or text(line.get("label"))
        if t is not None and label:
            view.line_steps.append(StepMark(t, label))

    def safety_event(self, line: Mapping[str, Any]) -> None:
        self._section(line).events.append(
            SafetyEvent(
                t=number(line.get("t")),
                level=text(line.get("level"), "error").lower(),
                check=text(line.get("check")) or text(line.get("key")) or text(line.get("kind")),
                unit=text(line.get("unit")),
                message=text(line.get("message")),
                value=number(line.get("value")),
                limit=number(line.get("limit")),
            )
        )

    def shutdown(self, line: Mapping[str, Any]) -> None:
        section = self._section(line)
        key = id(section)
        event = text(line.get("event"))
        if event == "begin" or (event == "step" and key not in self.open_shutdown):
            self._close_open(key)
            self.open_shutdown[key] = Shutdown(
                reason=text(line.get("reason"), "no reason recorded"),
                reference=text(line.get("reference")),
                started=number(line.get("t")),
                complete=False,
            )
            section.shutdowns.append(self.open_shutdown[key])
        if event == "step":
            self.open_shutdown[key].steps.append(_shutdown_step(line))
            return
        if event == "begin":
            return
        shutdown = self.open_shutdown.pop(key, None)
        if shutdown is None:
            shutdown = Shutdown(reason=text(line.get("reason"), "no reason recorded"))
            section.shutdowns.append(shutdown)
        shutdown.complete = True
        shutdown.reason = text(line.get("reason")) or shutdown.reason
        shutdown.reference = text(line.get("reference")) or shutdown.reference
        shutdown.started = _first(line.get("started"), shutdown.started)
        shutdown.finished = _first(line.get("finished"), line.get("t"))
        steps = [_shutdown_step(mapping(s)) for s in sequence(line.get("steps"))]
        if steps:
            shutdown.steps = steps
        unsafe = line.get("unsafe", line.get("unconfirmed"))
        shutdown.unsafe = [text(u) for u in sequence(unsafe)]

    def _close_open(self, key: int) -> None:
        stale = self.open_shutdown.pop(key, None)
        if stale is not None:
            self.missing.append(
                f"shutdown '{stale.reason}' has no end line (another shutdown began after it)"
            )

    def community(self, line: Mapping[str, Any], number_: int) -> None:
        """A ``community`` line: a community day, parsed by :mod:`reports.community`."""
        self._section(line).community.append(parse_community(line, number_))

    def stimulus(self, line: Mapping[str, Any]) -> None:
        """A ``stimulus`` line (schema 2): named on the test's page, with the exchange step
        that was running then."""
        section = self._section(line)
        t = number(line.get("t"))
        marks = [m for v in section.exchanges.values() for m in v.line_steps]
        before = [m for m in marks if t is not None and m.t <= t]
        during = max(before, key=lambda m: m.t).label if before else ""
        section.stimuli.append(Stimulus(t, stimulus_text(line), during))

    def note(self, line: Mapping[str, Any]) -> None:
        message = text(line.get("message")) or text(line.get("text"))
        if message:
            self._section(line).notes.append(message)

    # -- the whole record -------------------------------------------------------------------
    def build(self) -> ReportModel:
        records = self.records
        handlers = {
            "run_start": self.run_start,
            "run_end": self.run_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
            "measurement": self.measurement,
            "step": self.step,
            "safety_event": self.safety_event,
            "shutdown": self.shutdown,
            "note": self.note,
            "stimulus": self.stimulus,
        }
        seen_header = False
        for index, line in enumerate(records.lines):
            kind = line.get("type")
            wall = number(line.get("wall"))
            if wall is not None:
                self.run.last_wall = wall
            if kind == "run_start":
                if seen_header:
                    self.missing.append("the record has a second run_start line; it was ignored")
                    continue
                seen_header = True
            if kind == "series":
                self.series(line, index + 1)
            elif kind == "community":
                self.community(line, index + 1)
            elif isinstance(kind, str) and kind in handlers:
                handlers[kind](line)
            else:
                self.missing.append(f"a line of unknown type {kind!r} was ignored")
        return self._finish(seen_header)

    def _finish(self, seen_header: bool) -> ReportModel:
        records, run = self.records, self.run
        aborted = records.end is None
        if not seen_header:
            self.missing.insert(
                0,
                "the run header (run_start line) is missing: bench, instruments, envelopes "
                "and software versions are unknown",
            )
        else:
            if run.bench is None:
                self.missing.append("the run header names no bench file")
            elif run.bench.text is None:
                self.missing.append("the run header does not hold the bench file's text")
            if not run.instruments:
                self.missing.append("the run header lists no instrument identities")
            if not run.bus_envelope and not run.unit_envelopes:
                self.missing.append("the run header holds no envelopes")
        for test in self.tests:
            if test.ended or test.outcome == UNKNOWN:
                continue
            if aborted:
                test.outcome = ABORTED
                self.missing.append(
                    f"test {test.nodeid} has no test_end line: it was running when the record stops"
                )
            else:
                test.outcome = UNKNOWN
                self.missing.append(
                    f"test {test.nodeid} has no test_end line; its outcome is unknown"
                )
        for section in [self.session, *self.tests]:
            for view in section.exchanges.values():
                if not view.has_data and view.step_lines:
                    view.problems.append("steps were recorded but no time series")
        for shutdown in self.open_shutdown.values():
            self.missing.append(
                f"shutdown '{shutdown.reason}' has no end line: the record stops during it"
            )
        raw = records.path.read_bytes() if records.path.exists() else b""
        total_lines = sum(1 for chunk in raw.split(b"\n") if chunk.strip())
        if aborted:
            self.missing.append(
                "the record has no run_end line: the run did not finish (ABORTED); the "
                f"record stops after line {total_lines}{_at(run.last_wall)}"
            )
        outcomes = [t.outcome for t in self.tests]
        verdict = ABORTED if aborted else _verdict(outcomes, run.recorded_outcome)
        if not aborted and run.interrupted and verdict != "SAFETY TRIP":
            verdict = INTERRUPTED
        counts = {name: outcomes.count(name) for name in COUNT_ORDER if name in outcomes}
        counts.update({o: outcomes.count(o) for o in outcomes if o not in counts})
        return ReportModel(
            record_path=str(records.path),
            record_sha256=hashlib.sha256(raw).hexdigest(),
            record_lines=total_lines,
            run=run,
            tests=self.tests,
            session=self.session,
            verdict=verdict,
            counts=counts,
            aborted=aborted,
            corrupt=list(records.corrupt),
            missing=self.missing,
        )


def read_run_start(run: Run, line: Mapping[str, Any]) -> None:
    """Fill ``run`` from a ``run_start`` line (fields of the wrong type are absent)."""
    run.run_id = text(line.get("run_id"))
    bench = mapping(line.get("bench"))
    if bench:
        body = bench.get("text")
        run.bench = Bench(
            name=text(bench.get("name")),
            description=text(bench.get("description")),
            path=text(bench.get("path")),
            sha256=text(bench.get("sha256")),
            text=body if isinstance(body, str) else None,
        )
    emulated = line.get("emulated")
    run.emulated = emulated if isinstance(emulated, bool) else None
    calibration = {str(k): text(v) for k, v in mapping(line.get("calibration_due")).items()}
    for item in sequence(line.get("instruments")):
        entry = mapping(item)
        if not entry:
            continue
        emu = entry.get("emulated", run.emulated)
        key = f"{text(entry.get('unit'))}.{text(entry.get('instrument'))}"
        run.instruments.append(
            Instrument(
                unit=text(entry.get("unit")),
                instrument=text(entry.get("instrument")),
                driver=text(entry.get("driver")),
                resource=text(entry.get("resource")),
                vendor=text(entry.get("vendor")),
                model=text(entry.get("model")),
                serial=text(entry.get("serial")),
                firmware=text(entry.get("firmware")),
                emulated=emu if isinstance(emu, bool) else None,
                worker=text(entry.get("worker")),
                calibration_due=calibration.get(key, ""),
            )
        )
    for key, why in mapping(line.get("unidentified")).items():
        worker, _, key = key.rpartition(":")
        unit, _, name = key.partition(".")
        run.instruments.append(
            Instrument(
                unit,
                name,
                "",
                "",
                "",
                "",
                "",
                "",
                run.emulated,
                text(why, "no answer"),
                worker=worker,
                calibration_due=calibration.get(key, ""),
            )
        )
    envelopes = mapping(line.get("envelopes"))
    run.bus_envelope = mapping(envelopes.get("bus"))
    run.unit_envelopes = {uid: mapping(env) for uid, env in mapping(envelopes.get("units")).items()}
    run.software = {k: text(v, "not installed") for k, v in mapping(line.get("software")).items()}
    run.git_revision = text(line.get("git_revision"))
    run.host = text(line.get("host"))
    run.started_at = text(line.get("started_at"))
    run.started_wall = number(line.get("wall"))
    sign_off = mapping(line.get("sign_off"))
    run.operator = text(sign_off.get("operator"))
    run.dut = text(sign_off.get("dut"))
    run.station = text(sign_off.get("station"))
    sources = mapping(line.get("test_sources"))
    run.test_sources_sha256 = text(sources.get("sha256"))
    run.test_sources = {str(k): text(v) for k, v in mapping(sources.get("files")).items()}
    run.workers = {str(k): mapping(v) for k, v in mapping(line.get("workers")).items()}


def _first(*values: Any) -> float | None:
    """The first value that is a finite number."""
    return next((x for x in map(number, values) if x is not None), None)


def _at(wall: float | None) -> str:
    """`` (last line written at <ISO time>)`` for a wall time, or nothing."""
    if wall is None:
        return ""
    try:
        stamp = datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return ""
    return f" (last line written at {stamp})"


def _shutdown_step(line: Mapping[str, Any]) -> ShutdownStep:
    confirmed = line.get("confirmed", line.get("ok"))
    return ShutdownStep(
        t=number(line.get("t")),
        unit=text(line.get("unit")),
        action=text(line.get("action")),
        confirmed=confirmed if isinstance(confirmed, bool) else None,
        detail=text(line.get("detail")),
    )


def _verdict(outcomes: Iterable[str], recorded: str | None) -> str:
    """The worse of the tests' outcomes and the outcome the run_end line recorded."""
    ranked = [o if o != UNKNOWN else "ERROR" for o in outcomes]
    computed = overall_outcome(ranked)
    if recorded is None or recorded == computed:
        return computed
    rank = {**SEVERITY, "NO TESTS": -1}
    return recorded if rank.get(recorded, 3) > rank.get(computed, -1) else computed


def build_model(records: RecordSet) -> ReportModel:
    """The report model of a record read by :func:`hil.records.read_records`."""
    return _Builder(records).build()
