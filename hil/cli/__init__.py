"""The ``hil`` command line: one entry point, one subcommand per job.

Each subcommand lives in its own module and registers itself through ``COMMANDS``; the
handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path

from hil import __version__

# subcommand name -> (module, one-line help). The module defines
# ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("hil.cli.bench", "generate a community bench of N houses (bench generate)"),
    "emulate": ("hil.cli.emulate", "serve every instrument of a bench on loopback"),
    "labgrid": ("hil.cli.labgrid", "bench files and labgrid places: exporter config, places"),
    "identify": ("hil.cli.identify", "print every instrument's vendor, model, serial and firmware"),
    "live": ("hil.cli.live", "serve the live page for a running emulator (watch only)"),
    "report": ("hil.cli.report", "rebuild the PDF report of a run"),
    "run": ("hil.cli.run", "run the benches, write the run record and the PDF report"),
    "scenario": ("hil.cli.scenario", "validate an APIS scenario file"),
}


def output_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a folder the toolkit writes into (created if missing), or
    None. Checked before anything starts, so that a bad ``--run-dir`` is one line, not a
    traceback from deep inside pytest after the bench was opened."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".hil-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        where = exc.filename or path
        return f"{where}: {exc.strerror or exc}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop benches for peer-to-peer DC power interchange.",
    )
    parser.add_argument("--version", action="version", version=f"hil {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    code: int = module.run(args)
    return code
