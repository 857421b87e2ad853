"""The run record: ``runs/<run-id>/records.jsonl``, written as the run goes.

One JSON object a line, each line flushed as soon as it is written, so that the file is
valid up to its last complete line after any crash (even SIGKILL). Every line carries the
schema name and version, its ``type`` and the wall time it was written. The schema is
documented in ``docs/records.md``; readers refuse a record of a newer major version.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hil.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA = "pp2p-hil/records"
#: 2: ``stimulus`` lines (faults injected, plant settings); the run header's ``sign_off``,
#: ``test_sources``, ``collected`` and ``calibration_due``. Version-1 records read as before.
SCHEMA_VERSION = 2
RECORDS_FILE = "records.jsonl"

#: Line types a version-1 record may contain.
LINE_TYPES = frozenset(
    {
        "run_start",
        "test_start",
        "step",
        "measurement",
        "series",
        "safety_event",
        "shutdown",
        "test_end",
        "run_end",
        "note",
        "community",
        "stimulus",
    }
)

#: A run stopped by Ctrl-C or SIGTERM: it ended cleanly (``run_end`` written, outputs
#: safe) but did not run every collected test; ``run_end`` lists them in ``not_run``. The
#: test that was running when the signal came ends with this outcome too.
INTERRUPTED = "INTERRUPTED"
#: Test outcomes. A run without a ``run_end`` line is ABORTED.
OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIPPED", "SAFETY TRIP", INTERRUPTED)
ABORTED = "ABORTED"


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: non-finite floats become None, tuples and sets lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _clean(value.tolist())
    return str(value)


class RecordWriter:
    """Appends lines to a run's record; thread-safe, one flush per line.

    A flush hands each line to the operating system, which survives the process dying;
    :meth:`sync` (each test's end) and :meth:`close` (the run's end) also ``fsync`` it to
    the disk, so a power loss keeps every finished test. The folder is synced once when the
    file is created, so that the file itself survives too. ``tee`` gets every line written,
    in file order (the live page); it must be quick, and what it raises is only logged."""

    def __init__(
        self, run_dir: Path, *, tee: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / RECORDS_FILE
        self.tee = tee
        self._lock = threading.Lock()
        created = not self.path.exists()
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        if created:
            _sync_folder(run_dir)

    def write(self, line_type: str, **fields: Any) -> None:
        """Write one line of ``line_type`` with ``fields``; silently ignored once closed."""
        if line_type not in LINE_TYPES:
            raise ValueError(f"unknown record line type {line_type!r}")
        line = {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "type": line_type,
            "wall": time.time(),
            **_clean(fields),
        }
        text = json.dumps(line, ensure_ascii=False, allow_nan=False)
        with self._lock:
            if self._file is None:
                return
            self._file.write(text + "\n")
            self._file.flush()
            if self.tee is not None:
                try:
                    self.tee(line)
                except Exception as exc:
                    log.error("the record's tee failed on a %s line: %s", line_type, exc)

    def sync(self) -> None:
        """Flush and ``fsync`` every line written so far (raises ``OSError`` if it fails)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Sync and close; the file is closed even when the sync fails (then it raises)."""
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.flush()
                    os.fsync(file.fileno())
                finally:
                    file.close()


def _sync_folder(folder: Path) -> None:
    """``fsync`` a folder so that a file just created in it survives a power loss (POSIX;
    a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("could not sync the folder %s: %s", folder, exc)
    finally:
        os.close(fd)


@dataclass
class RecordSet:
    """A record read back: its lines in order, and what could not be read."""

    path: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    corrupt: list[tuple[int, str]] = field(default_factory=list)
    truncated: bool = False

    def of_type(self, line_type: str) -> Iterator[dict[str, Any]]:
        return (line for line in self.lines if line.get("type") == line_type)

    @property
    def header(self) -> dict[str, Any] | None:
        return next(self.of_type("run_start"), None)

    @property
    def end(self) -> dict[str, Any] | None:
        return next(self.of_type("run_end"), None)

    @property
    def aborted(self) -> bool:
        return self.end is None


def read_records(path: Path) -> RecordSet:
    """Read a record file (or the ``records.jsonl`` in a run directory).

    Corrupt lines in the middle are skipped and listed; an incomplete last line marks the
    record truncated. A missing file, an empty one, or a newer schema is a ``ConfigError``.
    """
    file = path / RECORDS_FILE if path.is_dir() else path
    if not file.exists():
        raise ConfigError(f"{file}: no run record here (expected {RECORDS_FILE})")
    raw = file.read_bytes()
    if not raw.strip():
        raise ConfigError(f"{file}: the run record is empty")
    records = RecordSet(path=file)
    chunks = raw.split(b"\n")
    records.truncated = chunks[-1] != b""
    for number, chunk in enumerate(chunks, start=1):
        if not chunk.strip():
            continue
        try:
            line = json.loads(chunk)
            if not isinstance(line, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            if number == len(chunks) and records.truncated:
                records.corrupt.append((number, "incomplete last line (the run was cut off)"))
            else:
                records.corrupt.append((number, f"unreadable line: {exc}"))
            continue
        if line.get("schema") != SCHEMA:
            records.corrupt.append((number, f"not a {SCHEMA} line"))
            continue
        version = line.get("version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ConfigError(
                f"{file}:{number}: record schema version {version!r} is newer than this "
                f"toolkit reads ({SCHEMA_VERSION}); upgrade pp2p-hil"
            )
        records.lines.append(line)
    if not records.lines:
        raise ConfigError(f"{file}: no readable line in the run record")
    return records
