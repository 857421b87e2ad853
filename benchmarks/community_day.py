"""A whole community day on the emulated 19-house bench, through the real drivers.

``fixtures/benches/community-19.toml`` is started in its own emulator process (``hil
emulate --clock sim``); the bench talks to it over loopback with the real drivers
(EZA-2500 frames over TCP, APIS BMS over Modbus RTU), the houses negotiate on the bench's
scenario, and the exchange engine runs every deal with the APIS sequence, supervised every
``supervisor_period``. This is the community-day bench's own path (``fixtures.community``),
without pytest and without a run record.

Prints ``name value unit`` lines:

- ``community_day_19_units_wall_s``: 24 simulated hours (target ≤ 120 s on the 2-core
  machine; APIS itself runs a day in a day, its emulator at most tens of times faster);
  with ``--hours H`` the names say ``<H>h`` instead of ``day``;
- ``community_day_speedup``: simulated seconds per wall second;
- ``deals_per_day``: deals executed; ``negotiations_per_day``: requests broadcast;
- ``utility_import_wh`` / ``utility_import_alone_wh``, ``self_consumption_pct`` /
  ``self_consumption_alone_pct``: the community with and without interchange.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from fixtures.community import CommunityDay, CommunityRunner
from fixtures.twin import Twin
from hil.clock import SimClock
from hil.config.benchfile import load_bench_file
from hil.exchange.engine import ExchangeEngine
from hil.units.bench import Bench
from instruments.emulation.emulator import AdvanceMode
from instruments.emulation.process import start_emulator

BENCH = Path(__file__).resolve().parent.parent / "fixtures" / "benches" / "community-19.toml"
DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class TimedDay:
    """A community run, the wall time of the run alone (not the emulator's start, not
    closing), and the work it asked for: units read and simulated-clock sleeps."""

    day: CommunityDay
    wall_s: float
    units_read: int
    clock_sleeps: int


def timed_day(
    path: Path, seconds: float, *, timeout_s: float, advance: AdvanceMode = "deferred"
) -> TimedDay:
    """The community of bench file ``path`` run for ``seconds`` on its own sim-clock
    emulator."""
    config = load_bench_file(path)
    with start_emulator(path, clock="sim", advance=advance) as emulator:
        bench = Bench.on_emulator(config, emulator, timeout_s=timeout_s, identify=False)
        try:
            engine = ExchangeEngine(bench)
            runner = CommunityRunner(bench, engine, None, Twin(emulator.control, config))
            clock = bench.clock
            assert isinstance(clock, SimClock)  # Bench.on_emulator's
            reads_before, sleeps_before = bench.units_read, clock.sleeps
            start = time.perf_counter()
            day = runner(seconds)
            wall = time.perf_counter() - start
            reads, sleeps = bench.units_read - reads_before, clock.sleeps - sleeps_before
            engine.close()
        finally:
            bench.close()
    return TimedDay(day, wall, reads, sleeps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    args = parser.parse_args()
    seconds = args.hours * 3600.0

    timed = timed_day(BENCH, seconds, timeout_s=2.0)
    day, wall = timed.day, timed.wall_s
    if day.report.trips:
        raise SystemExit(f"the community tripped: {day.report.trips}")
    span = "day" if seconds == DAY_S else f"{args.hours:g}h"
    print(f"community_{span}_19_units_wall_s {wall:.1f} s")
    print(f"community_day_speedup {seconds / wall:.0f} x")
    print(f"deals_per_{span} {len(day.executed)} deals")
    print(f"negotiations_per_{span} {day.report.negotiations} requests")
    with_, alone = day.totals()
    print(f"utility_import_wh {with_.utility_wh:.0f} Wh")
    print(f"utility_import_alone_wh {alone.utility_wh:.0f} Wh")
    print(f"self_consumption_pct {100 * with_.self_consumption:.1f} %")
    print(f"self_consumption_alone_pct {100 * alone.self_consumption:.1f} %")


if __name__ == "__main__":
    main()
