"""Speed of the PDF report: ``build_report`` on a synthetic record of 50 tests.

The record (``reports.synthetic``) has 50 tests, each with one exchange of five traces of
``--points`` samples (50 plots), four measurements against limits, one failing test in
seven and one safety trip with its shutdown. Prints ``name value unit`` lines:

- ``report_50_tests_s``: wall seconds to build the full report (median of ``--repeat``).
  Target: at most 15 s.
- ``report_50_tests_no_plots_s``: the baseline, the same report without the plots.
- ``report_plots_ratio``: full / baseline, what the 50 plots cost.

More figures are added by appending a function to :data:`MEASUREMENTS` (each gets the
:class:`Setup` and returns ``(name, value, unit)`` lines).

Run: ``.venv/bin/python benchmarks/report_build.py``.
"""

from __future__ import annotations

import argparse
import statistics
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


MEASUREMENTS: list[Callable[[Setup], list[Line]]] = [measure_report]
"""Each returns ``(name, value, unit)`` lines; append more (e.g. the record overhead) here."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="samples per trace")
    parser.add_argument("--repeat", type=int, default=3, help="builds per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        workdir = Path(tmp)
        run_dir = workdir / "run"
        options = SyntheticOptions(tests=TESTS, points=args.points, fail_every=7, trip_test=10)
        write_synthetic_run(run_dir, options)
        setup = Setup(workdir, run_dir, max(1, args.repeat))
        for measure in MEASUREMENTS:
            for name, value, unit in measure(setup):
                print(f"{name} {value:.3f} {unit}")


if __name__ == "__main__":
    main()
