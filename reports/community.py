"""The ``community`` record line (a community day of autonomous deals) as a typed model.

:func:`parse_community` turns one line into a :class:`CommunityDay`: every unit's SoC over
the day, the force-stop limits, the deals with their start and stop, the energy totals of
the community with and without interchange, and per unit. Like the rest of the report model
it never raises on the line's content: a field that is missing or of the wrong type is left
out and named in :attr:`CommunityDay.problems`, so the report says what it cannot show.
The line's format is documented in ``docs/records.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reports.fields import FloatArray, floats, mapping, number, sequence, text

#: The two runs of a community day, as keys of ``energy`` and of each ``per_unit`` entry.
WITH = "with_interchange"
WITHOUT = "without_interchange"
#: Keys of an energy-totals object (Wh, except ``self_consumption``: a fraction).
ENERGY_KEYS = ("pv_wh", "pv_used_wh", "pv_wasted_wh", "load_wh", "utility_wh", "self_consumption")
#: A deal in this state ended as planned; others are marked in the deal timeline.
DONE = "done"


@dataclass(frozen=True)
class EnergyTotals:
    """Energy of one run (with or without interchange), of the community or one unit."""

    pv_wh: float | None = None
    pv_used_wh: float | None = None
    pv_wasted_wh: float | None = None
    load_wh: float | None = None
    utility_wh: float | None = None
    self_consumption: float | None = None  # fraction 0..1: PV used / PV generated


@dataclass(frozen=True)
class UnitEnergy:
    """One unit's totals in the two runs (either may be missing)."""

    with_interchange: EnergyTotals | None
    without_interchange: EnergyTotals | None


@dataclass(frozen=True)
class CommunityDeal:
    """One deal of the day; ``t_start``/``t_stop`` are None for a deal that never ran."""

    name: str
    discharge: str
    charge: str
    current: float | None
    amount_wh: float | None
    t_start: float | None
    t_stop: float | None
    energy_wh: float | None
    state: str
    stop_reason: str

    @property
    def started(self) -> bool:
        return self.t_start is not None

    @property
    def normal(self) -> bool:
        """Ended as planned (state ``done``); the timeline marks the others."""
        return self.state.lower() == DONE


@dataclass(frozen=True)
class ComparisonRow:
    """One row of the with/without-interchange table.

    ``change`` is with minus without (percentage points for self-consumption); ``better`` says
    whether that change is an improvement (None: neither, or unknown).
    """

    quantity: str
    unit: str
    without: float | None
    with_: float | None
    change: float | None
    relative: float | None  # change / without, for Wh rows
    better: bool | None


#: (label, key, unit, +1 if more is better, -1 if less is better, 0 if neither).
COMPARISON = (
    ("Utility import", "utility_wh", "Wh", -1),
    ("PV generated", "pv_wh", "Wh", 0),
    ("PV used", "pv_used_wh", "Wh", 1),
    ("PV wasted", "pv_wasted_wh", "Wh", -1),
    ("Household load", "load_wh", "Wh", 0),
    ("Self-consumption", "self_consumption", "%", 1),
)


@dataclass
class UnitDeals:
    """What one unit did in the day's deals."""

    discharged: int = 0
    charged: int = 0
    sent_wh: float = 0.0
    received_wh: float = 0.0


