"""Speed of the simulated plant (instruments/emulation/plant.py).

Prints ``name value unit`` lines:

- ``plant_day_19_ports_wall_s``: wall seconds to simulate 24 h of a 19-port bus (nine
  converter+battery units, one of them the voltage reference, and an electronic load) with
  a set-point change every 15 minutes. Target: below 0.5 s.
- ``plant_1000_ports_realtime_factor``: simulated seconds per wall second for 1000 ports
  (500 converter+battery units) while every converter slews, so every step is a 1 ms step.
  Target: above 10.
- ``plant_day_19_households_wall_s``: wall seconds to simulate 24 h of 19 APIS units, each
  battery with a household (PV and load profiles at 60 s resolution, mixed weather), every
  converter idle in WAIT: the "same day without interchange" of a community bench. Target:
  well below 2 s.
- the baseline each is measured against in the same run, and the ratio: a fixed-step run of
  the same day at 1 s steps (``plant_day_19_ports_fixed_1s_wall_s``) and the per-step cost of
  the 19-port plant (``plant_19_ports_step_us``); for the household day, the same day at fixed
  10 s steps (``plant_day_19_households_fixed_10s_wall_s``).

Run: ``.venv/bin/python benchmarks/plant_speed.py``.
"""

from __future__ import annotations

import random
import time

from instruments.emulation.household import WEATHERS, HouseholdProfile
from instruments.emulation.plant import (
    BatterySpec,
    ConverterMode,
    ConverterSpec,
    HouseholdSpec,
    LoadSpec,
    NodeSpec,
    Plant,
    PortSpec,
    Protection,
    Stepping,
)

DAY_S = 24 * 3600.0
CHANGE_EVERY_S = 900.0


def day_plant(stepping: Stepping | None = None) -> Plant:
    """Nine APIS-style units (converter + 4.8 kWh battery) and a load on a 350 V bus: 19 ports."""
    nodes = [NodeSpec(name="bus")]
    ports: list[PortSpec] = []
    for k in range(9):
        nodes.append(NodeSpec(name=f"batt{k}", bleed_ohm=None))
        vr = k == 0
        ports.append(
            ConverterSpec(
                name=f"E{k:03d}",
                node="bus",
                battery_node=f"batt{k}",
                mode=ConverterMode.VOLTAGE_REFERENCE if vr else ConverterMode.WAIT,
                grid_current_a=7.0 if vr else 0.0,
                slew_a_per_s=100.0,
                line_ohm=0.05 * (k % 3),
                protection=Protection(ovp_v=380.0, ocp_a=7.5, otp_c=80.0),
                battery_protection=Protection(uvlo_v=32.0, ovp_v=58.4),
            )
        )
        soc = 0.9 if vr else 0.3 + 0.05 * k
        ports.append(BatterySpec(name=f"B{k:03d}", node=f"batt{k}", capacity_wh=4800, soc=soc))
    ports.append(
        LoadSpec(
            name="load",
            node="bus",
            max_current_a=10.0,
            max_voltage_v=400.0,
            von_v=300.0,
            slew_a_per_s=100.0,
            level=0.1,
            input_on=True,
        )
    )
    return Plant(nodes, ports, stepping=stepping)


def run_day(plant: Plant, seed: int = 1) -> None:
    """24 h of APIS-style deals, one deal starting or ending every 15 minutes (seeded).

    A deal pairs a discharging unit (SoC above 40 %) with a charging one (SoC below 80 %)
    at the same current, so the voltage reference carries only losses and the load; as in
    APIS, a deal stops when the discharging SoC falls below 20 % or the charging one rises
    above 95 %.
    """
    rng = random.Random(seed)
    deals: list[tuple[int, int]] = []
    t = 0.0
    while t < DAY_S:
        for deal in list(deals):
            src, dst = deal
            soc_src = plant.battery(f"B{src:03d}").soc
            if soc_src < 0.2 or plant.battery(f"B{dst:03d}").soc > 0.95:
                deals.remove(deal)
                for k in deal:
                    plant.converter(f"E{k:03d}").set_mode(ConverterMode.WAIT)
        busy = {k for deal in deals for k in deal}
        idle = [k for k in range(1, 9) if k not in busy]
        if deals and (len(idle) < 2 or rng.random() < 0.4):
            for k in deals.pop(rng.randrange(len(deals))):
                plant.converter(f"E{k:03d}").set_mode(ConverterMode.WAIT)
        else:
            soc = {k: plant.battery(f"B{k:03d}").soc for k in idle}
            givers = sorted(idle, key=lambda k: -soc[k])
            src, dst = givers[0], givers[-1]
            if soc[src] > 0.4 and soc[dst] < 0.8:
                amps = round(rng.uniform(0.5, 2.0), 2)
                for k, mode in ((src, ConverterMode.DISCHARGE), (dst, ConverterMode.CHARGE)):
                    conv = plant.converter(f"E{k:03d}")
                    conv.set_grid_current(amps)
                    conv.set_mode(mode)
                deals.append((src, dst))
        plant.advance(CHANGE_EVERY_S)
        t += CHANGE_EVERY_S


