"""APIS scenarios: each unit's conditions for making deals, by time of day.

A scenario is APIS's own ``scenario.json`` (``//`` comments allowed, see
:mod:`hil.config.apis_json`), read unchanged. Its time slots (``"HH:MM:SS-HH:MM:SS"``, start
inclusive, end exclusive) each give

- ``batteryStatus``: Wh ranges of remaining energy (``"lower-upper"``, lower inclusive,
  upper exclusive, an empty side unbounded) mapped to a status name;
- ``request``: per status, the deal the unit asks for (``charge`` or ``discharge``, up to
  ``limitWh``, at ``pointPerWh``, optionally only with ``pairUnitId``);
- ``accept``: per status and direction, the requests of others it answers;
- ``acceptSelection.strategy`` (``amount`` or ``pointAndAmount``), else the scenario's.

:func:`parse_scenario` checks everything APIS would trip over, and what APIS would silently
get wrong: malformed or overlapping time slots, malformed or overlapping Wh ranges, negative
limits, statuses that ``request``/``accept`` name but ``batteryStatus`` does not, unknown
directions, keys and strategies, duplicated keys. Each problem is a ``ConfigError`` naming
the file, the key path and the rule: ``scenario.json: "00:00:00-12:00:00".batteryStatus:
ranges "3600-4320" and "4000-" overlap [rule bands-overlap]``. Keys starting with ``#``
are comments (APIS's files use ``"#": "end"``). A gap between time slots is allowed (units
do not negotiate then); :meth:`Scenario.gaps` lists them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from hil.config.apis_json import JsonObject, KeyPath, json_key_path, load_apis_json, read_apis_json
from hil.errors import ConfigError

Direction = Literal["charge", "discharge"]
DIRECTIONS: tuple[Direction, ...] = ("charge", "discharge")
Strategy = Literal["amount", "pointAndAmount"]
STRATEGIES: tuple[Strategy, ...] = ("amount", "pointAndAmount")

#: Seconds in a day: time slots cover [0, DAY_S).
DAY_S = 86_400
#: APIS's default scenario refreshing period (s).
DEFAULT_REFRESHING_PERIOD_S = 5.0
#: APIS's default strategy when a scenario names none.
DEFAULT_STRATEGY: Strategy = "amount"

_SLOT_KEY = re.compile(r"^(\d{2}):(\d{2}):(\d{2})-(\d{2}):(\d{2}):(\d{2})$")
_RANGE_KEY = re.compile(r"^(\d*)-(\d*)$")
_NEGATIVE_RANGE = re.compile(r"^(-\d+-\d*|\d*--\d+|-\d+--\d+)$")


class Rule(StrEnum):
    """The rules a scenario must keep; every refusal names one."""

    TYPE = "type"  # a value of the wrong JSON type
    KNOWN_KEY = "known-key"  # a key APIS does not read here (typo)
    UNIQUE_KEY = "unique-key"  # a key written twice
    REQUIRED = "required"  # a key APIS needs
    SLOTS = "slots"  # at least one time slot
    SLOT_KEY = "slot-key"  # "HH:MM:SS-HH:MM:SS" with a valid time of day each side
    SLOT_ORDER = "slot-order"  # start before end
    SLOTS_OVERLAP = "slots-overlap"
    RANGE_KEY = "range-key"  # "lower-upper" in whole Wh, either side may be empty
    NON_NEGATIVE = "non-negative"  # Wh limits, ranges and points are ≥ 0
    WHOLE_NUMBER = "whole-number"  # Wh values are integers (APIS reads them as Integer)
    RANGE_ORDER = "range-order"  # lower below upper
    BANDS_OVERLAP = "bands-overlap"
    STATUS_NAME = "status-name"  # a non-empty string
    KNOWN_STATUS = "known-status"  # request/accept name only statuses of batteryStatus
    DIRECTION = "direction"  # "charge" or "discharge"
    STRATEGY = "strategy"  # "amount" or "pointAndAmount"
    POSITIVE = "positive"  # refreshingPeriodMsec > 0


def scenario_error(source: str, path: KeyPath, problem: str, rule: Rule) -> ConfigError:
    """``source: key.path: problem [rule name]``."""
    return ConfigError(f"{source}: {json_key_path(path)}: {problem} [rule {rule.value}]")


def format_time_of_day(seconds: int) -> str:
    """``3600`` → ``01:00:00``; ``86400`` → ``24:00:00``."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def opposite(direction: Direction) -> Direction:
    """The other direction (a charge request is answered by a discharge accept)."""
    return "discharge" if direction == "charge" else "charge"


