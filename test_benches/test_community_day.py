"""A community day: every house trades energy autonomously for 24 hours of bench time.

On a bench with a ``[community]`` table (``fixtures/benches/community-19.toml``: 19 APIS
houses in three branches, each with rooftop PV and a household load), the houses compare
their state of charge with the scenario's time slots, negotiate, and the exchange engine
executes every deal through the real drivers, supervised as APIS does. The bench checks
that every deal ran balanced and safe and ended by its own rules, that no state of charge
left its limits, and — where the emulated twin measures the households — the seed's
headline claim: against the same day without interchange, the community buys less from
the utility and uses more of its own PV. Run it with
``hil run --bench fixtures/benches/community-19.toml``.
"""

from __future__ import annotations

import pytest

from fixtures.community import CommunityRunner
from fixtures.measure import Measure
from fixtures.twin import Twin
from hil.exchange.engine import State
from hil.units.bench import Bench

pytestmark = [pytest.mark.community, pytest.mark.slow]

DAY_S = 24 * 3600.0
#: How a deal may end: its amount counted, a force stop at a SoC limit, the day's end.
DEAL_ENDS = ("amount reached", "force stop", "community run ended")
#: SoC a unit may pass a force-stop limit by before the engine's next check stops it.
SOC_OVERSHOOT = 0.005
#: The counted energy may pass the deal amount by the last accounting period (relative).
AMOUNT_OVERSHOOT = 0.02


def test_a_community_day(
    bench: Bench, community: CommunityRunner, measure: Measure, twin: Twin | None
) -> None:
    day = community(DAY_S, name=f"{bench.config.name}: 24 h of autonomous deals")
    report = day.report

    # the community kept running: no safety trip, every unit answered
    assert report.trips == [], report.trips
    assert report.excluded == {}, report.excluded
    measure("deals executed", len(day.executed), "", low=1)
    measure("negotiations", report.negotiations, "", low=len(day.executed))

    # every deal ended by its own rules, with the energy it was made for
    for record in day.executed:
        run = record.run
        assert run is not None and run.state is State.DONE
        reason = str(run.stop_reason)
        assert any(end in reason for end in DEAL_ENDS), (record.name, reason)
        if "amount reached" in reason:
            assert run.energy_wh <= record.deal.amount_wh * (1 + AMOUNT_OVERSHOOT), record.name
    for record in report.deals:
        assert record.failed is None, (record.name, record.failed)

    # balanced: |Σ currents| of the units in deals within APIS's allowance at every sample
    assert day.balance, "no sample found a deal running"
    worst = max(day.balance, key=lambda b: b[1] / b[2])
    measure("worst sampled balance residual", worst[1], "A", low=0.0, high=worst[2])

    # no state of charge left its limits
    policy = bench.config.apis
    if day.deal_soc_min is not None:
        measure(
            "lowest SoC of a discharging unit in a deal",
            day.deal_soc_min,
            "",
            low=policy.soc_force_stop_discharge - SOC_OVERSHOOT,
        )
    if day.deal_soc_max is not None:
        measure(
            "highest SoC of a charging unit in a deal",
            day.deal_soc_max,
            "",
            high=policy.soc_force_stop_charge + SOC_OVERSHOOT,
        )
    if twin is not None:
        trips = {
            name: port["trips"] for name, port in twin.battery_ports().items() if port["trips"]
        }
        assert trips == {}, f"a battery's BMS cut off: {trips}"

    if not day.households:
        return  # real houses: their PV and load are not the bench's to measure
    with_, without = day.totals()
    measure(
        "utility import, with interchange",
        with_.utility_wh,
        "Wh",
        low=0.0,
        high=without.utility_wh,
    )
    measure("utility import, without interchange", without.utility_wh, "Wh", low=0.0)
    measure(
        "PV self-consumption, with interchange",
        100 * with_.self_consumption,
        "%",
        low=100 * without.self_consumption,
        high=100.0,
    )
    measure(
        "PV self-consumption, without interchange", 100 * without.self_consumption, "%", low=0.0
    )
    measure("PV generated", with_.pv_wh, "Wh", low=without.pv_wh - 1.0, high=without.pv_wh + 1.0)
