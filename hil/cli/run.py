"""``hil run``: the main job — run the benches, write the record, build the PDF report.

With no arguments it runs the packaged benches (``test_benches/``) on the packaged emulated
bench, shows progress (tests done / total and the test running now), prints a summary and
the report's path, and exits with pytest's exit code. ``--bench``, ``--emulate``,
``-k``/``-m`` and ``--run-dir`` pass through to the pytest plugin; anything after ``--``
goes to pytest unchanged.

Ctrl-C (SIGINT to the process or its whole group) or SIGTERM, as pytest's: the first stops
the running test, the plugin runs the ordered shutdown while the emulator (in a session of
its own) still answers, the summary is printed, the record closed and ``report.pdf`` built
with the verdict INTERRUPTED and the tests that never ran; exit code 2. A signal while the
report is being built lets it finish (exit code 2). A second signal at any moment makes
every output safe and exits at once with 128 + signal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

import pytest

from hil.cli import output_dir_problem
from hil.errors import HilError
from hil.exchange.safety import Interrupts, SignalInterrupt, SignalTally
from hil.run_header import new_run_id

#: The packaged benches, beside the ``hil`` package in a source tree or an installed wheel.
BENCHES = Path(__file__).resolve().parents[2] / "test_benches"
#: Where ``--live`` without an address serves the page (``docs/live.md``).
LIVE_DEFAULT = "127.0.0.1:8765"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", type=Path, help="bench file (default: the emulated bench)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--emulate", action="store_true", help="run on the bench's emulated twin")
    mode.add_argument("--no-emulate", action="store_true", help="run on real instruments")
    parser.add_argument("-k", dest="keyword", help="only tests matching this expression")
    parser.add_argument("-m", dest="markers", help="only tests with these markers")
    parser.add_argument("--run-dir", type=Path, help="where records and report go")
    parser.add_argument(
        "--benches", type=Path, default=BENCHES, help="bench test folder (default: packaged)"
    )
    parser.add_argument(
        "--live",
        nargs="?",
        const=LIVE_DEFAULT,
        metavar="HOST:PORT",
        help=f"serve the live operator page while the run goes (default {LIVE_DEFAULT})",
    )
    parser.add_argument("--no-prompts", action="store_true", help="refuse operator prompts")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")


class Progress:
    """A pytest plugin printing one line per test: done / total, outcome, name."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0
        self.done = 0
        self.outcomes: Counter[str] = Counter()
        #: The test between its start and its teardown's report (None between tests).
        self.running: str | None = None
        self._outcome: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.total = len(items)
        self._say(f"hil run: {self.total} tests collected")

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running = nodeid
        self._say(f"[{self.done + 1}/{self.total}] running {nodeid}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every test reports setup, call (unless skipped) and teardown; count at teardown."""
        outcome = self._outcome.get(report.nodeid, "PASSED")
        if report.failed:
            outcome = "FAILED" if report.when == "call" else "ERROR"
        elif report.skipped and outcome == "PASSED":
            outcome = "SKIPPED"
        self._outcome[report.nodeid] = outcome
        if report.when == "teardown":
            self.running = None
            self.done += 1
            self.outcomes[outcome] += 1
            self._say(f"[{self.done}/{self.total}] {outcome:7} {report.nodeid}")

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def build_pytest_args(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The pytest command line for ``args`` (quiet output: the progress lines say it all)."""
    command = [str(args.benches), "-p", "no:cacheprovider", "-q", "--no-header", "-rN"]
    command += ["--run-dir", str(run_dir)]
    if args.bench is not None:
        command += ["--bench", str(args.bench)]
    if args.emulate:
        command.append("--emulate")
    if args.no_emulate:
        command.append("--no-emulate")
    if args.keyword:
        command += ["-k", args.keyword]
    if args.markers:
        command += ["-m", args.markers]
    if getattr(args, "live", None):
        command += ["--live", args.live]
    if getattr(args, "no_prompts", False):
        command.append("--no-prompts")
    return command + list(args.pytest_args)


def run(args: argparse.Namespace) -> int:
    if not args.benches.is_dir():
        print(f"hil run: no bench folder at {args.benches}", file=sys.stderr)
        return 2
    run_dir = (args.run_dir or Path("runs") / new_run_id()).resolve()
    problem = output_dir_problem(run_dir)
    if problem is not None:
        print(
            f"hil run: --run-dir {run_dir} cannot hold the run record: {problem}", file=sys.stderr
        )
        return 2
    progress = Progress(sys.stdout)
    started = time.monotonic()
    interrupts = Interrupts(SignalTally()).install()
    try:
        print(f"hil run: record in {run_dir}", flush=True)
        try:
            code = int(pytest.main(build_pytest_args(args, run_dir), plugins=[progress]))
        except SignalInterrupt:  # before pytest took over its signals: nothing was opened
            code = int(pytest.ExitCode.INTERRUPTED)
        if code == pytest.ExitCode.INTERRUPTED:
            interrupts.tally.count = max(interrupts.tally.count, 1)
        interrupts.hold = True
        code = _summarise(run_dir, progress, time.monotonic() - started, code)
    finally:
        interrupts.uninstall()
    if interrupts.tally.count and code == 0:
        return int(pytest.ExitCode.INTERRUPTED)
    return code


def _summarise(run_dir: Path, progress: Progress, elapsed: float, code: int) -> int:
    """The summary line, then the report (a first signal now only stops it from starting
    anew: the report in progress is finished)."""
    counts = ", ".join(f"{n} {name.lower()}" for name, n in sorted(progress.outcomes.items()))
    summary = f"{progress.done} of {progress.total} tests in {elapsed:.1f} s"
    print(f"hil run: {summary}: {counts or 'none'}")
    if code == pytest.ExitCode.INTERRUPTED:
        never_ran = progress.total - progress.done
        during = ""
        if progress.running is not None:
            never_ran -= 1
            during = f" during {progress.running}"
        print(f"hil run: INTERRUPTED{during}: {never_ran} tests never ran")
    if not (run_dir / "records.jsonl").exists():
        print("hil run: no run record was written; no report", file=sys.stderr)
        return code or 2
    try:
        from reports.build import build_report

        pdf = build_report(run_dir)
    except HilError as exc:
        print(f"hil run: the report could not be built: {exc}", file=sys.stderr)
        return code or 2
    print(f"hil run: report {pdf}")
    return code
