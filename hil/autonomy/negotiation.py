"""APIS's autonomous deal making as pure logic: requests, accepts, selection, deals.

No I/O and no clock: every function takes what a unit knows of itself (a
:class:`UnitView`), the time slot of its scenario and the :class:`~hil.config.deal_policy.
DealPolicy`, and returns a decision. :mod:`hil.autonomy.agents` runs this on a bench.

As APIS (apis-main's ``HouseKeeping``, ``Negotiation``, ``MediatorRequestHandling``,
``SimpleScenarioEvaluationImpl``; ``shared/reference/apis-control.md``):

- **request** — a unit in ``autonomous`` mode, without errors and in fewer deals than its
  interlock capacity (⌊``gridCurrentCapacityA`` / deal current⌋) looks up the status of
  its remaining Wh; if the status has a request entry (``charge`` first, as APIS) it asks
  for ``limitWh - remaining`` (charge) or ``remaining - limitWh`` (discharge), sent only
  if above ``amountMinWh``, at its ``pointPerWh`` and the policy's deal current;
- **accept** — every other such unit whose status has an accept entry of the opposite
  direction, whose pair rules allow it (the request's ``pairUnitId`` names it, the
  accept's names the requester) answers with its own amount (same formula against its
  accept ``limitWh``), if above ``amountMinWh``;
- **selection** after the negotiation timeout, by the requester's strategy: ``amount``
  (largest amount) or ``pointAndAmount`` (a charge request takes the lowest price at or
  below its own, a discharge request the highest at or above its own; accepts without a
  price do not count; equal prices → larger amount). A request with a ``pairUnitId``
  considers only that unit's accept. Accepts arrive in an order drawn from the
  :class:`Mediator`'s seeded generator; a tie in everything goes to the first arrival;
- **deal** — amount = min(request, accept), capped at ``amountMaxWh``, floored to a
  multiple of ``amountUnitWh``, dropped below ``amountMinWh``; current = the smaller offer;
  price = the charging side's.

Besides APIS: a unit's deals all go one way (APIS's interlock refuses mixed directions
later; here the unit neither requests nor accepts the other way), a battery that forbids
a direction neither requests nor accepts it, and a unit at or beyond a force-stop limit
(discharging at SoC ≤ ``dischargeUnitLowerLimitRsoc``, charging at ≥
``chargeUnitUpperLimitRsoc``) does not offer a deal the engine would stop at once.

:class:`Conditions` holds every unit's scenario and operation mode; its
:meth:`~Conditions.push_scenario` is the central operator replacing everyone's conditions
at once. Units in ``manual``, ``stop`` (or ``heteronomous``) mode do not negotiate.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hil.config.deal_policy import OPERATION_MODES, DealPolicy, OperationMode
from hil.config.scenario import Direction, Scenario, Strategy, TimeSlot, opposite
from hil.errors import ConfigError

BOTH: frozenset[Direction] = frozenset({"charge", "discharge"})


@dataclass(frozen=True)
class UnitView:
    """What a unit knows of itself when it decides (APIS: its ``unitData``).

    ``remaining_wh`` is APIS's ``remaining_capacity_wh`` (whole Wh); ``deal_count`` and
    ``deal_direction`` describe the deals it is in; ``allowed`` the directions its battery
    permits; ``healthy`` is False while it has an error (it then neither requests nor
    accepts)."""

    unit_id: str
    remaining_wh: int
    capacity_wh: float
    mode: OperationMode = "autonomous"
    deal_count: int = 0
    deal_direction: Direction | None = None
    allowed: frozenset[Direction] = BOTH
    healthy: bool = True

    @property
    def soc(self) -> float:
        return self.remaining_wh / self.capacity_wh


@dataclass(frozen=True)
class Request:
    """A unit's broadcast request (APIS: ``type``, ``amountWh``, ``pointPerWh`` …)."""

    unit_id: str
    direction: Direction
    amount_wh: int
    point_per_wh: float | None
    pair_unit_id: str | None
    deal_current: float
    status: str
    slot: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Accept:
    """A unit's answer to a request; ``direction`` is the accepting unit's own."""

    unit_id: str
    direction: Direction
    amount_wh: int
    point_per_wh: float | None
    pair_unit_id: str | None
    deal_current: float
    status: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Deal:
    """A deal: ``discharge_unit_id`` pushes ``current`` A into ``charge_unit_id`` until
    ``amount_wh`` has been delivered. ``point_per_wh`` is the charging side's price."""

    request_unit_id: str
    accept_unit_id: str
    direction: Direction  # the request's type
    charge_unit_id: str
    discharge_unit_id: str
    amount_wh: int
    current: float
    point_per_wh: float | None
    request_amount_wh: int
    accept_amount_wh: int

    @property
    def units(self) -> tuple[str, str]:
        return (self.discharge_unit_id, self.charge_unit_id)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _idle_reason(view: UnitView, policy: DealPolicy) -> str | None:
    """Why ``view``'s unit takes no part in negotiation now (None: it may)."""
    if view.mode != "autonomous":
        return f"operation mode {view.mode}"
    if not view.healthy:
        return "the unit has an error"
    if view.deal_count >= policy.deal_interlock_capacity:
        return (
            f"in {view.deal_count} deals, its interlock capacity "
            f"{policy.deal_interlock_capacity} (gridCurrentCapacityA / deal current)"
        )
    return None


