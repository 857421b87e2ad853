"""The community day at 19, 50 and 100 houses: how its cost grows with the community.

Each size is a bench written by ``hil bench generate --houses N`` (the 19-house community's
household mix and rules; ``hil.cli.bench``) into a temporary folder, served by its own
emulator process (``hil emulate --clock sim``), and run through the community-day path
(``fixtures.community``, as ``benchmarks/community_day.py``): real drivers over loopback,
negotiation on the scenario, every deal through the exchange engine.

Prints ``name value unit`` lines:

- ``community_day_<N>_units_wall_s`` per size (targets: 19 houses <= 45 s, 100 <= 240 s);
- ``community_cost_growth_exponent``: the least-squares slope of log(wall time) against
  log(houses) (target <= 1.1: about linear);
- per size, the work per house, which does not depend on the machine:
  ``unit_reads_per_house_<N>`` (units read by the supervisor, the agents and the
  samples) and ``clock_sleeps_per_house_<N>`` (``advance`` round trips on the control
  channel); ``community_work_growth_exponent``, the slope of log(units read) against
  log(houses) (1: the work grows with the houses, no faster);
- per size, the outcome per house, so that a speed-up that changed the day shows:
  ``deals_per_house_<N>``, ``utility_import_wh_per_house_<N>`` and
  ``utility_import_alone_wh_per_house_<N>`` (the same day without interchange);
- ``load_average_1min`` before and after each run: the machine is shared, read the walls
  with it.

A single day's wall time varies by about ±10 % from run to run on the 2-core machine.
``--repeat R`` runs every size R times, in turn (19, 50, 100, 19, ...), prints each run's
wall (``run_<k>_day_<N>_units_wall_s``), and takes the median as the size's wall and the
exponent's input, with ``community_day_<N>_units_wall_range_s`` the lowest and highest; a
repeat that gave another outcome than the first stops the benchmark (the day is
deterministic).

``--advance eager`` runs the emulator as before deferred stepping (``hil emulate --advance``):
the day's outcome depends on where the plant's steps end (a deal ending 0.1 s later moves a
later negotiation past a supervisor tick), so compare outcomes across that switch with the
spread it shows, not digit for digit (docs/emulator-control.md, "Deferred advance").
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.community_day import timed_day
from hil.cli.bench import write_community
from instruments.emulation.emulator import AdvanceMode

DAY_S = 24 * 3600.0
SIZES = (19, 50, 100)


def run_day(
    houses: int, folder: Path, seconds: float, advance: AdvanceMode = "deferred"
) -> dict[str, float]:
    """One community day of ``houses`` houses; its wall time, work and outcome per house."""
    path, _ = write_community(houses, folder / f"community-{houses}.toml", force=True)
    timed = timed_day(path, seconds, timeout_s=5.0, advance=advance)
    day = timed.day
    if day.report.trips:
        raise SystemExit(f"the {houses}-house community tripped: {day.report.trips}")
    with_, alone = day.totals()
    return {
        "wall_s": timed.wall_s,
        "units_read": timed.units_read,
        "unit_reads_per_house": timed.units_read / houses,
        "clock_sleeps_per_house": timed.clock_sleeps / houses,
        "deals_per_house": len(day.executed) / houses,
        "utility_import_wh_per_house": with_.utility_wh / houses,
        "utility_import_alone_wh_per_house": alone.utility_wh / houses,
    }


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(size)."""
    xs = [math.log(n) for n in sizes]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


#: The per-house figures printed for each size, with their units.
PER_HOUSE = (
    ("unit_reads_per_house", "reads"),
    ("clock_sleeps_per_house", "sleeps"),
    ("deals_per_house", "deals"),
    ("utility_import_wh_per_house", "Wh"),
    ("utility_import_alone_wh_per_house", "Wh"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="house counts (19,50,100)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of every size, taken in turn; walls are their medians (1)",
    )
    parser.add_argument(
        "--advance",
        choices=("deferred", "eager"),
        default="deferred",
        help="the emulator's plant stepping (hil emulate --advance; default deferred)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    span = "day" if args.hours == 24.0 else f"{args.hours:g}h"
    print(f"load_average_1min_before {os.getloadavg()[0]:.2f} load", flush=True)
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    last: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="community-scale-") as tmp:
        for run in range(1, args.repeat + 1):
            for houses in sizes:
                result = run_day(houses, Path(tmp), args.hours * 3600.0, args.advance)
                walls[houses].append(result["wall_s"])
                if houses in last and result != {**last[houses], "wall_s": result["wall_s"]}:
                    raise SystemExit(f"run {run} of {houses} houses changed the day's outcome")
                last[houses] = result
                wall = result["wall_s"]
                print(f"run_{run}_{span}_{houses}_units_wall_s {wall:.1f} s", flush=True)
                print(f"load_average_1min {os.getloadavg()[0]:.2f} load", flush=True)
    medians = [statistics.median(walls[n]) for n in sizes]
    for houses, median in zip(sizes, medians, strict=True):
        print(f"community_{span}_{houses}_units_wall_s {median:.1f} s")
        if args.repeat > 1:
            low, high = min(walls[houses]), max(walls[houses])
            print(f"community_{span}_{houses}_units_wall_range_s {low:.1f}-{high:.1f} s")
        for key, unit in PER_HOUSE:
            print(f"{key}_{houses} {last[houses][key]:.3f} {unit}")
    if len(sizes) > 1:
        print(f"community_cost_growth_exponent {growth_exponent(sizes, medians):.3f} slope")
        reads = [last[n]["units_read"] for n in sizes]
        print(f"community_work_growth_exponent {growth_exponent(sizes, reads):.3f} slope")


if __name__ == "__main__":
    main()
