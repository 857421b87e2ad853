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
- per size, the outcome per house, so that a speed-up that changed the day shows:
  ``deals_per_house_<N>``, ``utility_import_wh_per_house_<N>`` and
  ``utility_import_alone_wh_per_house_<N>`` (the same day without interchange);
- ``load_average_1min`` before and after: the machine is shared, read the walls with it.

``--advance eager`` runs the emulator as before deferred stepping (``hil emulate --advance``):
the day's outcome depends on where the plant's steps end (a deal ending 0.1 s later moves a
later negotiation past a supervisor tick), so compare outcomes across that switch with the
spread it shows, not digit for digit (docs/emulator-control.md, "Deferred advance").
"""

from __future__ import annotations

import argparse
import math
import os
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
    """One community day of ``houses`` houses; its wall time and outcome per house."""
    path, _ = write_community(houses, folder / f"community-{houses}.toml", force=True)
    day, wall = timed_day(path, seconds, timeout_s=5.0, advance=advance)
    if day.report.trips:
        raise SystemExit(f"the {houses}-house community tripped: {day.report.trips}")
    with_, alone = day.totals()
    return {
        "wall_s": wall,
        "deals_per_house": len(day.executed) / houses,
        "utility_import_wh_per_house": with_.utility_wh / houses,
        "utility_import_alone_wh_per_house": alone.utility_wh / houses,
    }


def growth_exponent(sizes: list[int], walls: list[float]) -> float:
    """Least-squares slope of log(wall) against log(size)."""
    xs = [math.log(n) for n in sizes]
    ys = [math.log(w) for w in walls]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="house counts (19,50,100)"
    )
    parser.add_argument(
        "--advance",
        choices=("deferred", "eager"),
        default="deferred",
        help="the emulator's plant stepping (hil emulate --advance; default deferred)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    span = "day" if args.hours == 24.0 else f"{args.hours:g}h"
    print(f"load_average_1min_before {os.getloadavg()[0]:.2f} load", flush=True)
    walls = []
    with tempfile.TemporaryDirectory(prefix="community-scale-") as tmp:
        for houses in sizes:
            result = run_day(houses, Path(tmp), args.hours * 3600.0, args.advance)
            walls.append(result["wall_s"])
            print(f"community_{span}_{houses}_units_wall_s {result['wall_s']:.1f} s", flush=True)
            for key in (
                "deals_per_house",
                "utility_import_wh_per_house",
                "utility_import_alone_wh_per_house",
            ):
                unit = "deals" if key.startswith("deals") else "Wh"
                print(f"{key}_{houses} {result[key]:.3f} {unit}", flush=True)
            print(f"load_average_1min {os.getloadavg()[0]:.2f} load", flush=True)
    if len(sizes) > 1:
        print(f"community_cost_growth_exponent {growth_exponent(sizes, walls):.3f} slope")


if __name__ == "__main__":
    main()