def _direction_reason(view: UnitView, direction: Direction, policy: DealPolicy) -> str | None:
    """Why ``view``'s unit cannot take a deal of ``direction`` now (None: it can)."""
    if view.deal_direction is not None and view.deal_direction != direction:
        return f"its deals go the other way ({view.deal_direction})"
    if direction not in view.allowed:
        return f"its battery does not permit {direction}"
    if direction == "discharge" and view.soc <= policy.soc_force_stop_discharge:
        return f"SoC {view.soc:.3g} is at or below the discharge force-stop limit"
    if direction == "charge" and view.soc >= policy.soc_force_stop_charge:
        return f"SoC {view.soc:.3g} is at or above the charge force-stop limit"
    return None


def make_request(view: UnitView, slot: TimeSlot | None, policy: DealPolicy) -> Request | None:
    """The request ``view``'s unit broadcasts now, or None (APIS ``checkStatus``)."""
    if slot is None or _idle_reason(view, policy) is not None:
        return None
    status = slot.status(view.remaining_wh)
    if status is None:
        return None
    cond = slot.request_condition(status)
    if cond is None or _direction_reason(view, cond.direction, policy) is not None:
        return None
    amount = cond.amount_wh(view.remaining_wh)
    if amount <= policy.amount_min_wh:
        return None
    return Request(
        unit_id=view.unit_id,
        direction=cond.direction,
        amount_wh=amount,
        point_per_wh=cond.point_per_wh,
        pair_unit_id=cond.pair_unit_id,
        deal_current=policy.deal_current,
        status=status,
        slot=slot.key,
    )


def make_accept(
    view: UnitView, slot: TimeSlot | None, policy: DealPolicy, request: Request
) -> Accept | None:
    """``view``'s unit's answer to ``request``, or None (APIS ``treatRequest``)."""
    if view.unit_id == request.unit_id or slot is None:
        return None
    if request.pair_unit_id is not None and request.pair_unit_id != view.unit_id:
        return None
    if _idle_reason(view, policy) is not None:
        return None
    direction = opposite(request.direction)
    if _direction_reason(view, direction, policy) is not None:
        return None
    status = slot.status(view.remaining_wh)
    if status is None:
        return None
    cond = slot.accept_condition(status, direction)
    if cond is None or (cond.pair_unit_id is not None and cond.pair_unit_id != request.unit_id):
        return None
    amount = cond.amount_wh(view.remaining_wh)
    if amount <= policy.amount_min_wh:
        return None
    return Accept(
        unit_id=view.unit_id,
        direction=direction,
        amount_wh=amount,
        point_per_wh=cond.point_per_wh,
        pair_unit_id=cond.pair_unit_id,
        deal_current=policy.deal_current,
        status=status,
    )


def select_accept(request: Request, accepts: Sequence[Accept], strategy: Strategy) -> Accept | None:
    """The accept ``request``'s unit chooses (APIS ``chooseAccept``); ``accepts`` in order
    of arrival: a complete tie goes to the first."""
    if request.pair_unit_id is not None:
        accepts = [a for a in accepts if a.unit_id == request.pair_unit_id]
    best: Accept | None = None
    if strategy == "amount":
        for acc in accepts:
            if acc.amount_wh > 0 and (best is None or acc.amount_wh > best.amount_wh):
                best = acc
        return best
    own = request.point_per_wh
    if own is None:
        return None
    charge = request.direction == "charge"
    for acc in accepts:
        price = acc.point_per_wh
        if price is None or acc.amount_wh <= 0:
            continue
        if (price > own) if charge else (price < own):
            continue
        if best is None:
            best = acc
            continue
        assert best.point_per_wh is not None
        better = price < best.point_per_wh if charge else price > best.point_per_wh
        if better or (price == best.point_per_wh and acc.amount_wh > best.amount_wh):
            best = acc
    return best


