"""Speed of the PDF report: ``build_report`` on a synthetic record of 50 tests.

The record (``reports.synthetic``) has 50 tests, each with one exchange of five traces of
``--points`` samples (50 plots), four measurements against limits, one failing test in
seven and one safety trip with its shutdown, and a community-day test (19 units, a day of
deals, SoC every 300 s: a deal timeline and a SoC chart). Prints ``name value unit`` lines:

- ``report_50_tests_s``: wall seconds to build the full report (median of ``--repeat``).
  Target: at most 15 s.
- ``report_50_tests_no_plots_s``: the baseline, the same report without the plots.
- ``report_plots_ratio``: full / baseline, what the 50 plots cost.
- ``report_community_day_s``: the report of the community-day test alone (its tables, deal
  timeline and SoC chart), for comparison with ``report_50_tests_s``.
- ``suite_recorded_s`` / ``suite_unrecorded_s``: the bench suite (``test_benches``) on the
  emulated bench with the run record written, and with ``--no-record``, alternating
  (median of ``--suite-runs`` each); ``record_overhead_ratio``: recorded / unrecorded.
  Target: at most 1.1.

More figures are added by appending a function to :data:`MEASUREMENTS` (each gets the
:class:`Setup` and returns ``(name, value, unit)`` lines).

Run: ``.venv/bin/python benchmarks/report_build.py``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reports.build import build_report
from reports.synthetic import SyntheticOptions, write_synthetic_run

TESTS = 50
Line = tuple[str, float, str]


@dataclass(frozen=True)
class Setup:
    """Where the synthetic run is and how often to repeat each figure."""

    workdir: Path
    run_dir: Path
    repeat: int
    suite_runs: int


def _median_build(setup: Setup, *, plots: bool) -> float:
    times = []
    for i in range(setup.repeat):
        out = setup.workdir / f"report-{'plots' if plots else 'bare'}-{i}.pdf"
        started = time.perf_counter()
        build_report(setup.run_dir, out, plots=plots)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_report(setup: Setup) -> list[Line]:
    bare = _median_build(setup, plots=False)
    full = _median_build(setup, plots=True)
    return [
        ("report_50_tests_s", full, "s"),
        ("report_50_tests_no_plots_s", bare, "s"),
        ("report_plots_ratio", full / bare, "x"),
    ]


def measure_community(setup: Setup) -> list[Line]:
    run_dir = setup.workdir / "community"
    write_synthetic_run(run_dir, SyntheticOptions(tests=0, community=True))
    times = []
    for i in range(setup.repeat):
        started = time.perf_counter()
        build_report(run_dir, setup.workdir / f"report-community-{i}.pdf")
        times.append(time.perf_counter() - started)
    return [("report_community_day_s", statistics.median(times), "s")]


BENCHES = Path(__file__).resolve().parents[1] / "test_benches"


def _suite_s(setup: Setup, *extra: str) -> float:
    command = [sys.executable, "-m", "pytest", str(BENCHES), "-q", "-p", "no:cacheprovider"]
    command += ["--run-dir", str(setup.workdir / "suite"), *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=setup.workdir)
    return time.perf_counter() - start


def measure_record_overhead(setup: Setup) -> list[Line]:
    recorded: list[float] = []
    unrecorded: list[float] = []
    for _ in range(setup.suite_runs):
        recorded.append(_suite_s(setup))
        unrecorded.append(_suite_s(setup, "--no-record"))
    with_record, without = statistics.median(recorded), statistics.median(unrecorded)
    return [
        ("suite_recorded_s", with_record, "s"),
        ("suite_unrecorded_s", without, "s"),
        ("record_overhead_ratio", with_record / without, "ratio"),
    ]


MEASUREMENTS: list[Callable[[Setup], list[Line]]] = [
    measure_report,
    measure_community,
    measure_record_overhead,
]
"""Each returns ``(name, value, unit)`` lines."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="samples per trace")
    parser.add_argument("--repeat", type=int, default=3, help="builds per figure (median)")
    parser.add_argument("--suite-runs", type=int, default=2, help="bench suite runs per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        workdir = Path(tmp)
        run_dir = workdir / "run"
        options = SyntheticOptions(
            tests=TESTS, points=args.points, fail_every=7, trip_test=10, community=True
        )
        write_synthetic_run(run_dir, options)
        setup = Setup(workdir, run_dir, max(1, args.repeat), max(1, args.suite_runs))
        for measure in MEASUREMENTS:
            for name, value, unit in measure(setup):
                print(f"{name} {value:.3f} {unit}", flush=True)


if __name__ == "__main__":
    main()
