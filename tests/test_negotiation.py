"""The pure deal-making logic: requests, accepts, selection strategies, deal amounts and
currents, the capacity interlock, operation modes, ``push_scenario`` and determinism."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.autonomy.negotiation import (
    Accept,
    Conditions,
    Mediator,
    Request,
    UnitView,
    deal_amount,
    deal_problem,
    make_accept,
    make_deal,
    make_request,
    remaining_wh,
    select_accept,
)
from hil.config.deal_policy import DealPolicy
from hil.config.scenario import Direction, Scenario, TimeSlot, parse_scenario

POLICY = DealPolicy(deal_current=1.0, amount_min_wh=50, amount_max_wh=200, amount_unit_wh=50)


def oist_slot(strategy: str = "amount", **conditions: Any) -> dict[str, Any]:
    """APIS's exe-scenario slot (four statuses), optionally with other conditions."""
    return {
        "batteryStatus": {
            "4320-": "excess",
            "3600-4320": "sufficient",
            "2880-3600": "scarce",
            "-2880": "short",
        },
        "request": conditions.get(
            "request",
            {
                "excess": {"discharge": {"limitWh": 4320, "pointPerWh": 10}},
                "short": {"charge": {"limitWh": 2880, "pointPerWh": 10}},
            },
        ),
        "accept": conditions.get(
            "accept",
            {
                "excess": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
                "sufficient": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
                "scarce": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
                "short": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
            },
        ),
        "acceptSelection": {"strategy": strategy},
    }


def day(**slot_args: Any) -> Scenario:
    return parse_scenario({"00:00:00-24:00:00": oist_slot(**slot_args)})


SLOT: TimeSlot = day().slots[0]


def view(uid: str, wh: int, **kw: Any) -> UnitView:
    return UnitView(uid, wh, 4800.0, **kw)


def request(
    uid: str = "A", direction: Direction = "charge", amount: int = 1000, **kw: Any
) -> Request:
    fields: dict[str, Any] = {
        "point_per_wh": 10.0,
        "pair_unit_id": None,
        "deal_current": 1.0,
        "status": "short",
        "slot": SLOT.key,
    }
    fields.update(kw)
    return Request(uid, direction, amount, **fields)


def accept(
    uid: str,
    amount: int,
    price: float | None = 10.0,
    direction: Direction = "discharge",
    current: float = 1.0,
) -> Accept:
    return Accept(uid, direction, amount, price, None, current, "excess")


# -- requests ---------------------------------------------------------------------------------


def test_request_amounts_follow_the_status_and_limit() -> None:
    short = make_request(view("A", 1440), SLOT, POLICY)
    assert short is not None
    assert (short.direction, short.amount_wh, short.point_per_wh) == ("charge", 1440, 10.0)
    assert (short.status, short.deal_current, short.slot) == ("short", 1.0, "00:00:00-24:00:00")
    excess = make_request(view("B", 4800), SLOT, POLICY)
    assert excess is not None and (excess.direction, excess.amount_wh) == ("discharge", 480)
    assert make_request(view("C", 4000), SLOT, POLICY) is None  # sufficient: no request
    assert make_request(view("D", 3000), SLOT, POLICY) is None  # scarce: no request
    # APIS sends a request only above amountMinWh
    assert make_request(view("E", 4370), SLOT, POLICY) is None  # 50 Wh, not above 50
    assert make_request(view("E", 4371), SLOT, POLICY) is not None


@pytest.mark.parametrize("mode", ["manual", "stop", "heteronomous"])
def test_units_not_in_autonomous_mode_neither_request_nor_accept(mode: str) -> None:
    assert make_request(view("A", 1000, mode=mode), SLOT, POLICY) is None
    assert make_accept(view("B", 4800, mode=mode), SLOT, POLICY, request()) is None


def test_capacity_interlock_and_errors_and_directions_stop_requests() -> None:
    assert POLICY.deal_interlock_capacity == 2  # ⌊2.3 A / 1 A⌋
    assert make_request(view("A", 1000, deal_count=1, deal_direction="charge"), SLOT, POLICY)
    assert (
        make_request(view("A", 1000, deal_count=2, deal_direction="charge"), SLOT, POLICY) is None
    )
    two_amps = POLICY.replace(deal_current=2.0)
    assert two_amps.deal_interlock_capacity == 1
    assert (
        make_request(view("A", 1000, deal_count=1, deal_direction="charge"), SLOT, two_amps) is None
    )
    assert make_request(view("A", 1000, healthy=False), SLOT, POLICY) is None
    assert (
        make_request(view("A", 1000, deal_count=1, deal_direction="discharge"), SLOT, POLICY)
        is None
    )
    assert make_request(view("A", 1000, allowed=frozenset({"discharge"})), SLOT, POLICY) is None
    assert make_request(view("A", 1000), None, POLICY) is None  # a gap between slots


