"""``hil report RUN_DIR [-o OUT] [--no-plots]``: rebuild the PDF report of a run.

Reads ``RUN_DIR/records.jsonl`` (a record file may be given instead; a pytest-xdist run
directory's workers' records are merged into it first) and writes
``RUN_DIR/report.pdf`` (or ``OUT``), then prints the PDF's path. A record that stops
early gives a report marked ABORTED on every page; corrupt lines are skipped and named in
it. A missing directory, an empty record or one of a newer schema is a one-line error and
exit status 2 — never a traceback (``-vv`` logs one for a failure inside the builder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hil.errors import HilError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory (runs/<id>)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="OUT",
        help="where to write the PDF (default RUN_DIR/report.pdf)",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="leave the exchange plots out (quick preview)"
    )


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    try:
        # imported here so that `hil --help` does not load reportlab and matplotlib
        from reports.build import BuildProgress, build_report

        progress = BuildProgress(sys.stderr, "hil report")  # stdout holds only the path
        try:
            path = build_report(run_dir, args.output, plots=not args.no_plots, progress=progress)
        finally:
            progress.finish()
    except HilError as exc:
        print(f"hil report: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or run_dir
        print(f"hil report: {where}: {_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        log.debug("report builder failed", exc_info=True)
        print(
            f"hil report: could not build the report of {run_dir}: "
            f"{type(exc).__name__}: {_one_line(exc)} (run with -vv for details)",
            file=sys.stderr,
        )
        return 2
    print(path)
    return 0