@dataclass(frozen=True)
class Condition:
    """One ``request`` or ``accept`` entry: a direction, the Wh threshold that sets the
    amount, a price and an optional pair unit (APIS's "condition")."""

    direction: Direction
    limit_wh: int
    point_per_wh: float | None = None
    pair_unit_id: str | None = None

    def amount_wh(self, remaining_wh: int) -> int:
        """APIS: ``limitWh - remaining`` to charge, ``remaining - limitWh`` to discharge."""
        if self.direction == "charge":
            return self.limit_wh - remaining_wh
        return remaining_wh - self.limit_wh

    def describe(self) -> str:
        text = f"{self.direction} to {self.limit_wh} Wh"
        if self.point_per_wh is not None:
            text += f" at {self.point_per_wh:g} pt/Wh"
        if self.pair_unit_id is not None:
            text += f" (only with {self.pair_unit_id})"
        return text


@dataclass(frozen=True)
class StatusBand:
    """A ``batteryStatus`` entry: remaining Wh in [lower, upper) is ``status``."""

    key: str
    status: str
    lower_wh: int | None
    upper_wh: int | None

    def contains(self, remaining_wh: float) -> bool:
        return (self.lower_wh is None or self.lower_wh <= remaining_wh) and (
            self.upper_wh is None or remaining_wh < self.upper_wh
        )

    @property
    def low(self) -> float:
        return -math.inf if self.lower_wh is None else float(self.lower_wh)

    @property
    def high(self) -> float:
        return math.inf if self.upper_wh is None else float(self.upper_wh)

    def describe(self) -> str:
        low = "" if self.lower_wh is None else str(self.lower_wh)
        high = "" if self.upper_wh is None else str(self.upper_wh)
        return f"{low}-{high} Wh"


Conditions = Mapping[str, Mapping[Direction, Condition]]


@dataclass(frozen=True)
class TimeSlot:
    """One time slot of a scenario: ``[start_s, end_s)`` seconds of the day."""

    key: str
    start_s: int
    end_s: int
    bands: tuple[StatusBand, ...]
    requests: Conditions
    accepts: Conditions
    strategy: Strategy

    def contains(self, second_of_day: float) -> bool:
        return self.start_s <= second_of_day < self.end_s

    @property
    def statuses(self) -> tuple[str, ...]:
        """Every status name, in the order of the Wh ranges (lowest first)."""
        return tuple(dict.fromkeys(band.status for band in self.bands))

    def status(self, remaining_wh: float) -> str | None:
        """The status for ``remaining_wh``; None if no range holds it."""
        for band in self.bands:
            if band.contains(remaining_wh):
                return band.status
        return None

    def request_condition(self, status: str) -> Condition | None:
        """The request for ``status``; APIS takes ``charge`` when both are given."""
        entry = self.requests.get(status, {})
        return entry.get("charge") or entry.get("discharge")

    def accept_condition(self, status: str, direction: Direction) -> Condition | None:
        """The accept of direction ``direction`` (the accepting unit's own) for ``status``."""
        return self.accepts.get(status, {}).get(direction)

    def band_gaps(self) -> list[tuple[int | None, int | None]]:
        """Wh ranges (≥ 0) no status covers: units there neither request nor accept."""
        gaps: list[tuple[int | None, int | None]] = []
        edge: float = 0.0
        for band in sorted(self.bands, key=lambda b: b.low):
            if band.low > edge:
                gaps.append((int(edge), int(band.low)))
            edge = max(edge, band.high)
        if edge < math.inf:
            gaps.append((int(edge), None))
        return gaps


