"""``build_report(run_dir)``: a run directory's record in, ``report.pdf`` out.

The PDF is written to a temporary file beside its destination and moved into place only
when complete, so a report that fails half-way never leaves a half-written PDF behind.
A missing directory, an empty record or one of a newer schema raise ``ConfigError`` with a
one-line message; anything readable gives a report, which names what is missing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hil.errors import ConfigError
from hil.records import RECORDS_FILE, read_records
from reports.merge import merge_workers
from reports.model import ReportModel, build_model
from reports.pdf import Progress, write_pdf
from reports.progress import BuildProgress

__all__ = ["REPORT_FILE", "BuildProgress", "build_report", "load_model"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.pdf"


def load_model(run_dir: Path) -> ReportModel:
    """The report model of the record in ``run_dir`` (or of a ``records.jsonl`` file)."""
    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such run directory")
    if run_dir.is_dir():
        merge_workers(run_dir)  # a pytest-xdist run: one record from the workers' records
    if run_dir.is_dir() and not (run_dir / RECORDS_FILE).exists():
        raise ConfigError(f"{run_dir}: not a run directory (it has no {RECORDS_FILE})")
    try:
        records = read_records(run_dir)
    except OSError as exc:
        raise ConfigError(f"{run_dir}: the run record cannot be read: {exc.strerror}") from None
    return build_model(records)


def build_report(
    run_dir: Path,
    output: Path | None = None,
    *,
    plots: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Write the PDF report of the run in ``run_dir``; returns its path.

    ``output`` defaults to ``run_dir/report.pdf``; ``plots=False`` leaves the exchange plots
    out (a quick preview); ``progress(done, total, what)`` is told how far the build is
    (:class:`reports.progress.BuildProgress` prints it).
    """
    model = load_model(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    target = output or folder / REPORT_FILE
    if target.is_dir():
        target = target / REPORT_FILE
    if not target.parent.is_dir():
        raise ConfigError(f"{target}: the folder {target.parent} does not exist")
    temp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        pages = write_pdf(model, temp, plots=plots, progress=progress)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    log.info("wrote %s (%d pages)", target, pages)
    return target
