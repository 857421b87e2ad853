"""An exchange (APIS: a *deal*) and the rules that decide whether it may run.

An :class:`Exchange` names the units that discharge (push current onto the bus) and those
that charge (draw from it), with their currents, an energy amount and/or a duration, and
optionally the unit that holds the bus voltage. :func:`plan_exchange` checks it against the
bench and what already runs on the bus, *before any instrument is touched*, and either
returns an :class:`ExchangePlan` (who is the voltage reference, which units go constant
current, which one compensation adjusts, whose battery the energy is counted on) or raises
``ExchangeError`` naming the rule the exchange breaks (``[rule same-direction]`` …).

Currents in an exchange are magnitudes; the plan's ``legs`` carry the toolkit's sign
convention (positive pushes into the bus). A unit's constant-current set-point is the sum
of its legs over every running exchange (APIS: the sum of its deals' currents).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from hil.errors import EnvelopeError, ExchangeError

if TYPE_CHECKING:
    from hil.units.bench import Bench

Side = Literal["charge", "discharge"]
SIDES: tuple[Side, ...] = ("charge", "discharge")

#: Discharge and charge currents of one exchange must agree to this (A).
BALANCE_TOLERANCE_A = 1e-6


class Rule(StrEnum):
    """The rules an exchange must keep; every refusal names one."""

    AMOUNT = "amount"  # a positive energy amount and/or duration
    ACCOUNTING_SIDE = "accounting-side"  # APIS gridMaster.deal.referenceSide
    UNIQUE_NAME = "unique-name"
    TWO_SIDES = "two-sides"  # at least one discharging and one charging unit
    KNOWN_UNIT = "known-unit"
    POSITIVE_CURRENT = "positive-current"
    ONE_DIRECTION = "one-direction"  # a unit is on one side of an exchange
    BALANCED = "balanced"  # Σ discharge currents = Σ charge currents
    CAPABILITY = "capability"  # a sink-only unit cannot discharge, …
    ENVELOPE = "envelope"  # the unit's envelope (current, power)
    SAME_DIRECTION = "same-direction"  # a unit's exchanges all go one way
    UNIT_CAPACITY = "unit-capacity"  # gridCurrentCapacityA
    CURRENT_SUM = "sum-of-exchange-currents"  # sumOfDealGridCurrentMaxA
    BRANCH_CAPACITY = "branch-capacity"  # branchCurrentCapacityA
    ONE_REFERENCE = "one-reference"  # one voltage reference per bus
    REFERENCE = "reference-capability"  # the reference can hold the bus
    REFERENCE_HEADROOM = "reference-headroom"  # the reference keeps room to regulate
    GLOBAL_STOP = "global-stop"  # errorSustainingMsec after an error


def refusal(rule: Rule, where: str, detail: str) -> ExchangeError:
    """The ``ExchangeError`` for breaking ``rule``; says nothing was touched."""
    return ExchangeError(
        f"{where}: {detail} [rule {rule.value}]; refused before any instrument was touched"
    )


def _frozen(side: Mapping[str, float]) -> Mapping[str, float]:
    if not isinstance(side, Mapping):
        raise TypeError(f"exchange sides are mappings unit → amps, got {side!r}")
    return MappingProxyType(dict(side))


@dataclass(frozen=True, eq=False)
class Exchange:
    """One exchange: who discharges and who charges how many amps, and how much energy.

    ``discharge``/``charge`` map unit ids to current magnitudes (A). The exchange ends
    when ``amount_wh`` has been counted or ``duration`` (s) has passed, whichever comes
    first. ``reference`` names the voltage-reference unit; by default the engine picks it
    (a large-capacity unit first, then the charging side). ``accounting_side`` is whose
    battery the energy is counted on (APIS ``referenceSide``, the charging unit).
    """

    discharge: Mapping[str, float]
    charge: Mapping[str, float]
    amount_wh: float | None = None
    duration: float | None = None
    reference: str | Sequence[str] | None = None
    accounting_side: str = "charge"
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "discharge", _frozen(self.discharge))
        object.__setattr__(self, "charge", _frozen(self.charge))
        if self.reference is not None and not isinstance(self.reference, str):
            object.__setattr__(self, "reference", tuple(self.reference))

    @classmethod
    def between(
        cls,
        source: str,
        sink: str,
        amps: float,
        *,
        amount_wh: float | None = None,
        duration: float | None = None,
        reference: str | None = None,
        name: str = "",
    ) -> Exchange:
        """A one-to-one exchange: ``source`` discharges ``amps`` into ``sink``."""
        return cls(
            {source: amps},
            {sink: amps},
            amount_wh=amount_wh,
            duration=duration,
            reference=reference,
            name=name,
        )

    @property
    def units(self) -> tuple[str, ...]:
        """Every unit of the exchange, discharging side first."""
        return (*self.discharge, *self.charge)

    @property
    def current(self) -> float:
        """The exchange current: the sum of the discharging units' currents (A)."""
        return float(sum(self.discharge.values()))

    def legs(self) -> dict[str, float]:
        """Unit → signed current (positive discharging), for a validated exchange."""
        legs = {uid: float(a) for uid, a in self.discharge.items()}
        legs.update({uid: -float(a) for uid, a in self.charge.items()})
        return legs

    def describe(self) -> str:
        """``E001 2 A → E003 2 A, 100 Wh`` — for messages and records."""

        def side(amps: Mapping[str, float]) -> str:
            return " + ".join(f"{uid} {a:g} A" for uid, a in amps.items()) or "nobody"

        ends = []
        if self.amount_wh is not None:
            ends.append(f"{self.amount_wh:g} Wh")
        if self.duration is not None:
            ends.append(f"{self.duration:g} s")
        return f"{side(self.discharge)} → {side(self.charge)}" + (
            f", {' or '.join(ends)}" if ends else ""
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "discharge": dict(self.discharge),
            "charge": dict(self.charge),
            "amount_wh": self.amount_wh,
            "duration": self.duration,
            "reference": self.reference,
            "accounting_side": self.accounting_side,
        }