@dataclass
class CommunityDay:
    """One community day as the report shows it."""

    name: str
    start_of_day: float = 0.0
    #: False when the line has no ``start_of_day``: times are then hours since the start.
    time_of_day: bool = True
    duration_s: float | None = None
    t: FloatArray = field(default_factory=lambda: np.zeros(0))
    soc: dict[str, FloatArray] = field(default_factory=dict)
    soc_limits: tuple[float | None, float | None] = (None, None)
    deals: list[CommunityDeal] = field(default_factory=list)
    refused: int | None = None
    with_interchange: EnergyTotals | None = None
    without_interchange: EnergyTotals | None = None
    per_unit: dict[str, UnitEnergy] = field(default_factory=dict)
    branches: dict[str, list[str]] = field(default_factory=dict)
    #: Optional facts of the negotiation: how many, units excluded (and why), safety trips.
    negotiations: int | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    trips: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[str]:
        """Every unit the line names: branch by branch if branches are given, then in the
        order of ``soc``, then those only deals or ``per_unit`` name."""
        seen: dict[str, None] = {}
        for members in self.branches.values():
            seen.update(dict.fromkeys(members))
        seen.update(dict.fromkeys(self.soc))
        for deal in self.deals:
            seen.update(dict.fromkeys(u for u in (deal.discharge, deal.charge) if u))
        seen.update(dict.fromkeys(self.per_unit))
        return list(seen)

    def branch_of(self, unit: str) -> str:
        return next((b for b, members in self.branches.items() if unit in members), "")

    @property
    def executed(self) -> list[CommunityDeal]:
        return [d for d in self.deals if d.started]

    @property
    def not_started(self) -> int:
        return sum(1 for d in self.deals if not d.started)

    @property
    def energy_exchanged_wh(self) -> float:
        return sum(d.energy_wh for d in self.executed if d.energy_wh is not None)

    @property
    def stop_reasons(self) -> list[tuple[str, int]]:
        """Stop reasons of the executed deals with their counts, most frequent first."""
        counted = Counter(d.stop_reason or d.state or "not recorded" for d in self.executed)
        return counted.most_common()

    @property
    def end_s(self) -> float:
        """The end of the day in seconds since its start (for open deals and axes)."""
        if self.duration_s is not None:
            return self.duration_s
        ends = [float(np.nanmax(self.t))] if np.isfinite(self.t).any() else []
        ends += [d.t_stop or d.t_start or 0.0 for d in self.deals]
        return max(ends, default=0.0)

    def hours(self, seconds: FloatArray | float) -> Any:
        """Seconds since the start → hours of the day (or since the start)."""
        return (np.asarray(seconds, dtype=float) + self.start_of_day) / 3600.0

    def max_concurrent(self) -> int:
        """The most deals that ran at the same time."""
        events = sorted(
            [(d.t_start, 1) for d in self.executed if d.t_start is not None]
            + [(d.t_stop, -1) for d in self.executed if d.t_stop is not None]
        )
        running = best = 0
        for _, step in events:
            running += step
            best = max(best, running)
        return best

    def unit_deals(self) -> dict[str, UnitDeals]:
        out = {u: UnitDeals() for u in self.units}
        for deal in self.executed:
            energy = deal.energy_wh or 0.0
            if deal.discharge in out:
                out[deal.discharge].discharged += 1
                out[deal.discharge].sent_wh += energy
            if deal.charge in out:
                out[deal.charge].charged += 1
                out[deal.charge].received_wh += energy
        return out

    def comparison(self) -> list[ComparisonRow]:
        """The community's totals with and without interchange, row by row."""
        rows = []
        for label, key, unit, sense in COMPARISON:
            without = _get(self.without_interchange, key)
            with_ = _get(self.with_interchange, key)
            scale = 100.0 if key == "self_consumption" else 1.0
            without = None if without is None else without * scale
            with_ = None if with_ is None else with_ * scale
            change = None if without is None or with_ is None else with_ - without
            relative = None
            if change is not None and unit == "Wh" and without:
                relative = change / abs(without)
            better = None
            if change is not None and sense and abs(change) > 1e-9:
                better = (change > 0) == (sense > 0)
            rows.append(ComparisonRow(label, unit, without, with_, change, relative, better))
        return rows


def _get(totals: EnergyTotals | None, key: str) -> float | None:
    value = None if totals is None else getattr(totals, key)
    return value if isinstance(value, float) else None


# -- parsing ---------------------------------------------------------------------------------


def parse_energy(value: Any, where: str, problems: list[str]) -> EnergyTotals | None:
    """An energy-totals object; missing keys are named in ``problems``. A missing
    ``self_consumption`` is computed as PV used / PV generated (and said so); without PV
    (``pv_wh`` 0) it is undefined and stays None."""
    if value is None:
        problems.append(f"{where} is missing")
        return None
    entry = mapping(value)
    if not entry:
        problems.append(f"{where} is not an object of energy totals ({text(value)[:40]!r})")
        return None
    found = {key: number(entry.get(key)) for key in ENERGY_KEYS}
    absent = [key for key, x in found.items() if x is None]
    if found["self_consumption"] is None and found["pv_wh"] == 0.0:
        absent.remove("self_consumption")  # no PV: self-consumption is undefined, not missing
    elif found["self_consumption"] is None and found["pv_used_wh"] is not None and found["pv_wh"]:
        found["self_consumption"] = found["pv_used_wh"] / found["pv_wh"]
        absent.remove("self_consumption")
        problems.append(f"{where}.self_consumption is missing; computed as PV used / PV")
    if absent:
        problems.append(f"{where} has no number for {', '.join(absent)}")
    return EnergyTotals(**found)


def _deal(item: Any, index: int, problems: list[str]) -> CommunityDeal | None:
    entry = mapping(item)
    if not entry:
        problems.append(f"deals[{index}] is not an object; it was left out")
        return None
    name = text(entry.get("name")) or f"deals[{index}]"
    deal = CommunityDeal(
        name=name,
        discharge=text(entry.get("discharge")),
        charge=text(entry.get("charge")),
        current=number(entry.get("current")),
        amount_wh=number(entry.get("amount_wh")),
        t_start=number(entry.get("t_start")),
        t_stop=number(entry.get("t_stop")),
        energy_wh=number(entry.get("energy_wh")),
        state=text(entry.get("state")),
        stop_reason=text(entry.get("stop_reason")),
    )
    missing = [side for side in ("discharge", "charge") if not getattr(deal, side)]
    if missing:
        problems.append(f"deal {name} names no {' and no '.join(missing)} unit")
    if deal.t_start is not None and deal.t_stop is not None and deal.t_stop < deal.t_start:
        problems.append(f"deal {name} stops ({deal.t_stop:g} s) before it starts; left out")
        return None
    if deal.t_start is not None and deal.t_stop is None:
        problems.append(f"deal {name} started but has no t_stop; drawn to the end of the day")
    return deal


