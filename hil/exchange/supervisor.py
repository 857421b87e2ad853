"""The supervisor: every period, every unit and the bus are checked; an error trips the bench.

The checks are APIS's safety checks (``shared/reference/apis-control.md``, "Safety checks"):

- **communication** (``comm``): the unit answered this period;
- **protection** (``protection``): no latched trip (OVP, OCP, OTP, UVLO …), no heavy alarm;
  an error at once. A light alarm (``alarm``) warns first;
- **battery permission** (``permission``): a unit that discharges or charges against its
  battery's permission, or holds the bus as voltage reference while its battery allows no
  interchange at all, is an error at once; an idle unit whose battery withdrew permission
  is reported as a warning that does not escalate;
- **ranges** (``range.bus_voltage``, ``range.bus_current``, ``range.battery_voltage``,
  ``range.battery_current``, ``range.temperature``) from the unit's envelope and APIS's
  static limits;
- **mode consistency** (``mode``): the unit does what the engine told it (idle, constant
  current or voltage reference), and **tracking** (``tracking``): idle ⇒ |I| ≤
  ``current_allowance``; reference ⇒ |V - set-point| ≤ ``voltage_allowance``; constant
  current ⇒ |I - set-point| ≤ ``current_allowance`` and the bus inside its window;
- **frozen meter** (``stale``): a unit carrying current (or told to) whose reading
  of its bus voltage and current (the meter the unit controls with) stays bit-for-bit the same
  for ``stale_periods`` supervisor periods in a row is an error: a live meter's last
  digits move, a frozen one would let an exchange run on numbers that no longer mean
  anything (``[apis] stale_periods``, 0 turns the check off; the threshold is ours,
  APIS has no such check, so it is "assumed");
- **bus** (while a reference holds it): the bus voltage window (``bus.voltage``), the
  **grid-current balance** (``balance``): |Σ currents of the units in exchanges| ≤
  ``balance_allowance_per_unit`` x their number, and each **branch**'s capacity
  (``branch``) when the topology check is on.

Each check has a key (``mode:E001``, ``balance``, ``branch:A``). As in APIS a failing check
*warns* the first time and becomes an *error* if the next check of the same key fails too;
protection trips and permission violations are errors at once. Every verdict is recorded:
each warning and error as a ``safety_event`` line, and each cycle as a ``measurement`` line
with every key's verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hil.config.bench import BenchConfig
from hil.controller import Mode, Reading
from hil.recorder import Recorder, safe_write

log = logging.getLogger(__name__)

#: Reading flags that mean a latched protection trip or a heavy alarm.
TRIP_FLAGS = frozenset({"OVP", "OCP", "OTP", "OPP", "UVLO", "PF", "INH", "REV", "HEAVY_ALARM"})


#: A verdict's message, or what makes it (formatted only when the check fails).
Message = str | Callable[[], str]


class Level(StrEnum):
    """A verdict's level."""

    PASS = "pass"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``key`` = ``check`` plus ``:unit`` or ``:branch``."""

    key: str
    check: str
    level: Level
    message: str = ""
    unit: str | None = None
    value: float | None = None
    limit: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "check": self.check,
            "level": self.level.value,
            "unit": self.unit,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class Expectation:
    """What the engine has told one unit to do.

    ``setpoint`` is amps (signed) in CURRENT mode and volts as VOLTAGE_REFERENCE;
    ``direction`` the sign of the unit's exchange current (+1 discharging, -1 charging,
    0 none); ``settling`` marks a unit in the middle of a commanded change (a ramp, a
    hand-over), whose tracking is not judged until it is confirmed.
    """

    mode: Mode = Mode.IDLE
    setpoint: float | None = None
    direction: int = 0
    settling: bool = False


IDLE = Expectation()


@dataclass(frozen=True)
class BusExpectation:
    """What the engine expects of every unit and of the bus this period.

    Units missing from ``units`` are expected idle. ``in_exchange`` are the units counted
    by the balance check; ``bus_up`` is True while the reference holds the bus steady
    (not while it ramps up, authorizes or is lowered).
    """

    units: Mapping[str, Expectation] = field(default_factory=dict)
    in_exchange: frozenset[str] = frozenset()
    reference: str | None = None
    bus_up: bool = False

    def of(self, unit_id: str) -> Expectation:
        return self.units.get(unit_id, IDLE)


@dataclass(frozen=True)
class SupervisorLimits:
    """Limits that are not in the bench file's envelopes (APIS's static checks)."""

    temperature_min: float = 0.0  # °C, APIS local static check
    temperature_max: float = 45.0  # °C
    battery_current_factor: float = 1.1  # x power_max / battery_voltage_min


@dataclass
class _Cycle:
    """Verdicts as a cycle collects them: every key's level, and the failing verdicts."""

    levels: dict[str, Level] = field(default_factory=dict)
    failures: list[Verdict] = field(default_factory=list)