def household_plant(stepping: Stepping | None = None) -> Plant:
    """19 idle APIS units (converter in WAIT + 4.8 kWh battery + household) on one bus."""
    nodes = [NodeSpec(name="bus")]
    ports: list[PortSpec] = []
    for k in range(19):
        nodes.append(NodeSpec(name=f"batt{k}"))
        profile = HouseholdProfile.synthetic(
            pv_peak_w=1500.0 + 200.0 * k,
            weather=WEATHERS[k % 3],
            load_wh_per_day=6000.0 + 400.0 * k,
            seed=k,
        )
        ports.append(
            ConverterSpec(
                name=f"E{k:03d}",
                node="bus",
                battery_node=f"batt{k}",
                battery_protection=Protection(uvlo_v=40.0, ovp_v=59.0, ocp_a=52.0),
            )
        )
        ports.append(
            BatterySpec(
                name=f"B{k:03d}",
                node=f"batt{k}",
                capacity_wh=4800,
                soc=0.2 + 0.04 * k,
                household=HouseholdSpec(profile=profile),
            )
        )
    return Plant(nodes, ports, stepping=stepping)


def thousand_port_plant() -> Plant:
    """500 converter + battery units (1000 ports) on one bus, unit 0 the voltage reference."""
    n = 500
    nodes = [NodeSpec(name="bus")] + [NodeSpec(name=f"b{k}", bleed_ohm=None) for k in range(n)]
    ports: list[PortSpec] = []
    for k in range(n):
        vr = k == 0
        ports.append(
            ConverterSpec(
                name=f"E{k}",
                node="bus",
                battery_node=f"b{k}",
                mode=ConverterMode.VOLTAGE_REFERENCE if vr else ConverterMode.WAIT,
                grid_current_a=500.0 if vr else 0.0,
                max_grid_current_a=500.0,
                slew_a_per_s=1.0,
                line_ohm=0.01 * (k % 7),
                protection=Protection(ovp_v=400.0, ocp_a=600.0),
            )
        )
        ports.append(BatterySpec(name=f"B{k}", node=f"b{k}", capacity_wh=4800, soc=0.5))
    return Plant(nodes, ports)


def main() -> None:
    """Measure and print."""
    plant = day_plant()
    t0 = time.perf_counter()
    run_day(plant)
    day_wall = time.perf_counter() - t0
    day_steps = plant.steps_taken

    fixed = day_plant(Stepping(fixed_step_s=1.0))
    t0 = time.perf_counter()
    run_day(fixed)
    fixed_wall = time.perf_counter() - t0
    step_us = fixed_wall / fixed.steps_taken * 1e6

    houses = household_plant()
    t0 = time.perf_counter()
    houses.advance(DAY_S)
    houses_wall = time.perf_counter() - t0
    houses_fixed = household_plant(Stepping(fixed_step_s=10.0))
    t0 = time.perf_counter()
    houses_fixed.advance(DAY_S)
    houses_fixed_wall = time.perf_counter() - t0

    big = thousand_port_plant()
    big.advance(1.0)
    for k in range(1, 500):
        conv = big.converter(f"E{k}")
        conv.set_grid_current(2.0)
        conv.set_mode(ConverterMode.DISCHARGE if k % 2 else ConverterMode.CHARGE)
    simulated = 1.5
    steps_before = big.steps_taken
    t0 = time.perf_counter()
    big.advance(simulated)
    big_wall = time.perf_counter() - t0
    big_steps = big.steps_taken - steps_before

    print(f"plant_day_19_ports_wall_s {day_wall:.4f} s")
    print(f"plant_day_19_ports_steps {day_steps} steps")
    print(f"plant_day_19_ports_fixed_1s_wall_s {fixed_wall:.4f} s")
    print(f"plant_day_19_ports_speedup_vs_fixed_1s {fixed_wall / day_wall:.1f} ratio")
    print(f"plant_19_ports_step_us {step_us:.1f} us")
    print(f"plant_day_19_households_wall_s {houses_wall:.4f} s")
    print(f"plant_day_19_households_steps {houses.steps_taken} steps")
    print(f"plant_day_19_households_fixed_10s_wall_s {houses_fixed_wall:.4f} s")
    speedup = houses_fixed_wall / houses_wall
    print(f"plant_day_19_households_speedup_vs_fixed_10s {speedup:.1f} ratio")
    print(f"plant_1000_ports_realtime_factor {simulated / big_wall:.2f} ratio")
    print(f"plant_1000_ports_step_us {big_wall / big_steps * 1e6:.1f} us")
    print(f"plant_1000_ports_steps {big_steps} steps")


if __name__ == "__main__":
    main()