@dataclass(frozen=True)
class Scenario:
    """A checked scenario: time slots in order of their start, the default strategy."""

    source: str
    slots: tuple[TimeSlot, ...]
    strategy: Strategy = DEFAULT_STRATEGY
    refreshing_period_s: float = DEFAULT_REFRESHING_PERIOD_S

    def slot_at(self, second_of_day: float) -> TimeSlot | None:
        """The slot holding ``second_of_day`` (taken modulo one day); None in a gap."""
        t = second_of_day % DAY_S
        for slot in self.slots:
            if slot.contains(t):
                return slot
        return None

    def gaps(self) -> list[tuple[int, int]]:
        """``(start_s, end_s)`` of every part of the day no time slot covers."""
        gaps: list[tuple[int, int]] = []
        edge = 0
        for slot in self.slots:
            if slot.start_s > edge:
                gaps.append((edge, slot.start_s))
            edge = max(edge, slot.end_s)
        if edge < DAY_S:
            gaps.append((edge, DAY_S))
        return gaps


# =========================================================================================
# Reading
# =========================================================================================


class _Reader:
    """Walks the parsed JSON; every check raises a ``ConfigError`` with the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: KeyPath, problem: str, rule: Rule) -> ConfigError:
        return scenario_error(self.source, path, problem, rule)

    def obj(self, value: Any, path: KeyPath, what: str) -> JsonObject:
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a JSON object, not {_kind(value)}", Rule.TYPE)
        obj = value if isinstance(value, JsonObject) else JsonObject(value)
        dup = [key for key in obj.duplicates if not key.startswith("#")]
        if dup:
            raise self.fail(
                (*path, dup[0]),
                f"key {dup[0]!r} is written more than once (APIS would keep only the last)",
                Rule.UNIQUE_KEY,
            )
        return obj

    @staticmethod
    def keys(obj: Mapping[str, Any]) -> list[str]:
        """The keys that are not ``#`` comments, in file order."""
        return [key for key in obj if not key.startswith("#")]

    def unknown(self, path: KeyPath, key: str, allowed: str) -> ConfigError:
        return self.fail((*path, key), f"unknown key {key!r}; allowed: {allowed}", Rule.KNOWN_KEY)

    def whole(self, value: Any, path: KeyPath, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"{what} must be a number of Wh, not {_kind(value)}", Rule.TYPE)
        if isinstance(value, float) and not value.is_integer():
            raise self.fail(
                path, f"{what} {value!r} is not a whole number of Wh", Rule.WHOLE_NUMBER
            )
        if value < 0:
            raise self.fail(path, f"{what} {value!r} is negative", Rule.NON_NEGATIVE)
        return int(value)

    # -- top level ---------------------------------------------------------------------
    def scenario(self, data: Any) -> Scenario:
        root = self.obj(data, (), "a scenario")
        strategy: Strategy = DEFAULT_STRATEGY
        period = DEFAULT_REFRESHING_PERIOD_S
        raw_slots: list[tuple[str, Any]] = []
        for key in self.keys(root):
            value = root[key]
            if key == "refreshingPeriodMsec":
                period = self.period(value, (key,))
            elif key == "acceptSelection":
                strategy = self.selection(value, (key,))
            elif isinstance(value, dict) or "-" in key:
                raw_slots.append((key, value))
            else:
                raise self.unknown(
                    (),
                    key,
                    'refreshingPeriodMsec, acceptSelection, "HH:MM:SS-HH:MM:SS" time slots '
                    'and "#…" comments',
                )
        if not raw_slots:
            raise self.fail(
                (), 'no time slot ("HH:MM:SS-HH:MM:SS": {…}); a scenario needs one', Rule.SLOTS
            )
        slots = [self.slot(key, value, strategy) for key, value in raw_slots]
        ordered = sorted(slots, key=lambda s: (s.start_s, s.end_s))
        for before, after in itertools.pairwise(ordered):
            if after.start_s < before.end_s:
                raise self.fail(
                    (after.key,),
                    f"time slot {after.key!r} overlaps time slot {before.key!r} "
                    f"({format_time_of_day(after.start_s)}-"
                    f"{format_time_of_day(min(before.end_s, after.end_s))} is in both)",
                    Rule.SLOTS_OVERLAP,
                )
        return Scenario(self.source, tuple(ordered), strategy, period)

    def period(self, value: Any, path: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number of ms, not {_kind(value)}", Rule.TYPE)
        if not value > 0:
            raise self.fail(path, f"{value!r} ms is not > 0", Rule.POSITIVE)
        return float(value) / 1000.0

    def selection(self, value: Any, path: KeyPath) -> Strategy:
        obj = self.obj(value, path, "acceptSelection")
        for key in self.keys(obj):
            if key != "strategy":
                raise self.unknown(path, key, "strategy")
        if "strategy" not in obj:
            raise self.fail(
                path, f"no strategy; give one of {', '.join(STRATEGIES)}", Rule.REQUIRED
            )
        strategy = obj["strategy"]
        if strategy not in STRATEGIES:
            raise self.fail(
                (*path, "strategy"),
                f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}",
                Rule.STRATEGY,
            )
        return cast(Strategy, strategy)

    # -- one time slot -----------------------------------------------------------------
    def slot_bounds(self, key: str) -> tuple[int, int]:
        path: KeyPath = (key,)
        match = _SLOT_KEY.match(key)
        if match is None:
            raise self.fail(
                path,
                f"time slot key {key!r} is not HH:MM:SS-HH:MM:SS (start inclusive, end exclusive)",
                Rule.SLOT_KEY,
            )
        h1, m1, s1, h2, m2, s2 = (int(g) for g in match.groups())
        bounds = []
        for h, m, s, side in ((h1, m1, s1, "start"), (h2, m2, s2, "end")):
            if m > 59 or s > 59 or h > 24 or (h == 24 and (m or s)):
                raise self.fail(
                    path,
                    f"the {side} {h:02d}:{m:02d}:{s:02d} is not a time of day "
                    "(00:00:00 to 24:00:00)",
                    Rule.SLOT_KEY,
                )
            bounds.append(h * 3600 + m * 60 + s)
        start, end = bounds
        if start >= end:
            raise self.fail(
                path,
                f"the slot starts at {format_time_of_day(start)}, not before its end "
                f"{format_time_of_day(end)} (a slot cannot wrap past midnight; split it)",
                Rule.SLOT_ORDER,
            )
        return start, end

    def slot(self, key: str, value: Any, default: Strategy) -> TimeSlot:
        start, end = self.slot_bounds(key)
        path: KeyPath = (key,)
        obj = self.obj(value, path, f"time slot {key!r}")
        allowed = "batteryStatus, request, accept, acceptSelection"
        for sub in self.keys(obj):
            if sub not in ("batteryStatus", "request", "accept", "acceptSelection"):
                raise self.unknown(path, sub, allowed)
        if "batteryStatus" not in obj:
            raise self.fail(path, "no batteryStatus (Wh ranges → status names)", Rule.REQUIRED)
        bands = self.bands(obj["batteryStatus"], (key, "batteryStatus"))
        statuses = {band.status for band in bands}
        requests = self.conditions(obj, (key, "request"), statuses)
        accepts = self.conditions(obj, (key, "accept"), statuses)
        strategy = (
            self.selection(obj["acceptSelection"], (key, "acceptSelection"))
            if "acceptSelection" in obj
            else default
        )
        return TimeSlot(key, start, end, bands, requests, accepts, strategy)

    def band(self, key: str, value: Any, path: KeyPath) -> StatusBand:
        if _NEGATIVE_RANGE.match(key):
            raise self.fail(
                path, f"range {key!r} has a negative limit; Wh ranges are ≥ 0", Rule.NON_NEGATIVE
            )
        match = _RANGE_KEY.match(key)
        if match is None:
            raise self.fail(
                path,
                f'range key {key!r} is not "lower-upper" in whole Wh (either side may be '
                'empty: "4320-", "-2880")',
                Rule.RANGE_KEY,
            )
        lower = int(match.group(1)) if match.group(1) else None
        upper = int(match.group(2)) if match.group(2) else None
        if lower is not None and upper is not None and lower >= upper:
            raise self.fail(
                path,
                f"range {key!r}: lower {lower} Wh is not below upper {upper} Wh",
                Rule.RANGE_ORDER,
            )
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                path,
                f"the status of range {key!r} must be a non-empty name, not {value!r}",
                Rule.STATUS_NAME,
            )
        return StatusBand(key, value, lower, upper)

    def bands(self, value: Any, path: KeyPath) -> tuple[StatusBand, ...]:
        obj = self.obj(value, path, "batteryStatus")
        bands = [self.band(key, obj[key], (*path, key)) for key in self.keys(obj)]
        if not bands:
            raise self.fail(path, "no Wh range; give at least one", Rule.REQUIRED)
        ordered = sorted(bands, key=lambda b: (b.low, b.high))
        for before, after in itertools.pairwise(ordered):
            if after.low < before.high:
                raise self.fail(
                    path,
                    f"ranges {before.key!r} ({before.status}) and {after.key!r} "
                    f"({after.status}) overlap; a remaining energy must have one status",
                    Rule.BANDS_OVERLAP,
                )
        return tuple(ordered)

    def conditions(self, slot: Mapping[str, Any], path: KeyPath, statuses: set[str]) -> Conditions:
        """The ``request`` or ``accept`` section (``path[-1]``) of a time slot: absent is
        none; present, it must be an object (``null`` or a number is refused, not read as
        "none")."""
        name = str(path[-1])
        if name not in slot:
            return MappingProxyType({})
        obj = self.obj(slot[name], path, name)
        out: dict[str, Mapping[Direction, Condition]] = {}
        for status in self.keys(obj):
            if status not in statuses:
                raise self.fail(
                    (*path, status),
                    f"unknown status {status!r}; batteryStatus defines "
                    f"{', '.join(sorted(statuses))}",
                    Rule.KNOWN_STATUS,
                )
            entry = self.obj(obj[status], (*path, status), f"status {status!r}")
            per: dict[Direction, Condition] = {}
            for direction in self.keys(entry):
                where = (*path, status, direction)
                if direction not in DIRECTIONS:
                    raise self.fail(
                        where,
                        f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}",
                        Rule.DIRECTION,
                    )
                per[direction] = self.condition(entry[direction], where, direction)
            out[status] = MappingProxyType(per)
        return MappingProxyType(out)

    def condition(self, value: Any, path: KeyPath, direction: Direction) -> Condition:
        obj = self.obj(value, path, f"a {direction} condition")
        for key in self.keys(obj):
            if key not in ("limitWh", "pointPerWh", "pairUnitId"):
                raise self.unknown(path, key, "limitWh, pointPerWh, pairUnitId")
        if "limitWh" not in obj:
            raise self.fail(
                path, "no limitWh (the Wh threshold that sets the amount)", Rule.REQUIRED
            )
        limit = self.whole(obj["limitWh"], (*path, "limitWh"), "limitWh")
        point: float | None = None
        if "pointPerWh" in obj:
            raw = obj["pointPerWh"]
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise self.fail(
                    (*path, "pointPerWh"), f"must be a number, not {_kind(raw)}", Rule.TYPE
                )
            if raw < 0:
                raise self.fail((*path, "pointPerWh"), f"{raw!r} is negative", Rule.NON_NEGATIVE)
            point = float(raw)
        pair: str | None = None
        if "pairUnitId" in obj:
            raw = obj["pairUnitId"]
            if not isinstance(raw, str) or not raw:
                raise self.fail((*path, "pairUnitId"), f"must be a unit id, not {raw!r}", Rule.TYPE)
            pair = raw
        return Condition(direction, limit, point, pair)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Check parsed scenario JSON; raises ``ConfigError`` naming key path and rule."""
    return _Reader(source).scenario(data)


def load_scenario_text(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and check scenario text (APIS JSON, comments allowed)."""
    return parse_scenario(load_apis_json(text, source), source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check an APIS ``scenario.json``."""
    return parse_scenario(read_apis_json(path), str(path))