@dataclass(frozen=True)
class CheckReport:
    """One supervisor cycle at bench time ``t``: every check key's level, and the full
    verdict (message, value, limit) of each that did not pass."""

    t: float
    levels: Mapping[str, Level]
    failures: tuple[Verdict, ...] = ()

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """Every verdict, passes included."""
        failed = {v.key: v for v in self.failures}
        return tuple(
            failed.get(key)
            or Verdict(key, key.split(":", 1)[0], level, unit=key.partition(":")[2] or None)
            for key, level in self.levels.items()
        )

    @property
    def errors(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.failures if v.level is Level.ERROR)

    @property
    def warnings(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.failures if v.level is Level.WARN)

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe_errors(self) -> str:
        return "; ".join(f"{v.key}: {v.message}" for v in self.errors)


def _each(readings: Mapping[str, Reading], units: Collection[str]) -> str:
    return ", ".join(f"{uid} {readings[uid].bus_current:+.4g} A" for uid in sorted(units))


class Escalation:
    """Warn, then error: a check that fails once warns, twice in a row is an error (at once
    when ``immediate``; never when ``escalate`` is false). A pass forgets its failures."""

    def __init__(self) -> None:
        self._failures: dict[str, int] = {}

    def clear(self) -> None:
        self._failures.clear()

    def judge(
        self,
        out: _Cycle,
        key: str,
        check: str,
        failed: bool,
        message: Message = "",
        *,
        unit: str | None = None,
        value: float | None = None,
        limit: float | None = None,
        immediate: bool = False,
        escalate: bool = True,
    ) -> None:
        if not failed:
            self._failures.pop(key, None)
            out.levels[key] = Level.PASS
            return
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        error = immediate or (escalate and count >= 2)
        level = Level.ERROR if error else Level.WARN
        text = message() if callable(message) else message
        if count >= 2 and not immediate and escalate:
            text = f"{text} (failed {count} checks in a row)"
        out.levels[key] = level
        out.failures.append(Verdict(key, check, level, text, unit, value, limit))