def deal_amount(request_wh: int, accept_wh: int, policy: DealPolicy) -> int:
    """min(request, accept), capped at ``amountMaxWh``, floored to ``amountUnitWh``; 0 when
    below ``amountMinWh`` (no deal)."""
    amount = min(request_wh, accept_wh, policy.amount_max_wh)
    amount = (amount // policy.amount_unit_wh) * policy.amount_unit_wh
    return amount if amount >= policy.amount_min_wh else 0


def make_deal(request: Request, accept: Accept, policy: DealPolicy) -> Deal | None:
    """The deal of ``request`` and its chosen ``accept`` (APIS ``Negotiation``), or None
    when the amount rounds below ``amountMinWh`` or a current is not positive."""
    amount = deal_amount(request.amount_wh, accept.amount_wh, policy)
    if amount <= 0 or not (request.deal_current > 0 and accept.deal_current > 0):
        return None
    charge_is_request = request.direction == "charge"
    return Deal(
        request_unit_id=request.unit_id,
        accept_unit_id=accept.unit_id,
        direction=request.direction,
        charge_unit_id=request.unit_id if charge_is_request else accept.unit_id,
        discharge_unit_id=accept.unit_id if charge_is_request else request.unit_id,
        amount_wh=amount,
        current=min(request.deal_current, accept.deal_current),
        point_per_wh=request.point_per_wh if charge_is_request else accept.point_per_wh,
        request_amount_wh=request.amount_wh,
        accept_amount_wh=accept.amount_wh,
    )


def deal_problem(deal: Deal, views: Mapping[str, UnitView], policy: DealPolicy) -> str | None:
    """Why ``deal`` cannot start given what its two units are doing now (APIS: the
    interlocks taken when a deal is created), or None."""
    sides: tuple[tuple[str, Direction], ...] = (
        (deal.discharge_unit_id, "discharge"),
        (deal.charge_unit_id, "charge"),
    )
    for uid, direction in sides:
        view = views.get(uid)
        if view is None:
            return f"unit {uid} is not in negotiation"
        why = _idle_reason(view, policy) or _direction_reason(view, direction, policy)
        if why is not None:
            return f"unit {uid}: {why}"
    return None


# =========================================================================================
# Everyone's conditions, and one negotiation
# =========================================================================================


class Conditions:
    """Every unit's scenario and operation mode.

    Each unit decides on its own scenario; :meth:`push_scenario` is the central operator
    replacing every unit's scenario at once (``version`` counts the pushes)."""

    def __init__(
        self,
        unit_ids: Iterable[str],
        scenario: Scenario,
        *,
        mode: OperationMode = "autonomous",
    ) -> None:
        self._scenarios: dict[str, Scenario] = {}
        self._modes: dict[str, OperationMode] = {}
        for uid in unit_ids:
            self._scenarios[uid] = scenario
            self._modes[uid] = mode
        if not self._scenarios:
            raise ConfigError("conditions: no unit to give a scenario to")
        self._check_mode(mode)
        self.version = 0

    @property
    def unit_ids(self) -> tuple[str, ...]:
        return tuple(self._scenarios)

    def _known(self, unit_id: str) -> None:
        if unit_id not in self._scenarios:
            raise ConfigError(
                f"conditions: unknown unit {unit_id!r}; units: {', '.join(self._scenarios)}"
            )

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in OPERATION_MODES:
            raise ConfigError(
                f"conditions: operation mode {mode!r} is not one of {', '.join(OPERATION_MODES)}"
            )

    def scenario(self, unit_id: str) -> Scenario:
        self._known(unit_id)
        return self._scenarios[unit_id]

    def mode(self, unit_id: str) -> OperationMode:
        self._known(unit_id)
        return self._modes[unit_id]

    def slot(self, unit_id: str, second_of_day: float) -> TimeSlot | None:
        """The time slot of ``unit_id``'s scenario at ``second_of_day``."""
        return self.scenario(unit_id).slot_at(second_of_day)

    def set_scenario(self, unit_id: str, scenario: Scenario) -> None:
        """Give one unit its own scenario."""
        self._known(unit_id)
        self._scenarios[unit_id] = scenario

    def push_scenario(self, scenario: Scenario) -> int:
        """Replace every unit's scenario at once (the central operator); the new version."""
        for uid in self._scenarios:
            self._scenarios[uid] = scenario
        self.version += 1
        return self.version

    def set_mode(self, mode: OperationMode, unit_ids: Iterable[str] | None = None) -> None:
        """Set the operation mode of ``unit_ids`` (default: every unit)."""
        self._check_mode(mode)
        targets = list(self._scenarios) if unit_ids is None else list(unit_ids)
        for uid in targets:
            self._known(uid)
            self._modes[uid] = mode


@dataclass
class Negotiation:
    """One negotiation: the request, the accepts in arrival order, the choice, the deal."""

    request: Request
    t_request: float
    accepts: list[Accept] = field(default_factory=list)
    chosen: Accept | None = None
    deal: Deal | None = None
    t_select: float | None = None
    outcome: str = "open"

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request.as_dict(),
            "t_request": self.t_request,
            "accepts": [a.as_dict() for a in self.accepts],
            "chosen": None if self.chosen is None else self.chosen.unit_id,
            "deal": None if self.deal is None else self.deal.as_dict(),
            "t_select": self.t_select,
            "outcome": self.outcome,
        }


