"""A synthetic community day, for the report's tests and benchmark: a ``community`` line.

:func:`community_fields` simulates, deterministically for a seed, a day of ``units``
battery units (4.8 kWh, force-stop limits 20 % / 95 %) in three branches, each with a PV
profile and a household load with morning and evening peaks. The day runs twice: without
interchange (each battery alone: PV is wasted when it is full, the utility supplies the load
when it is empty) and with interchange (every negotiation cycle the fullest free units
discharge into the emptiest, 2 A at 350 V, until the deal's amount or a SoC limit; deals
beyond the bus's concurrent-deal capacity are refused by the interlock). It returns the
fields of the line as ``docs/records.md`` describes them, so the numbers are consistent:
totals are the sums of the units', self-consumption is PV used / PV generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.community import WITH, WITHOUT

FloatArray = npt.NDArray[np.float64]

DAY_S = 86400.0
STEP_S = 60.0  # simulation step
SAMPLE_S = 300.0  # SoC sample period in the line
CYCLE_S = 300.0  # negotiation cycle
CAPACITY_WH = 4800.0
SOC_LIMITS = (0.20, 0.95)
BUS_V = 350.0
DEAL_A = 2.0
EFFICIENCY = 0.95  # each converter, per direction
MAX_DEALS = 6  # concurrent deals the bus allows (exchange-current sum 12 A / 2 A)
SELL_ABOVE = 0.55  # SoC above which a free unit offers to discharge
BUY_BELOW = 0.50  # SoC below which a free unit asks to charge
TARGET = 0.525  # deals move both sides towards this SoC
AMOUNT_UNIT_WH = 50.0
AMOUNT_MAX_WH = 200.0
FAULT_P = 0.015  # chance per deal of a converter alarm that stops it half-way


@dataclass
class _Deal:
    name: str
    discharge: int
    charge: int
    amount_wh: float
    t_start: float
    energy_wh: float = 0.0
    t_stop: float | None = None
    state: str = "running"
    stop_reason: str = ""
    fault_at: float | None = None  # Wh at which a converter alarm stops the deal


@dataclass
class _Totals:
    pv: FloatArray
    pv_wasted: FloatArray
    load: FloatArray
    utility: FloatArray

    def as_fields(self, index: int | slice) -> dict[str, float | None]:
        pv = float(np.sum(self.pv[index]))
        wasted = float(np.sum(self.pv_wasted[index]))
        return {
            "pv_wh": round(pv, 1),
            "pv_used_wh": round(pv - wasted, 1),
            "pv_wasted_wh": round(wasted, 1),
            "load_wh": round(float(np.sum(self.load[index])), 1),
            "utility_wh": round(float(np.sum(self.utility[index])), 1),
            "self_consumption": round((pv - wasted) / pv, 4) if pv > 0 else None,
        }


@dataclass
class _Day:
    """The households' power over the day (W, one row per step, one column per unit)."""

    pv_w: FloatArray
    load_w: FloatArray
    soc0: FloatArray
    soc: list[FloatArray] = field(default_factory=list)


def _households(units: int, rng: np.random.Generator) -> _Day:
    hours = np.arange(0.0, DAY_S, STEP_S) / 3600.0
    sun = np.clip(np.sin(np.pi * (hours - 6.0) / 12.5), 0.0, None) ** 1.3
    clouds = 1.0 - 0.35 * np.clip(
        np.convolve(rng.random(hours.size), np.ones(40) / 40, "same"), 0, 1
    )
    peak = rng.choice([0.0, 600.0, 1200.0, 1800.0], size=units, p=[0.15, 0.3, 0.3, 0.25])
    peak *= rng.uniform(0.85, 1.15, units)
    pv = np.outer(sun * clouds, peak)
    base = rng.uniform(140.0, 320.0, units)
    shape = (
        0.55
        + 1.1 * np.exp(-(((hours - 7.3) / 1.1) ** 2))
        + 1.6 * np.exp(-(((hours - 19.5) / 1.7) ** 2))
    )
    load = np.outer(shape, base) * rng.uniform(0.8, 1.2, (hours.size, units))
    return _Day(pv, load, rng.uniform(0.30, 0.70, units))