class Supervisor:
    """Checks readings against envelopes, the engine's expectations and the bus rules."""

    def __init__(
        self,
        config: BenchConfig,
        *,
        recorder: Recorder | None = None,
        limits: SupervisorLimits | None = None,
        record_cycles: bool = True,
    ) -> None:
        self.config = config
        self.policy = config.apis
        self.recorder = recorder
        self.limits = limits or SupervisorLimits()
        self.record_cycles = record_cycles
        self._escalation = Escalation()
        self._last_values: dict[str, tuple[float, float]] = {}
        self._unchanged: dict[str, int] = {}
        self.cycles = 0

    @property
    def period(self) -> float:
        """Seconds between cycles (APIS ``mainLoopPeriodMsec``, from the bench file)."""
        return self.policy.supervisor_period

    def reset(self) -> None:
        """Forget every failing check (after a shutdown, before the next run)."""
        self._escalation.clear()
        self._last_values.clear()
        self._unchanged.clear()

    # -- one cycle -----------------------------------------------------------------------
    def check(
        self,
        t: float,
        readings: Mapping[str, Reading],
        errors: Mapping[str, str],
        expected: BusExpectation,
        *,
        units: Collection[str] | None = None,
    ) -> CheckReport:
        """Judge one snapshot (``readings`` of the units that answered, ``errors`` of the
        others) against ``expected``; record and return every verdict. ``units`` limits
        the unit checks to the units that were read (default: every unit)."""
        out = _Cycle()
        for unit in self.config.units:
            uid = unit.id
            if units is not None and uid not in units:
                continue
            failed = uid in errors
            self._escalation.judge(
                out,
                f"comm:{uid}",
                "comm",
                failed,
                f"unit {uid} did not answer: {errors[uid]}" if failed else "",
                unit=uid,
            )
            reading = readings.get(uid)
            if reading is not None:
                self._unit_checks(out, uid, reading, expected.of(uid))
        self._bus_checks(out, readings, expected)
        report = CheckReport(t, out.levels, tuple(out.failures))
        self.cycles += 1
        self._record(report)
        return report

    def inspect(self, reading: Reading, expected: Expectation) -> CheckReport:
        """The checks that are errors at once (protection, permission), on one reading the
        engine took itself (a checkpoint, a compensation step); recorded when not clean."""
        out = _Cycle()
        self._protection(out, reading.unit, reading)
        self._permission(out, reading.unit, reading, expected)
        report = CheckReport(reading.t, out.levels, tuple(out.failures))
        for verdict in report.failures:
            self._record_verdict(report.t, verdict)
        return report

    # -- unit checks ---------------------------------------------------------------------
    def _protection(self, out: _Cycle, uid: str, r: Reading) -> None:
        trips = sorted(r.flags & TRIP_FLAGS)
        fault = r.mode is Mode.FAULT or bool(trips)
        what = ", ".join(trips) or "a fault"
        self._escalation.judge(
            out,
            f"protection:{uid}",
            "protection",
            fault,
            lambda: f"unit {uid} reports {what} (mode {r.mode.value})",
            unit=uid,
            immediate=True,
        )

    def _permission(self, out: _Cycle, uid: str, r: Reading, e: Expectation) -> None:
        direction = e.direction
        if e.mode is Mode.VOLTAGE_REFERENCE and direction == 0:
            direction = 1 if r.bus_current > self.policy.current_allowance else 0
            direction = -1 if r.bus_current < -self.policy.current_allowance else direction
        restricted = sorted(r.flags & {"NO_CHARGE", "NO_DISCHARGE"})
        # A voltage reference whose battery allows nothing at all cannot hold the bus.
        stranded = e.mode is Mode.VOLTAGE_REFERENCE and len(restricted) == 2
        forbidden = (
            stranded
            or (direction > 0 and "NO_DISCHARGE" in r.flags)
            or (direction < 0 and "NO_CHARGE" in r.flags)
        )
        if forbidden:
            doing = (
                "discharges"
                if direction > 0
                else "charges"
                if direction < 0
                else "holds the bus as voltage reference"
            )
            self._escalation.judge(
                out,
                f"permission:{uid}",
                "permission",
                True,
                f"unit {uid} {doing} but its battery withdrew permission ({', '.join(restricted)})",
                unit=uid,
                immediate=True,
            )
        elif restricted and e.mode is Mode.IDLE:
            self._escalation.judge(
                out,
                f"permission:{uid}",
                "permission",
                True,
                f"unit {uid} is idle and its battery restricts interchange "
                f"({', '.join(restricted)})",
                unit=uid,
                escalate=False,
            )
        else:
            self._escalation.judge(out, f"permission:{uid}", "permission", False, unit=uid)

    def _range(
        self,
        out: _Cycle,
        uid: str,
        name: str,
        value: float | None,
        low: float | None,
        high: float | None,
        unit: str,
    ) -> None:
        if value is None or low is None or high is None:
            return
        failed = not low <= value <= high
        limit = high if value > high else low
        self._escalation.judge(
            out,
            f"range.{name}:{uid}",
            f"range.{name}",
            failed,
            lambda: (
                f"unit {uid}: {name.replace('_', ' ')} {value:.6g} {unit} is outside "
                f"{low:.6g}…{high:.6g} {unit}"
            ),
            unit=uid,
            value=value,
            limit=limit,
        )

    def _unit_checks(self, out: _Cycle, uid: str, r: Reading, e: Expectation) -> None:
        policy, limits = self.policy, self.limits
        env = self.config.unit(uid).envelope
        self._protection(out, uid, r)
        light = "ALARM" in r.flags and "HEAVY_ALARM" not in r.flags
        self._escalation.judge(
            out, f"alarm:{uid}", "alarm", light, f"unit {uid} reports a light alarm", unit=uid
        )
        self._permission(out, uid, r, e)
        allowance = policy.current_allowance
        self._range(
            out, uid, "bus_voltage", r.bus_voltage, -policy.voltage_allowance, env.voltage_max, "V"
        )
        self._range(
            out,
            uid,
            "bus_current",
            r.bus_current,
            -(env.current_sink_max + allowance),
            env.current_source_max + allowance,
            "A",
        )
        active = e.mode is not Mode.IDLE
        if active:
            self._range(
                out,
                uid,
                "battery_voltage",
                r.battery_voltage,
                env.battery_voltage_min,
                env.battery_voltage_max,
                "V",
            )
        if active and r.battery_current is not None and env.battery_voltage_min:
            high = limits.battery_current_factor * env.power_max / env.battery_voltage_min
            self._range(out, uid, "battery_current", r.battery_current, -high, high, "A")
        self._range(
            out,
            uid,
            "temperature",
            r.temperature,
            limits.temperature_min,
            limits.temperature_max,
            "°C",
        )
        self._stale(out, uid, r, e)
        if r.mode is Mode.FAULT or e.settling:
            return
        self._escalation.judge(
            out,
            f"mode:{uid}",
            "mode",
            r.mode is not e.mode,
            lambda: f"unit {uid} is in mode {r.mode.value} but was told {e.mode.value}",
            unit=uid,
        )
        self._tracking(out, uid, r, e)

    def _stale(self, out: _Cycle, uid: str, r: Reading, e: Expectation) -> None:
        """The frozen-meter check: count the periods a current-carrying unit's reading
        repeats exactly; after ``stale_periods`` repeats it is an error at once."""
        limit = self.policy.stale_periods
        allowance = self.policy.current_allowance
        told = e.mode is Mode.CURRENT and e.setpoint is not None and abs(e.setpoint) > allowance
        flowing = told or e.direction != 0 or abs(r.bus_current) > allowance
        values = (r.bus_voltage, r.bus_current)
        previous = self._last_values.get(uid)
        self._last_values[uid] = values
        if limit <= 0 or not flowing or e.settling:
            self._unchanged.pop(uid, None)
            return
        count = self._unchanged.get(uid, 0) + 1 if values == previous else 0
        self._unchanged[uid] = count
        self._escalation.judge(
            out,
            f"stale:{uid}",
            "stale",
            count >= limit,
            lambda: (
                f"unit {uid} reads exactly {r.bus_current:+.6g} A at {r.bus_voltage:.6g} V "
                f"for {count} supervisor periods in a row while current flows: a frozen "
                f"meter (stale_periods = {limit})"
            ),
            unit=uid,
            value=float(count),
            limit=float(limit),
            immediate=True,
        )

    def _tracking(self, out: _Cycle, uid: str, r: Reading, e: Expectation) -> None:
        policy, bus = self.policy, self.config.envelope.bus
        key = f"tracking:{uid}"
        if e.mode is Mode.IDLE or e.setpoint is None:
            error = abs(r.bus_current)
            self._escalation.judge(
                out,
                key,
                "tracking",
                error > policy.current_allowance,
                lambda: (
                    f"unit {uid} is idle but carries {r.bus_current:+.4g} A "
                    f"(allowed ±{policy.current_allowance:g} A)"
                ),
                unit=uid,
                value=r.bus_current,
                limit=policy.current_allowance,
            )
        elif e.mode is Mode.VOLTAGE_REFERENCE:
            error = abs(r.bus_voltage - e.setpoint)
            self._escalation.judge(
                out,
                key,
                "tracking",
                error > policy.voltage_allowance,
                lambda: (
                    f"unit {uid} holds the bus at {r.bus_voltage:.5g} V, set to "
                    f"{e.setpoint:.5g} V ± {policy.voltage_allowance:g} V"
                ),
                unit=uid,
                value=r.bus_voltage,
                limit=e.setpoint,
            )
        else:
            error = abs(r.bus_current - e.setpoint)
            outside = not bus.voltage_min <= r.bus_voltage <= bus.voltage_max
            setpoint = e.setpoint

            def message() -> str:
                text = (
                    f"unit {uid} carries {r.bus_current:+.4g} A, set to {setpoint:+.4g} A "
                    f"± {policy.current_allowance:g} A"
                )
                if outside:
                    text += (
                        f"; bus at {r.bus_voltage:.5g} V is outside {bus.voltage_min:g}…"
                        f"{bus.voltage_max:g} V"
                    )
                return text

            self._escalation.judge(
                out,
                key,
                "tracking",
                error > policy.current_allowance or outside,
                message,
                unit=uid,
                value=r.bus_current,
                limit=e.setpoint,
            )

    # -- bus checks ------------------------------------------------------------------------
    def _bus_checks(
        self, out: _Cycle, readings: Mapping[str, Reading], expected: BusExpectation
    ) -> None:
        if not expected.bus_up or expected.reference is None:
            return
        bus = self.config.envelope.bus
        ref = readings.get(expected.reference)
        if ref is not None:
            self._escalation.judge(
                out,
                "bus.voltage",
                "bus.voltage",
                not bus.voltage_min <= ref.bus_voltage <= bus.voltage_max,
                lambda: (
                    f"bus at {ref.bus_voltage:.5g} V (read by {ref.unit}) is outside "
                    f"{bus.voltage_min:g}…{bus.voltage_max:g} V"
                ),
                value=ref.bus_voltage,
            )
        members = expected.in_exchange | {expected.reference}
        if members <= readings.keys():
            residual = sum(readings[uid].bus_current for uid in members)
            limit = bus.balance_limit(len(members))
            self._escalation.judge(
                out,
                "balance",
                "balance",
                abs(residual) > limit,
                lambda: (
                    f"Σ currents of the units in exchanges ({_each(readings, members)}) "
                    f"is {residual:+.4g} A, above ±{limit:g} A "
                    f"({bus.balance_allowance_per_unit:g} A per unit)"
                ),
                value=residual,
                limit=limit,
            )
        topology = self.config.topology
        if topology is None or not topology.check_enabled:
            return
        for branch in topology.branches.values():
            on_branch = [readings[uid] for uid in branch.unit_ids if uid in readings]
            amps = sum(r.bus_current for r in on_branch)
            self._escalation.judge(
                out,
                f"branch:{branch.id}",
                "branch",
                abs(amps) > branch.capacity,
                lambda b=branch, a=amps: (  # type: ignore[misc]
                    f"branch {b.id} carries {a:+.4g} A, above its capacity {b.capacity:g} A"
                ),
                value=amps,
                limit=branch.capacity,
            )

    # -- records ---------------------------------------------------------------------------
    def _record_verdict(self, t: float, verdict: Verdict) -> None:
        log_at = logging.ERROR if verdict.level is Level.ERROR else logging.WARNING
        log.log(log_at, "supervisor %s: %s", verdict.level.value, verdict.message)
        safe_write(self.recorder, "safety_event", kind="supervisor", t=t, **verdict.as_dict())

    def _record(self, report: CheckReport) -> None:
        for verdict in report.failures:
            self._record_verdict(report.t, verdict)
        if self.record_cycles and self.recorder is not None:
            worst = Level.ERROR if report.errors else Level.WARN if report.warnings else Level.PASS
            safe_write(
                self.recorder,
                "measurement",
                name="supervisor",
                t=report.t,
                verdict=worst.value,
                value=len(report.errors) + len(report.warnings),
                checks={key: level.value for key, level in report.levels.items()},
            )