class Mediator:
    """Runs negotiations on :class:`Conditions` and a :class:`DealPolicy`; deterministic
    for a given ``seed`` (it draws only the arrival order of accepts)."""

    def __init__(self, conditions: Conditions, policy: DealPolicy, *, seed: int = 0) -> None:
        self.conditions = conditions
        self.policy = policy
        self._rng = random.Random(seed)

    def view_mode(self, view: UnitView) -> UnitView:
        """``view`` with its unit's operation mode from the conditions."""
        mode = self.conditions.mode(view.unit_id)
        return view if view.mode == mode else dataclasses.replace(view, mode=mode)

    def request(self, view: UnitView, second_of_day: float, t: float) -> Negotiation | None:
        """House-keeping of ``view``'s unit: its request as an open negotiation, or None."""
        view = self.view_mode(view)
        slot = self.conditions.slot(view.unit_id, second_of_day)
        request = make_request(view, slot, self.policy)
        return None if request is None else Negotiation(request, t)

    def collect(
        self, negotiation: Negotiation, views: Mapping[str, UnitView], second_of_day: float
    ) -> list[Accept]:
        """Every other unit evaluates the request locally; accepts in arrival order."""
        request = negotiation.request
        accepts = []
        for uid in sorted(views):
            if uid == request.unit_id:
                continue
            view = self.view_mode(views[uid])
            accept = make_accept(
                view, self.conditions.slot(uid, second_of_day), self.policy, request
            )
            if accept is not None:
                accepts.append(accept)
        self._rng.shuffle(accepts)
        negotiation.accepts = accepts
        return accepts

    def select(self, negotiation: Negotiation, second_of_day: float, t: float) -> Deal | None:
        """After the negotiation timeout: choose by the requester's strategy (its slot at
        ``second_of_day``; in a gap nothing is chosen) and make the deal."""
        negotiation.t_select = t
        slot = self.conditions.slot(negotiation.request.unit_id, second_of_day)
        if slot is None:
            negotiation.outcome = "no time slot at selection"
            return None
        chosen = select_accept(negotiation.request, negotiation.accepts, slot.strategy)
        negotiation.chosen = chosen
        if chosen is None:
            negotiation.outcome = "no accept chosen" if negotiation.accepts else "no accept"
            return None
        deal = make_deal(negotiation.request, chosen, self.policy)
        negotiation.deal = deal
        negotiation.outcome = "deal" if deal is not None else "amount below amountMinWh"
        return deal


def remaining_wh(soc: float, capacity_wh: float) -> int:
    """APIS's ``remaining_capacity_wh``: capacity x SoC, in whole Wh (rounded down)."""
    if not (math.isfinite(soc) and math.isfinite(capacity_wh)):
        raise ValueError(f"remaining energy of SoC {soc!r} x {capacity_wh!r} Wh is not finite")
    return math.floor(max(soc, 0.0) * capacity_wh + 1e-9)