def _run(day: _Day, deals: bool, rng: np.random.Generator) -> tuple[_Totals, list[_Deal], int]:
    """One run of the day; returns the totals per unit, the deals and the refusals."""
    steps, units = day.pv_w.shape
    lo, hi = SOC_LIMITS[0] * CAPACITY_WH, SOC_LIMITS[1] * CAPACITY_WH
    energy = day.soc0 * CAPACITY_WH
    wasted, utility = np.zeros(units), np.zeros(units)
    bus_wh = BUS_V * DEAL_A * STEP_S / 3600.0  # per step, on the bus
    done: list[_Deal] = []
    running: list[_Deal] = []
    refused = 0
    day.soc = []
    every = int(SAMPLE_S // STEP_S)
    for k in range(steps):
        t = k * STEP_S
        if k % every == 0:
            day.soc.append(energy / CAPACITY_WH)
        if deals and k % int(CYCLE_S // STEP_S) == 0:
            refused += _negotiate(t, energy, running, done, rng)
        net = (day.pv_w[k] - day.load_w[k]) * STEP_S / 3600.0
        for deal in list(running):
            left = deal.amount_wh - deal.energy_wh
            part = min(1.0, left / bus_wh)
            moved = bus_wh * part
            energy[deal.discharge] -= moved / EFFICIENCY
            energy[deal.charge] += moved * EFFICIENCY
            deal.energy_wh += moved
            reason = ""
            if deal.fault_at is not None and deal.energy_wh >= deal.fault_at:
                reason = "error: converter alarm"
            elif part < 1.0:
                reason = "amount reached"
            elif energy[deal.discharge] <= lo + 1.0:
                reason = f"SoC limit: discharging unit at {SOC_LIMITS[0]:.0%}"
            elif energy[deal.charge] >= hi - 1.0:
                reason = f"SoC limit: charging unit at {SOC_LIMITS[1]:.0%}"
            if reason:
                overshoot = float(rng.uniform(0.0, 0.9)) if part < 1.0 else 0.0
                deal.energy_wh = round(deal.energy_wh + overshoot, 2)
                deal.t_stop = round(t + part * STEP_S + 1.5, 1)
                deal.state = "done" if reason == "amount reached" else "stopped"
                deal.stop_reason = reason
                running.remove(deal)
                done.append(deal)
        energy += net
        over, under = np.clip(energy - hi, 0, None), np.clip(lo - energy, 0, None)
        wasted += over  # the battery is full: the PV surplus is curtailed
        utility += under  # the battery is empty: the utility supplies the load
        energy += under - over
    day.soc.append(energy / CAPACITY_WH)
    for deal in running:  # still running at midnight: stopped by the end of the run
        deal.t_stop, deal.state, deal.stop_reason = DAY_S, "stopped", "end of the day"
        done.append(deal)
    dt_h = STEP_S / 3600.0
    totals = _Totals(
        pv=np.sum(day.pv_w, axis=0) * dt_h,
        pv_wasted=wasted,
        load=np.sum(day.load_w, axis=0) * dt_h,
        utility=utility,
    )
    return totals, sorted(done, key=lambda d: d.t_start), refused


def _negotiate(
    t: float, energy: FloatArray, running: list[_Deal], done: list[_Deal], rng: np.random.Generator
) -> int:
    """Pair the fullest free sellers with the emptiest free buyers; returns the number of
    deals the interlock refused (one at most: the others wait for the next cycle)."""
    busy = {d.discharge for d in running} | {d.charge for d in running}
    soc = energy / CAPACITY_WH
    free = [u for u in np.argsort(-soc) if u not in busy]
    sellers = [int(u) for u in free if soc[u] > SELL_ABOVE]
    buyers = [int(u) for u in reversed(free) if soc[u] < BUY_BELOW]
    for seller, buyer in zip(sellers, buyers, strict=False):
        can_send = (soc[seller] - TARGET) * CAPACITY_WH
        can_take = (TARGET - soc[buyer]) * CAPACITY_WH
        amount = min(can_send, can_take, AMOUNT_MAX_WH)
        amount = math.floor(amount / AMOUNT_UNIT_WH) * AMOUNT_UNIT_WH
        if amount < AMOUNT_UNIT_WH:
            continue
        number = len(running) + len(done) + 1
        start = round(t + 2.0 + float(rng.uniform(0.5, 4.0)), 1)  # negotiation, ramp, warm-up
        deal = _Deal(f"deal-{number:04d}", seller, buyer, amount, start)
        if len(running) >= MAX_DEALS:  # the rest wait for the next cycle
            deal.state, deal.stop_reason = "refused", "interlock: bus deal capacity"
            done.append(deal)
            return 1
        if rng.random() < FAULT_P:
            deal.fault_at = amount * float(rng.uniform(0.2, 0.8))
        running.append(deal)
    return 0


def community_fields(
    units: int = 19, seed: int = 7, name: str = "community-19 day"
) -> dict[str, Any]:
    """The fields of a ``community`` line for a simulated day of ``units`` units."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:02d}" for i in range(1, units + 1)]
    day = _households(units, rng)
    alone, _, _ = _run(day, False, rng)
    shared, deals, refused = _run(day, True, rng)
    t = np.arange(len(day.soc)) * SAMPLE_S
    soc = np.round(np.array(day.soc), 4)
    thirds = np.array_split(np.arange(units), 3)
    return {
        "name": name,
        "start_of_day": 0.0,
        "duration_s": DAY_S,
        "t": t.tolist(),
        "soc": {uid: soc[:, i].tolist() for i, uid in enumerate(ids)},
        "soc_limits": list(SOC_LIMITS),
        "deals": [
            {
                "name": d.name,
                "discharge": ids[d.discharge],
                "charge": ids[d.charge],
                "current": DEAL_A,
                "amount_wh": d.amount_wh,
                "t_start": None if d.state == "refused" else d.t_start,
                "t_stop": d.t_stop,
                "energy_wh": round(d.energy_wh, 2),
                "state": d.state,
                "stop_reason": (
                    f"{d.stop_reason} on {ids[d.discharge]}"
                    if d.stop_reason.startswith("error")
                    else d.stop_reason
                ),
            }
            for d in deals
        ],
        "refused": refused,
        "energy": {WITH: shared.as_fields(slice(None)), WITHOUT: alone.as_fields(slice(None))},
        "per_unit": {
            uid: {WITH: shared.as_fields(i), WITHOUT: alone.as_fields(i)}
            for i, uid in enumerate(ids)
        },
        "branches": {b: [ids[i] for i in part] for b, part in zip("ABC", thirds, strict=False)},
    }