def test_force_stop_limits_keep_units_out_of_deals_the_engine_would_stop() -> None:
    # 960 Wh = SoC 0.20: charging is fine, but discharging would be stopped at once
    low = view("A", 960)
    assert make_request(low, SLOT, POLICY) is not None
    discharge = request("B", "discharge", 500, status="excess")
    everyone_accepts = day(accept={"short": {"discharge": {"limitWh": 0}}}).slots[0]
    assert make_accept(low, everyone_accepts, POLICY, request("R")) is None
    assert make_accept(view("A", 1000), everyone_accepts, POLICY, request("R")) is not None
    full = day(accept={"excess": {"charge": {"limitWh": 4800}}}).slots[0]
    assert make_accept(view("C", 4560), full, POLICY, discharge) is None  # SoC 0.95
    assert make_accept(view("C", 4500), full, POLICY, discharge) is not None


# -- accepts ----------------------------------------------------------------------------------


def test_accepts_answer_the_opposite_direction_with_their_own_amount() -> None:
    req = request("A", "charge", 1440)
    acc = make_accept(view("B", 4800), SLOT, POLICY, req)
    assert acc is not None and (acc.direction, acc.amount_wh, acc.status) == (
        "discharge",
        1200,
        "excess",
    )
    suff = make_accept(view("C", 4000), SLOT, POLICY, req)
    assert suff is not None and suff.amount_wh == 400
    assert make_accept(view("D", 3000), SLOT, POLICY, req) is None  # scarce accepts charge only
    assert make_accept(view("A", 4800), SLOT, POLICY, req) is None  # not its own request
    assert make_accept(view("E", 3650), SLOT, POLICY, req) is None  # 50 Wh, not above 50
    dis = request("B", "discharge", 480, status="excess")
    scarce = make_accept(view("D", 3000), SLOT, POLICY, dis)
    assert scarce is not None and (scarce.direction, scarce.amount_wh) == ("charge", 600)


def test_pair_units_limit_who_answers_whom() -> None:
    paired = request("A", pair_unit_id="C")
    assert make_accept(view("B", 4800), SLOT, POLICY, paired) is None
    assert make_accept(view("C", 4800), SLOT, POLICY, paired) is not None
    only_d = day(accept={"excess": {"discharge": {"limitWh": 3600, "pairUnitId": "D"}}}).slots[0]
    assert make_accept(view("B", 4800), only_d, POLICY, request("A")) is None
    assert make_accept(view("B", 4800), only_d, POLICY, request("D")) is not None
    # the requester with a pair considers only that unit's accept
    chosen = select_accept(paired, [accept("B", 900), accept("C", 100)], "amount")
    assert chosen is not None and chosen.unit_id == "C"


# -- selection --------------------------------------------------------------------------------


def test_amount_strategy_takes_the_largest_and_the_first_of_equals() -> None:
    accs = [accept("B", 300), accept("C", 700), accept("D", 700), accept("E", 0)]
    assert select_accept(request(), accs, "amount") is accs[1]
    assert select_accept(request(), [], "amount") is None


def test_point_and_amount_for_a_charge_request() -> None:
    req = request(point_per_wh=10.0)
    accs = [
        accept("B", 900, 11.0),  # dearer than the requester pays: out
        accept("C", 100, 8.0),
        accept("D", 300, 8.0),  # same lowest price, larger amount: chosen
        accept("E", 999, 9.0),
        accept("F", 5000, None),  # no price: out
    ]
    assert select_accept(req, accs, "pointAndAmount") is accs[2]
    assert select_accept(req, [accs[0], accs[4]], "pointAndAmount") is None
    assert select_accept(request(point_per_wh=None), accs, "pointAndAmount") is None


def test_point_and_amount_for_a_discharge_request() -> None:
    req = request("A", "discharge", 500, point_per_wh=10.0, status="excess")
    accs = [
        accept("B", 900, 9.0, "charge"),  # pays less than asked: out
        accept("C", 100, 12.0, "charge"),
        accept("D", 50, 12.0, "charge"),
        accept("E", 999, 10.0, "charge"),
    ]
    assert select_accept(req, accs, "pointAndAmount") is accs[1]


# -- deals -------------------------------------------------------------------------------------


