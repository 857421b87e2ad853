"""Where the engine, the supervisor and the shutdown write what they did.

A :class:`Recorder` is anything with ``write(line_type, **fields)``: the run record
(:class:`hil.records.RecordWriter`) in a test run, :class:`MemoryRecorder` in the toolkit's
own tests, :class:`NullRecorder` when nothing is kept. Line types are those of the run
record (``step``, ``measurement``, ``series``, ``safety_event``, ``shutdown``, ``note``).
A recorder must never stop a control path: :func:`safe_write` logs and swallows a failing
write, so that a full disk cannot keep an output on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """Writes one record line of ``line_type`` with ``fields``."""

    def write(self, line_type: str, **fields: Any) -> None: ...


class NullRecorder:
    """Keeps nothing."""

    def write(self, line_type: str, **fields: Any) -> None:
        return None


class MemoryRecorder:
    """Keeps every line in memory as a dict with its ``type`` (tests, small tools)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, line_type: str, **fields: Any) -> None:
        with self._lock:
            self.lines.append({"type": line_type, **fields})

    def of_type(self, line_type: str) -> Iterator[dict[str, Any]]:
        with self._lock:
            lines = list(self.lines)
        return (line for line in lines if line["type"] == line_type)

    def text(self) -> str:
        """Every line as text, for "is this unit named anywhere" checks."""
        with self._lock:
            return "\n".join(repr(line) for line in self.lines)


def safe_write(recorder: Recorder | None, line_type: str, **fields: Any) -> None:
    """Write a line if there is a recorder; a failing write is logged, never raised."""
    if recorder is None:
        return
    try:
        recorder.write(line_type, **fields)
    except Exception as exc:
        log.error("could not write a %s record line: %s", line_type, exc)