@dataclass(frozen=True)
class BusLoad:
    """What already runs on the bus, as the rules need it (the engine provides it)."""

    legs: Mapping[str, float] = field(default_factory=dict)  # unit → Σ signed legs
    reference: str | None = None  # the voltage reference, None while the bus is down
    current_sum: float = 0.0  # Σ exchange currents of the running exchanges
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExchangePlan:
    """How one checked exchange will run.

    ``cc_units`` go constant current in warm-up order (sides interleaved, so the voltage
    reference never carries more than one step of imbalance); ``adjuster`` is the unit
    whose set-point current compensation moves; ``accounting_units`` are those whose
    battery power is integrated into the exchange's energy.
    """

    exchange: Exchange
    name: str
    legs: Mapping[str, float]
    reference: str
    activates_bus: bool
    cc_units: tuple[str, ...]
    adjuster: str
    accounting_units: tuple[str, ...]

    @property
    def reference_is_member(self) -> bool:
        return self.reference in self.legs

    def side_of(self, unit_id: str) -> Side:
        return "discharge" if self.legs[unit_id] > 0 else "charge"


def _positive(value: float | None) -> bool:
    return (
        value is not None
        and not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )


def reference_problem(bench: Bench, uid: str, leg: float) -> str | None:
    """Why ``uid`` cannot hold the bus while carrying ``leg`` A (0: not in the exchange)."""
    unit = bench.units[uid]
    caps, env = unit.capabilities, unit.envelope
    sink = caps.can_sink and env.can_sink
    source = caps.can_source and env.can_source
    if not caps.can_hold_voltage:
        return f"unit {uid} cannot hold the bus voltage"
    if leg < 0 and not sink:
        return f"unit {uid} charges in this exchange but cannot sink as the reference"
    if leg > 0 and not source:
        return f"unit {uid} discharges in this exchange but cannot source as the reference"
    if leg == 0 and not (sink and source):
        return f"unit {uid} is not in the exchange, so as its reference it must source and sink"
    if not (sink and source):
        return (
            f"unit {uid} can only {'source' if source else 'sink'}, but a voltage reference must "
            "pull the bus down as well as up (authorization moves, deactivation)"
        )
    nominal = bench.config.apis.operation_voltage
    if not env.voltage_min <= nominal <= env.voltage_max:
        return (
            f"unit {uid}'s voltage window {env.voltage_min:g}-{env.voltage_max:g} V does not "
            f"hold the operation voltage {nominal:g} V"
        )
    return None