def test_deal_amount_current_price_and_sides() -> None:
    req = request("A", "charge", 1440, point_per_wh=12.0, deal_current=2.0)
    acc = accept("B", 1200, 9.0, current=1.5)
    deal = make_deal(req, acc, POLICY)
    assert deal is not None
    assert (deal.charge_unit_id, deal.discharge_unit_id) == ("A", "B")
    assert (deal.amount_wh, deal.current, deal.point_per_wh) == (200, 1.5, 12.0)
    dis = make_deal(
        request("B", "discharge", 120, point_per_wh=7.0), accept("A", 999, 11.0, "charge"), POLICY
    )
    assert dis is not None
    assert (dis.charge_unit_id, dis.discharge_unit_id, dis.amount_wh) == ("A", "B", 100)
    assert dis.point_per_wh == 11.0  # the charging side's price
    assert (
        make_deal(
            request(amount=60),
            accept("B", 999),
            POLICY.replace(amount_min_wh=60, amount_unit_wh=50),
        )
        is None
    )
    assert deal_amount(49, 1000, POLICY) == 0


def test_deal_problem_checks_the_interlocks_at_creation() -> None:
    deal = make_deal(request("A"), accept("B", 500), POLICY)
    assert deal is not None
    views = {"A": view("A", 1000), "B": view("B", 4800)}
    assert deal_problem(deal, views, POLICY) is None
    busy = {**views, "B": view("B", 4800, deal_count=2, deal_direction="discharge")}
    assert "interlock capacity 2" in str(deal_problem(deal, busy, POLICY))
    turned = {**views, "A": view("A", 1000, deal_count=1, deal_direction="discharge")}
    assert "other way" in str(deal_problem(deal, turned, POLICY))
    assert "not in negotiation" in str(deal_problem(deal, {"A": views["A"]}, POLICY))


# -- conditions, the mediator, push_scenario ----------------------------------------------------


def community() -> dict[str, UnitView]:
    return {
        uid: view(uid, wh)
        for uid, wh in {
            "E001": 1440,
            "E002": 2400,
            "E003": 3360,
            "E004": 4800,
            "E005": 4000,
        }.items()
    }


def test_mediator_runs_one_negotiation_end_to_end() -> None:
    views = community()
    conditions = Conditions(views, day())
    mediator = Mediator(conditions, POLICY, seed=7)
    neg = mediator.request(views["E001"], 3600.0, t=10.0)
    assert neg is not None and neg.request.amount_wh == 1440
    accepts = mediator.collect(neg, views, 3600.0)
    assert sorted(a.unit_id for a in accepts) == ["E004", "E005"]  # excess and sufficient
    deal = mediator.select(neg, 3602.0, t=12.0)
    assert deal is not None and deal.discharge_unit_id == "E004"  # 1200 Wh beats 400 Wh
    assert (deal.amount_wh, neg.outcome, neg.t_select) == (200, "deal", 12.0)
    assert neg.as_dict()["deal"]["charge_unit_id"] == "E001"


def test_push_scenario_replaces_everyones_conditions_at_once() -> None:
    views = community()
    conditions = Conditions(views, day())
    mediator = Mediator(conditions, POLICY)
    assert mediator.request(views["E004"], 0.0, 0.0) is not None
    quiet = parse_scenario({"00:00:00-24:00:00": {"batteryStatus": {"-": "any"}}})
    assert conditions.push_scenario(quiet) == 1
    assert all(conditions.scenario(uid) is quiet for uid in views)
    assert all(mediator.request(v, 0.0, 0.0) is None for v in views.values())
    conditions.set_scenario("E004", day())
    assert mediator.request(views["E004"], 0.0, 0.0) is not None


def test_manual_and_stop_modes_from_the_conditions() -> None:
    views = community()
    conditions = Conditions(views, day())
    mediator = Mediator(conditions, POLICY)
    conditions.set_mode("manual", ["E004"])
    conditions.set_mode("stop", ["E005"])
    neg = mediator.request(views["E001"], 0.0, 0.0)
    assert neg is not None and mediator.collect(neg, views, 0.0) == []
    assert mediator.request(views["E004"], 0.0, 0.0) is None
    with pytest.raises(Exception, match="operation mode 'auto'"):
        conditions.set_mode("auto")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="unknown unit 'X'"):
        conditions.scenario("X")


def test_remaining_wh_is_whole_and_floored() -> None:
    assert remaining_wh(0.3, 4800.0) == 1440
    assert remaining_wh(0.29999, 4800.0) == 1439
    assert remaining_wh(-0.01, 4800.0) == 0


# -- properties ----------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> DealPolicy:
    unit = draw(st.integers(1, 200))
    top = draw(st.integers(unit, 2000))
    low = draw(st.integers(1, top))
    current = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.3]))
    return DealPolicy(
        deal_current=current, amount_min_wh=low, amount_max_wh=top, amount_unit_wh=unit
    )