def _soc(line: Mapping[str, Any], day: CommunityDay) -> None:
    raw = line.get("soc")
    series = mapping(raw)
    if not series:
        day.problems.append(
            "no SoC series (soc) in the line" if raw is None else "soc is not an object"
        )
    if day.t.size == 0 and series:
        day.problems.append("no SoC sample times (t); the SoC chart cannot be drawn")
        return
    for unit, values in series.items():
        y = floats(values)
        if len(y) != len(day.t):
            n = min(len(y), len(day.t))
            day.problems.append(
                f"soc of unit {unit} has {len(y)} values for {len(day.t)} times; "
                f"the first {n} are shown"
            )
            padded = np.full(len(day.t), np.nan)
            padded[:n] = y[:n]
            y = padded
        finite = y[np.isfinite(y)]
        if finite.size and (finite.min() < -0.01 or finite.max() > 1.01):
            day.problems.append(
                f"soc of unit {unit} leaves 0..1 ({finite.min():.3g} … {finite.max():.3g}); "
                "SoC is recorded as a fraction"
            )
        day.soc[unit] = y


def _limits(value: Any, day: CommunityDay) -> None:
    items = sequence(value)
    low, high = (number(items[0]), number(items[1])) if len(items) == 2 else (None, None)
    if low is None or high is None or low >= high:
        day.problems.append(
            "soc_limits is missing"
            if value is None
            else f"soc_limits {text(value)[:40]} is not "
            "[discharge limit, charge limit] with the first below the second"
        )
        return
    day.soc_limits = (low, high)


def _per_unit(value: Any, day: CommunityDay) -> None:
    if value is None:
        day.problems.append("per_unit is missing: no per-unit totals")
        return
    entries = mapping(value)
    if not entries:
        day.problems.append("per_unit is not an object of units")
    for unit, item in entries.items():
        runs = mapping(item)
        day.per_unit[unit] = UnitEnergy(
            parse_energy(runs.get(WITH), f"per_unit.{unit}.{WITH}", day.problems),
            parse_energy(runs.get(WITHOUT), f"per_unit.{unit}.{WITHOUT}", day.problems),
        )


def parse_community(line: Mapping[str, Any], number_: int) -> CommunityDay:
    """The community day of one record line (``number_``: its line number, for problems)."""
    day = CommunityDay(name=text(line.get("name")) or f"community day (line {number_})")
    raw_start = line.get("start_of_day")
    start = number(raw_start)
    if start is None:
        day.time_of_day = False
        what = "missing" if raw_start is None else f"not a number ({text(raw_start)[:20]})"
        day.problems.append(f"start_of_day is {what}: times are shown as hours since the start")
    else:
        day.start_of_day = start
    day.duration_s = number(line.get("duration_s"))
    raw_t = line.get("t")
    day.t = floats(raw_t)
    if raw_t is not None and not isinstance(raw_t, list | tuple):
        day.problems.append("t is not a list of sample times")
    _soc(line, day)
    _limits(line.get("soc_limits"), day)
    raw_deals = line.get("deals")
    if raw_deals is None:
        day.problems.append("deals is missing: no deal timeline")
    elif not isinstance(raw_deals, list | tuple):
        day.problems.append("deals is not a list: no deal timeline")
    for index, item in enumerate(sequence(raw_deals)):
        deal = _deal(item, index, day.problems)
        if deal is not None:
            day.deals.append(deal)
    refused = line.get("refused")
    if isinstance(refused, int) and not isinstance(refused, bool) and refused >= 0:
        day.refused = refused
    else:
        what = "missing" if refused is None else f"not a count ({text(refused)!r})"
        day.problems.append(f"refused is {what}")
    energy = mapping(line.get("energy"))
    if not energy:
        day.problems.append("energy is missing: the with/without-interchange comparison is unknown")
    else:
        day.with_interchange = parse_energy(energy.get(WITH), f"energy.{WITH}", day.problems)
        day.without_interchange = parse_energy(
            energy.get(WITHOUT), f"energy.{WITHOUT}", day.problems
        )
    _per_unit(line.get("per_unit"), day)
    for branch, members in mapping(line.get("branches")).items():
        day.branches[branch] = [text(m) for m in sequence(members) if text(m)]
    negotiations = line.get("negotiations")
    if isinstance(negotiations, int) and not isinstance(negotiations, bool):
        day.negotiations = negotiations
    excluded = mapping(line.get("excluded"))
    day.excluded = {unit: text(why, "no reason recorded") for unit, why in excluded.items()}
    day.trips = [text(trip) for trip in sequence(line.get("trips")) if text(trip)]
    return day
