"""Agents on the emulated bench: autonomous deals negotiated on the bench clock and executed
by the exchange engine through the real drivers, checked against the plant's true state."""

from __future__ import annotations

from typing import Any

import pytest
from emulated_rig import Rig

from hil.autonomy.agents import Community, CommunityReport
from hil.autonomy.negotiation import Conditions
from hil.config.deal_policy import DealPolicy
from hil.config.scenario import parse_scenario
from hil.exchange.engine import ExchangeEngine, State
from hil.recorder import MemoryRecorder

#: The APIS houses of the emulated bench (its car, EV1, trades here only when named).
HOUSES = ["E001", "E002", "E003", "E004"]
#: APIS's exe-scenario.json, the OIST-like four statuses, for the whole day.
OIST = parse_scenario(
    {
        "acceptSelection": {"strategy": "pointAndAmount"},
        "00:00:00-24:00:00": {
            "batteryStatus": {
                "4320-": "excess",
                "3600-4320": "sufficient",
                "2880-3600": "scarce",
                "-2880": "short",
            },
            "request": {
                "excess": {"discharge": {"limitWh": 4320, "pointPerWh": 10}},
                "short": {"charge": {"limitWh": 2880, "pointPerWh": 10}},
            },
            "accept": {
                "excess": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
                "sufficient": {"discharge": {"limitWh": 3600, "pointPerWh": 10}},
                "scarce": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
                "short": {"charge": {"limitWh": 3600, "pointPerWh": 10}},
            },
        },
    },
    "oist",
)
QUIET = parse_scenario({"00:00:00-24:00:00": {"batteryStatus": {"-": "any"}}}, "quiet")
POLICY = DealPolicy(
    deal_current=1.0,
    amount_min_wh=50,
    amount_max_wh=50,
    amount_unit_wh=50,
    house_keeping_period=30.0,
)


def lines(engine: ExchangeEngine, line_type: str) -> list[dict[str, Any]]:
    assert isinstance(engine.recorder, MemoryRecorder)
    return list(engine.recorder.of_type(line_type))


def true_socs(rig: Rig) -> dict[str, float]:
    return {uid: float(port["soc"]) for uid, port in rig.battery_ports().items()}


def test_agents_negotiate_deals_that_the_engine_executes(rig: Rig, engine: ExchangeEngine) -> None:
    before = true_socs(rig)
    # by default every unit with a battery joins: a BMS's, or the car's behind its charger
    assert sorted(Community(engine, OIST, POLICY).agents) == [*HOUSES, "EV1"]
    community = Community(engine, OIST, POLICY, seed=1, units=HOUSES)
    report = community.run(720.0)

    assert report.trips == [] and report.excluded == {}
    done = [d for d in report.executed if "amount reached" in str(d.run and d.run.stop_reason)]
    assert done, [d.as_dict() for d in report.deals]
    for record in report.deals:
        deal, run = record.deal, record.run
        assert run is not None and run.state is State.DONE
        # E004 (SoC 0.9, excess) sells to the short units E001 (0.3) and E002 (0.5)
        assert deal.discharge_unit_id == "E004" and deal.charge_unit_id in ("E001", "E002")
        assert run.plan.legs == {"E004": 1.0, deal.charge_unit_id: -1.0}
        assert (deal.amount_wh, deal.current, deal.point_per_wh) == (50, 1.0, 10.0)
        assert record.negotiation.t_select == pytest.approx(record.negotiation.t_request + 2.0)
    for record in done:
        assert record.run is not None and record.run.energy_wh == pytest.approx(50.0, abs=0.5)
    # the plant's true state of charge moved the right way
    after = true_socs(rig)
    assert after["E004"] < before["E004"] - 0.01
    for record in done:
        uid = record.deal.charge_unit_id
        assert after[uid] > before[uid] + 0.005
    assert after["E003"] == pytest.approx(before["E003"], abs=0.002)  # scarce: no deal
    assert rig.status()["all_safe"]
    # the record tells each deal's negotiation before the engine's steps
    deal_steps = [s for s in lines(engine, "step") if s["step"] == "deal"]
    assert [s["exchange"] for s in deal_steps] == [d.name for d in report.deals]
    assert deal_steps[0]["request"]["unit_id"] in ("E001", "E002")
    assert deal_steps[0]["chosen"] == "E004"


def _timeline(report: CommunityReport, t0: float) -> list[tuple[Any, ...]]:
    return [
        (
            d.name,
            d.deal.discharge_unit_id,
            d.deal.charge_unit_id,
            d.deal.amount_wh,
            round(d.negotiation.t_request - t0, 6),
        )
        for d in report.deals
    ]


def test_the_same_seed_gives_the_same_deals(rig: Rig) -> None:
    runs = []
    for _ in range(2):
        engine = rig.engine()
        try:
            community = Community(engine, OIST, POLICY, seed=5, units=HOUSES)
            runs.append(_timeline(community.run(200.0), community.t0))
        finally:
            engine.close()
            rig.reset()
    assert runs[0] and runs[0] == runs[1]