def pick_reference(
    bench: Bench, legs: Mapping[str, float], reference_side: Side
) -> tuple[str | None, list[str]]:
    """The unit of ``legs`` that should hold the bus, by APIS's rule: a large-capacity unit
    first, then the ``reference_side`` (APIS ``masterSide``), then the other side; with the
    reasons the others were passed over."""
    large = set(bench.config.large_capacity_unit_ids)
    preferred = [uid for uid in legs if (legs[uid] < 0) == (reference_side == "charge")]
    others = [uid for uid in legs if uid not in preferred]
    ordered = [uid for uid in legs if uid in large] + preferred + others
    reasons: list[str] = []
    for uid in dict.fromkeys(ordered):
        why = reference_problem(bench, uid, legs[uid])
        if why is None:
            return uid, reasons
        reasons.append(why)
    return None, reasons


class _Planner:
    """Applies the rules in a fixed order; the first broken one is reported."""

    def __init__(self, exchange: Exchange, bench: Bench, load: BusLoad, name: str) -> None:
        self.ex = exchange
        self.bench = bench
        self.load = load
        self.name = name
        self.policy = bench.config.apis
        self.where = f"exchange {name + ' ' if name else ''}({exchange.describe()})"

    def fail(self, rule: Rule, detail: str) -> ExchangeError:
        return refusal(rule, self.where, detail)

    def plan(self, reference_side: Side) -> ExchangePlan:
        self._check_form()
        legs = self.ex.legs()
        self._check_units(legs)
        reference = self._reference(legs, reference_side)
        self._check_bus(legs, reference)
        cc = [uid for uid in legs if uid != reference]
        discharging = [uid for uid in cc if legs[uid] > 0]
        charging = [uid for uid in cc if legs[uid] < 0]
        order: list[str] = []
        for i in range(max(len(discharging), len(charging))):
            order.extend(side[i] for side in (discharging, charging) if i < len(side))
        pool = cc
        if reference in legs:
            pool = [uid for uid in cc if (legs[uid] > 0) != (legs[reference] > 0)] or cc
        adjuster = max(pool, key=lambda uid: abs(legs[uid]))
        accounting = tuple(
            uid for uid in legs if (legs[uid] < 0) == (self.ex.accounting_side == "charge")
        )
        return ExchangePlan(
            exchange=self.ex,
            name=self.name,
            legs=MappingProxyType(legs),
            reference=reference,
            activates_bus=self.load.reference is None,
            cc_units=tuple(order),
            adjuster=adjuster,
            accounting_units=accounting,
        )

    # -- the exchange alone ------------------------------------------------------------
    def _check_form(self) -> None:
        ex = self.ex
        for what, value in (("amount_wh", ex.amount_wh), ("duration", ex.duration)):
            if value is not None and not _positive(value):
                raise self.fail(Rule.AMOUNT, f"{what} = {value!r} must be a number > 0")
        if ex.amount_wh is None and ex.duration is None:
            raise self.fail(Rule.AMOUNT, "give an energy amount (amount_wh) or a duration")
        if ex.accounting_side not in SIDES:
            raise self.fail(
                Rule.ACCOUNTING_SIDE,
                f"accounting_side {ex.accounting_side!r} is not one of {', '.join(SIDES)}",
            )
        if self.name in self.load.names:
            raise self.fail(Rule.UNIQUE_NAME, f"an exchange named {self.name!r} is running")
        if not ex.discharge or not ex.charge:
            raise self.fail(
                Rule.TWO_SIDES, "an exchange needs at least one discharging and one charging unit"
            )
        known = self.bench.config.unit_ids
        named = list(ex.units)
        refs = [ex.reference] if isinstance(ex.reference, str) else list(ex.reference or ())
        for uid in [*named, *refs]:
            if uid not in known:
                raise self.fail(
                    Rule.KNOWN_UNIT,
                    f"unknown unit {uid!r}; units on this bench: {', '.join(known)}",
                )
        for side, amps in (("discharge", ex.discharge), ("charge", ex.charge)):
            for uid, value in amps.items():
                if not _positive(value):
                    raise self.fail(
                        Rule.POSITIVE_CURRENT,
                        f"{side} current of unit {uid} is {value!r}; it must be a number > 0 A "
                        "(the side gives the direction)",
                    )
        both = sorted(set(ex.discharge) & set(ex.charge))
        if both:
            raise self.fail(
                Rule.ONE_DIRECTION,
                f"unit {', '.join(both)} would discharge and charge in the same exchange",
            )
        out, into = ex.current, float(sum(ex.charge.values()))
        if abs(out - into) > BALANCE_TOLERANCE_A:
            raise self.fail(
                Rule.BALANCED,
                f"the discharging units push {out:g} A but the charging units draw {into:g} A; "
                "the two sides must carry the same current",
            )
        if len(set(refs)) > 1:
            raise self.fail(
                Rule.ONE_REFERENCE,
                f"{len(set(refs))} voltage references named ({', '.join(refs)}); a bus has one",
            )

    def _check_units(self, legs: Mapping[str, float]) -> None:
        policy = self.policy
        for uid, leg in legs.items():
            unit = self.bench.units[uid]
            caps, env = unit.capabilities, unit.envelope
            if leg > 0 and not (caps.can_source and env.can_source):
                raise self.fail(
                    Rule.CAPABILITY, f"unit {uid} can only sink, so it cannot discharge {leg:g} A"
                )
            if leg < 0 and not (caps.can_sink and env.can_sink):
                raise self.fail(
                    Rule.CAPABILITY, f"unit {uid} can only source, so it cannot charge {-leg:g} A"
                )
            running = self.load.legs.get(uid, 0.0)
            if running * leg < 0:
                raise self.fail(
                    Rule.SAME_DIRECTION,
                    f"unit {uid} already {'discharges' if running > 0 else 'charges'} "
                    f"{abs(running):g} A in running exchanges; a unit's exchanges must all go "
                    "the same direction",
                )
            total = running + leg
            try:
                env.check_current(leg, at_voltage=env.voltage_max)
                env.check_current(total, at_voltage=env.voltage_max)
            except EnvelopeError as exc:
                detail = str(exc).split("; refused before", 1)[0]
                raise self.fail(Rule.ENVELOPE, detail) from None
            if abs(total) > policy.unit_current_capacity + 1e-9:
                raise self.fail(
                    Rule.UNIT_CAPACITY,
                    f"unit {uid} would carry {abs(total):g} A "
                    f"({abs(running):g} A running + {abs(leg):g} A), above its capacity "
                    f"{policy.unit_current_capacity:g} A (gridCurrentCapacityA)",
                )

    # -- the reference -------------------------------------------------------------------
    def _reference(self, legs: Mapping[str, float], reference_side: Side) -> str:
        ex, load = self.ex, self.load
        explicit = (
            ex.reference if isinstance(ex.reference, str) else next(iter(ex.reference or ()), None)
        )
        if load.reference is not None:
            if explicit is not None and explicit != load.reference:
                raise self.fail(
                    Rule.ONE_REFERENCE,
                    f"unit {explicit} is named as voltage reference, but unit {load.reference} "
                    "already holds the bus; one voltage reference per bus",
                )
            self._check_successor(legs, reference_side, load.reference)
            return load.reference
        if explicit is not None:
            why = reference_problem(self.bench, explicit, legs.get(explicit, 0.0))
            if why is not None:
                raise self.fail(Rule.REFERENCE, why)
            return explicit
        chosen, reasons = pick_reference(self.bench, legs, reference_side)
        if chosen is None:
            raise self.fail(
                Rule.REFERENCE,
                "no unit of the exchange can be the voltage reference: " + "; ".join(reasons),
            )
        return chosen

    def _check_successor(self, legs: Mapping[str, float], side: Side, holder: str) -> None:
        """An exchange that joins a held bus may outlive the exchanges that hold it; APIS's
        hand-over then passes the reference to a unit of the exchanges still running. So
        every exchange must have a unit that could hold the bus on its own, or a hand-over
        would find none half-way through a run."""
        if holder in legs:
            return
        chosen, reasons = pick_reference(self.bench, legs, side)
        if chosen is None:
            raise self.fail(
                Rule.REFERENCE,
                f"unit {holder} holds the bus now, but none of this exchange's units could take "
                "over the voltage reference if the running exchanges end first: "
                + "; ".join(reasons),
            )

    # -- the bus ------------------------------------------------------------------------
    def _check_bus(self, legs: Mapping[str, float], reference: str) -> None:
        self._check_headroom(legs, reference)
        bus = self.bench.config.envelope.bus
        limit = min(bus.exchange_current_sum_max, self.policy.deal_current_sum_max)
        total = self.load.current_sum + self.ex.current
        if total > limit + 1e-9:
            raise self.fail(
                Rule.CURRENT_SUM,
                f"the exchanges on the bus would sum to {total:g} A "
                f"({self.load.current_sum:g} A running + {self.ex.current:g} A), above "
                f"{limit:g} A (sumOfDealGridCurrentMaxA)",
            )
        topology = self.bench.config.topology
        if topology is None or not topology.check_enabled:
            return
        projected = dict(self.load.legs)
        for uid, leg in legs.items():
            projected[uid] = projected.get(uid, 0.0) + leg
        for branch in topology.branches.values():
            amps = sum(projected.get(uid, 0.0) for uid in branch.unit_ids)
            if abs(amps) > branch.capacity + 1e-9:
                raise self.fail(
                    Rule.BRANCH_CAPACITY,
                    f"branch {branch.id} would carry {abs(amps):g} A, above its capacity "
                    f"{branch.capacity:g} A (branchCurrentCapacityA)",
                )

    def _check_headroom(self, legs: Mapping[str, float], reference: str) -> None:
        """The reference absorbs the bus's imbalance (bleed, losses, meter errors) on top of
        its own legs, so those may use its capacity only up to one current allowance below."""
        carried = self.load.legs.get(reference, 0.0) + legs.get(reference, 0.0)
        if carried == 0:
            return
        env = self.bench.units[reference].envelope
        cap = min(
            env.current_source_max if carried > 0 else env.current_sink_max,
            self.policy.unit_current_capacity,
        )
        room = cap - self.policy.current_allowance
        if abs(carried) > room + 1e-9:
            raise self.fail(
                Rule.REFERENCE_HEADROOM,
                f"the voltage reference {reference} would carry {abs(carried):g} A of exchanges, "
                f"above {room:g} A: its capacity {cap:g} A less one current allowance "
                f"{self.policy.current_allowance:g} A (gridCurrentAllowanceA) to regulate the bus",
            )


def plan_exchange(
    exchange: Exchange,
    bench: Bench,
    load: BusLoad | None = None,
    *,
    name: str | None = None,
    reference_side: Side = "charge",
) -> ExchangePlan:
    """Check ``exchange`` against ``bench`` and the running ``load``; no I/O.

    ``name`` defaults to the exchange's own; ``reference_side`` is the side whose unit
    becomes the voltage reference when nothing else decides (APIS ``masterSide``).
    Raises ``ExchangeError`` naming the broken rule.
    """
    label = name or exchange.name
    return _Planner(exchange, bench, load or BusLoad(), label).plan(reference_side)