@settings(max_examples=100, deadline=None)
@given(policies(), st.integers(-100, 6000), st.integers(-100, 6000))
def test_deal_amounts_are_whole_units_within_limits_and_offers(
    policy: DealPolicy, req_wh: int, acc_wh: int
) -> None:
    amount = deal_amount(req_wh, acc_wh, policy)
    if amount == 0:
        return
    assert amount % policy.amount_unit_wh == 0
    assert policy.amount_min_wh <= amount <= policy.amount_max_wh
    assert amount <= req_wh and amount <= acc_wh


price = st.one_of(st.none(), st.sampled_from([5.0, 8.0, 10.0, 12.0]))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["charge", "discharge"]),
    price,
    st.lists(st.tuples(st.integers(0, 3000), price), max_size=6),
    st.randoms(use_true_random=False),
)
def test_point_and_amount_choice_is_optimal_and_order_free_up_to_ties(
    direction: Direction, own: float | None, offers: list[tuple[int, float | None]], rnd: Any
) -> None:
    req = request("A", direction, 1000, point_per_wh=own)
    side: Direction = "discharge" if direction == "charge" else "charge"
    accs = [accept(f"U{i}", amt, p, side) for i, (amt, p) in enumerate(offers)]
    chosen = select_accept(req, accs, "pointAndAmount")
    shuffled = list(accs)
    rnd.shuffle(shuffled)
    again = select_accept(req, shuffled, "pointAndAmount")
    eligible = [
        a
        for a in accs
        if own is not None
        and a.point_per_wh is not None
        and a.amount_wh > 0
        and (a.point_per_wh <= own if direction == "charge" else a.point_per_wh >= own)
    ]
    if not eligible:
        assert chosen is None and again is None
        return
    pick = min if direction == "charge" else max
    best_price = pick(a.point_per_wh for a in eligible if a.point_per_wh is not None)
    best_amount = max(a.amount_wh for a in eligible if a.point_per_wh == best_price)
    for got in (chosen, again):
        assert got is not None
        assert (got.point_per_wh, got.amount_wh) == (best_price, best_amount)
    amount_pick = select_accept(req, accs, "amount")
    assert amount_pick is not None and amount_pick.amount_wh == max(a.amount_wh for a in accs)


socs = st.lists(st.integers(0, 4800), min_size=2, max_size=8)


def _round(
    policy: DealPolicy, scenario: Scenario, wh: list[int], seed: int
) -> list[dict[str, Any]]:
    views = {f"U{i:02d}": view(f"U{i:02d}", w) for i, w in enumerate(wh)}
    mediator = Mediator(Conditions(views, scenario), policy, seed=seed)
    out = []
    for uid in sorted(views):
        neg = mediator.request(views[uid], 43_200.0, 0.0)
        if neg is None:
            continue
        mediator.collect(neg, views, 43_200.0)
        mediator.select(neg, 43_202.0, 2.0)
        out.append(neg.as_dict())
    return out


@settings(max_examples=60, deadline=None)
@given(policies(), socs, st.sampled_from(["amount", "pointAndAmount"]), st.integers(0, 3))
def test_negotiations_are_consistent_and_deterministic_per_seed(
    policy: DealPolicy, wh: list[int], strategy: str, seed: int
) -> None:
    scenario = day(strategy=strategy)
    slot = scenario.slots[0]
    result = _round(policy, scenario, wh, seed)
    assert result == _round(policy, scenario, wh, seed)
    remaining = {f"U{i:02d}": w for i, w in enumerate(wh)}
    for neg in result:
        req = neg["request"]
        status = slot.status(remaining[req["unit_id"]])
        cond = slot.request_condition(status) if status else None
        assert cond is not None and cond.direction == req["direction"]
        assert req["amount_wh"] == cond.amount_wh(remaining[req["unit_id"]]) > policy.amount_min_wh
        for acc in neg["accepts"]:
            assert acc["direction"] != req["direction"] and acc["unit_id"] != req["unit_id"]
            assert acc["amount_wh"] > policy.amount_min_wh
        deal = neg["deal"]
        if deal is None:
            continue
        assert deal["amount_wh"] % policy.amount_unit_wh == 0
        assert policy.amount_min_wh <= deal["amount_wh"] <= policy.amount_max_wh
        assert deal["amount_wh"] <= min(deal["request_amount_wh"], deal["accept_amount_wh"])
        assert deal["current"] == policy.deal_current
        charging = req["unit_id"] if req["direction"] == "charge" else neg["chosen"]
        assert deal["charge_unit_id"] == charging
        # energy flows from the fuller battery's side of the bands to the emptier one
        assert remaining[deal["discharge_unit_id"]] > remaining[deal["charge_unit_id"]]
