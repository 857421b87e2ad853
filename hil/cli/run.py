"""``hil run``: the main job — run the benches, write the record, build the PDF report.

With no arguments it runs the packaged benches (``test_benches/``) on the packaged emulated
bench, shows one line per test with its verdict, a heartbeat in long tests and a summary
(the plugin's console, ``fixtures.console``), then the report's path, and exits with
pytest's exit code. ``--bench``, ``--emulate``, ``--apis``, ``-k``/``-m``, ``--run-dir`` and
the labgrid options (``--place``, ``--reserve``, ``--coordinator``, ``--place-timeout``;
docs/labgrid.md) pass through to the pytest plugin; anything after ``--`` goes to pytest
unchanged.

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
from pathlib import Path

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
    parser.add_argument(
        "--apis",
        action="store_true",
        help="the emulator also serves the APIS units over HTTP (docs/apis.md)",
    )
    parser.add_argument("-k", dest="keyword", help="only tests matching this expression")
    parser.add_argument("-m", dest="markers", help="only tests with these markers")
    parser.add_argument("--run-dir", type=Path, help="where records and report go")
    parser.add_argument("--operator", help="who runs the bench (on the report's cover)")
    parser.add_argument("--dut", help="the device under test (on the report's cover)")
    parser.add_argument("--station", help="the test station (default: the host name)")
    parser.add_argument(
        "-n",
        dest="workers",
        type=int,
        help="run on N pytest-xdist workers, each with its own emulator; one merged record "
        "and report",
    )
    parser.add_argument(
        "--benches", type=Path, default=BENCHES, help="bench test folder (default: packaged)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--place", help="run on this labgrid place (locked for the run)")
    where.add_argument(
        "--reserve",
        action="append",
        metavar="KEY=VALUE",
        help="run on any free labgrid place with this tag (repeatable)",
    )
    parser.add_argument("--coordinator", metavar="HOST:PORT", help="labgrid coordinator")
    parser.add_argument(
        "--place-timeout", type=float, metavar="S", help="seconds to wait for a place (60)"
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


def build_pytest_args(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The pytest command line for ``args``: pytest itself says nothing per test (``-qq``,
    no tracebacks, no ``[100%]``); the plugin's console (``--hil-console``) prints one line
    per test with its verdict, the heartbeat and the summary."""
    command = [str(args.benches), "-p", "no:cacheprovider", "-qq", "--no-header", "-rN"]
    command += ["--tb=no", "-o", "console_output_style=classic", "--hil-console"]
    command += ["--run-dir", str(run_dir)]
    if args.bench is not None:
        command += ["--bench", str(args.bench)]
    if args.emulate:
        command.append("--emulate")
    if args.no_emulate:
        command.append("--no-emulate")
    if args.apis:
        command.append("--apis")
    if args.keyword:
        command += ["-k", args.keyword]
    if args.markers:
        command += ["-m", args.markers]
    if args.place is not None:
        command += ["--place", args.place]
    for pair in args.reserve or ():
        command += ["--reserve", pair]
    if args.coordinator is not None:
        command += ["--coordinator", args.coordinator]
    if args.place_timeout is not None:
        command += ["--place-timeout", str(args.place_timeout)]
    for option in ("operator", "dut", "station"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    if args.workers:
        command += ["-n", str(args.workers)]
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
    interrupts = Interrupts(SignalTally()).install()
    try:
        print(f"hil run: record in {run_dir}", flush=True)
        try:
            code = int(pytest.main(build_pytest_args(args, run_dir)))
        except SignalInterrupt:  # before pytest took over its signals: nothing was opened
            code = int(pytest.ExitCode.INTERRUPTED)
        if code == pytest.ExitCode.INTERRUPTED:
            interrupts.tally.count = max(interrupts.tally.count, 1)
        interrupts.hold = True
        code = _report(run_dir, code)
    finally:
        interrupts.uninstall()
    if interrupts.tally.count and code == 0:
        return int(pytest.ExitCode.INTERRUPTED)
    return code


def _report(run_dir: Path, code: int) -> int:
    """The report, after the console's summary (a first signal now only stops it from
    starting anew: the report in progress is finished)."""
    workers = sorted(run_dir.glob("gw*/records.jsonl"))
    if workers:
        print(f"hil run: the records of {len(workers)} workers are merged into one")
    if not (run_dir / "records.jsonl").exists() and not workers:
        print("hil run: no run record was written; no report", file=sys.stderr)
        return code or 2
    from reports.build import BuildProgress, build_report

    print("hil run: building the report…", flush=True)
    progress = BuildProgress(sys.stdout)
    try:
        pdf = build_report(run_dir, progress=progress)
    except HilError as exc:
        progress.finish()
        print(f"hil run: the report could not be built: {exc}", file=sys.stderr)
        return code or 2
    progress.finish()
    print(f"hil run: report {pdf}")
    return code
