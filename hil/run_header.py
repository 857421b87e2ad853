"""What a run record's first and last lines say: the run header and the run end.

The pytest plugin calls :func:`run_start_fields` once the bench is open and writes the
result as the ``run_start`` line (``RecordWriter.write("run_start", **fields)``), and
:func:`run_end_fields` at the very end. The header pins everything a reader of the report
needs to trust it: the bench file (its text and SHA-256), every instrument's identity,
the envelopes in force, the software versions, the git revision, the host and the time.
Schema: ``docs/records.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import secrets
import socket
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hil import __version__
from hil.config.bench import BenchConfig
from hil.controller import InstrumentIdentity
from hil.records import INTERRUPTED, OUTCOMES

log = logging.getLogger(__name__)

#: Header key → distribution name, for :func:`software_versions`.
DISTRIBUTIONS: dict[str, str] = {
    "numpy": "numpy",
    "pyvisa": "pyvisa",
    "pyvisa_py": "pyvisa-py",
    "pymodbus": "pymodbus",
    "pyserial": "pyserial",
    "reportlab": "reportlab",
    "matplotlib": "matplotlib",
}

#: Worst first: the overall verdict of a run is its worst test outcome.
SEVERITY: dict[str, int] = {
    "SAFETY TRIP": 5,
    INTERRUPTED: 4,
    "ERROR": 3,
    "FAIL": 2,
    "PASS": 1,
    "SKIPPED": 0,
}

GIT_TIMEOUT_S = 5.0
_REPO = Path(__file__).resolve().parent.parent


def new_run_id(now: datetime | None = None) -> str:
    """``20250131-142501-3fa2``: sortable by time, unique enough for one host."""
    stamp = (now or datetime.now().astimezone()).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def software_versions() -> dict[str, str | None]:
    """The toolkit's, Python's and every runtime dependency's version (None if absent)."""
    versions: dict[str, str | None] = {
        "toolkit": __version__,
        "python": platform.python_version(),
    }
    for key, dist in DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def git_revision(repo: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (default: the toolkit's checkout), with
    ``-dirty`` appended when tracked files differ; None without git or outside a work tree."""
    where = str(repo or _REPO)
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("no git revision for %s: %s", where, exc)
        return None
    return f"{head}-dirty" if status else head or None


def bench_text(path: Path) -> str | None:
    """The bench file's text exactly as its bytes (so its SHA-256 can be re-checked)."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("bench file %s could not be read for the run header: %s", path, exc)
        return None


def run_start_fields(
    run_id: str,
    bench: BenchConfig,
    identities: Sequence[InstrumentIdentity],
    *,
    emulated: bool,
    unidentified: Mapping[str, str] | None = None,
    started_at: datetime | None = None,
    repo: Path | None = None,
) -> dict[str, Any]:
    """The fields of the ``run_start`` line.

    ``identities`` are the instruments that answered ``identify()``; ``unidentified``
    names the others (``<unit>.<instrument>`` → why) so that the report lists them too.
    ``emulated`` says whether the instruments are the emulator's or real ones.
    """
    started = started_at or datetime.now().astimezone()
    return {
        "run_id": run_id,
        "bench": {
            "name": bench.name,
            "description": bench.description,
            "path": str(bench.path),
            "sha256": bench.sha256,
            "text": bench_text(bench.path),
        },
        "emulated": emulated,
        "instruments": [dataclasses.asdict(i) | {"emulated": emulated} for i in identities],
        "unidentified": dict(unidentified or {}),
        "envelopes": bench.envelope.as_dict(),
        "calibration_due": {
            inst.key: str(inst.calibration_due)
            for inst in bench.instruments()
            if inst.calibration_due is not None
        },
        "software": software_versions(),
        "git_revision": git_revision(repo),
        "host": socket.gethostname(),
        "started_at": started.isoformat(timespec="seconds"),
    }


def overall_outcome(outcomes: Iterable[str]) -> str:
    """The worst outcome: SAFETY TRIP > ERROR > FAIL > PASS; SKIPPED only if nothing else
    ran; ``NO TESTS`` for an empty run. Unknown outcomes count as ERROR."""
    worst: str | None = None
    for outcome in outcomes:
        ranked = outcome if outcome in SEVERITY else "ERROR"
        if worst is None or SEVERITY[ranked] > SEVERITY[worst]:
            worst = ranked
    return worst or "NO TESTS"


def run_end_fields(
    outcomes: Iterable[str], *, finished_at: datetime | None = None
) -> dict[str, Any]:
    """The fields of the ``run_end`` line: overall outcome, counts by outcome, end time."""
    listed = list(outcomes)
    counts = Counter(listed)
    ordered = {name: counts[name] for name in OUTCOMES if counts[name]}
    ordered.update({name: n for name, n in counts.items() if name not in ordered})
    finished = finished_at or datetime.now().astimezone()
    return {
        "outcome": overall_outcome(listed),
        "counts": ordered,
        "finished_at": finished.isoformat(timespec="seconds"),
    }