def test_deals_end_at_the_soc_force_stop_limit(rig: Rig, engine: ExchangeEngine) -> None:
    rig.control.set("E004", "soc", 0.2025)
    seller = parse_scenario(
        {
            "00:00:00-24:00:00": {
                "batteryStatus": {"-": "any"},
                "accept": {"any": {"discharge": {"limitWh": 0}}},
            }
        },
        "seller",
    )
    buyer = parse_scenario(
        {
            "00:00:00-24:00:00": {
                "batteryStatus": {"-": "any"},
                "request": {"any": {"charge": {"limitWh": 4800}}},
            }
        },
        "buyer",
    )
    conditions = Conditions(["E001", "E002", "E003", "E004"], QUIET)
    conditions.set_scenario("E001", buyer)
    conditions.set_scenario("E004", seller)
    policy = POLICY.replace(amount_max_wh=500)
    report = Community(engine, conditions, policy, seed=2, units=HOUSES).run(400.0)

    assert report.deals and report.trips == []
    stops = []
    for record in report.deals:  # E004 may sell twice at once (interlock capacity 2)
        run = record.run
        assert run is not None and record.deal.amount_wh == 500 and run.t_stop is not None
        assert (
            run.stop_reason is not None and "force stop: discharging unit E004" in run.stop_reason
        )
        assert run.energy_wh < 500
        stops.append(run.t_stop)
    soc = true_socs(rig)["E004"]
    assert 0.195 <= soc < 0.2005
    # at the limit E004 takes no further deal
    assert all(d.negotiation.t_request < min(stops) for d in report.deals)


def test_push_scenario_and_modes_govern_who_negotiates(rig: Rig, engine: ExchangeEngine) -> None:
    community = Community(engine, OIST, POLICY, seed=3, units=HOUSES)
    assert community.push_scenario(QUIET) == 1
    quiet = community.run(90.0)
    assert quiet.negotiations == 0 and quiet.deals == []
    community.push_scenario(OIST)
    community.set_mode("manual", ["E004"])  # the only seller
    manual = community.run(90.0)
    assert manual.negotiations > 0 and manual.deals == []
    community.set_mode("autonomous")
    traded = community.run(60.0)
    assert traded.deals and traded.trips == []
    notes = [n["message"] for n in lines(engine, "note")]
    assert any("scenario quiet pushed to every unit (version 1)" in n for n in notes)
    assert any("operation mode manual for E004" in n for n in notes)


def test_a_silent_unit_is_excluded_and_named_while_the_others_trade(
    rig: Rig, engine: ExchangeEngine
) -> None:
    rig.control.fault("E003.converter", "disconnect", seconds=600.0)
    community = Community(engine, OIST, POLICY, seed=4, units=HOUSES)
    report = community.run(150.0)

    assert list(report.excluded) == ["E003"]
    assert report.trips == []  # E003 was in no deal: nobody else was stopped
    assert report.deals and all("E003" not in d.deal.units for d in report.deals)
    assert all(d.run is not None and d.run.state is State.DONE for d in report.deals)
    named = [n for n in lines(engine, "note") if n.get("kind") == "agent"]
    assert [n["unit"] for n in named] == ["E003"]
    assert "unit E003 stopped answering; excluded from negotiation" in named[0]["message"]
    assert "E003" not in [u.id for u in engine.supervisor.config.units]


def test_a_community_needs_battery_units(rig: Rig, engine: ExchangeEngine) -> None:
    with pytest.raises(Exception, match="unit E005 has no battery"):
        Community(engine, OIST, POLICY, units=["E001", "E005"])
    with pytest.raises(Exception, match="unit 'X9' is not on bench"):
        Community(engine, OIST, POLICY, units=["X9"])
    with pytest.raises(Exception, match="no conditions for unit E002"):
        Community(engine, Conditions(["E001"], OIST), POLICY, units=["E001", "E002"])


def test_stale_units_are_read_together_and_a_silent_one_is_excluded(
    rig: Rig, engine: ExchangeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A negotiation needs every agent's data: the units whose cached reading has aged past
    ``data_acquisition_period`` are read in one concurrent call, not one after the other."""
    community = Community(engine, OIST, POLICY, seed=4, units=HOUSES)
    rig.control.fault("E003.converter", "disconnect", seconds=600.0)
    rig.clock.sleep(POLICY.data_acquisition_period + 1.0)  # no tick: every cache is stale
    calls: list[list[str]] = []
    read_units = rig.bench.read_units

    def spy(unit_ids: Any) -> Any:
        calls.append(list(unit_ids))
        return read_units(calls[-1])

    monkeypatch.setattr(rig.bench, "read_units", spy)
    views = community.unit_views.views()
    assert calls == [HOUSES]
    assert sorted(views) == ["E001", "E002", "E004"]
    assert list(community.excluded) == ["E003"]
    assert community.unit_views.views() == views  # now cached: nothing is read again
    assert calls == [HOUSES]
