"""One record of a pytest-xdist run: the workers' records merged into the run directory.

Under ``pytest -n N`` (or ``hil run -n N``) every worker has its own bench and emulator and
writes its own complete record in ``<run dir>/gw<i>/records.jsonl`` (``docs/records.md``,
"Under pytest-xdist"). :func:`merge_workers` joins them into ``<run dir>/records.jsonl``,
which the report reads like any other:

- one ``run_start``: the first worker's header, with every worker's instruments (each
  with its ``worker``: the emulators they talked to are listed apart), the unidentified
  ones named ``<worker>:<unit>.<instrument>``, ``workers`` (worker → its record, emulator
  log and instrument count) and the earliest start;
- the tests in collection order (``collected`` of the header; the worker's order where it
  is absent), each test's lines together, from ``test_start`` to ``test_end``, every line
  marked with its ``worker``; a test left open by a worker that died comes last;
- each worker's lines outside tests (its set-up and session end), marked too;
- one ``run_end`` when every worker wrote one: the worst outcome, the summed counts, the
  latest end, and for an interrupted run the collected tests no worker started. A worker
  without ``run_end`` leaves the merged record without one: the report says ABORTED.

Lines are copied as they are (schema, version, wall time); bench times (``t``) stay each
worker's own clock. A worker's record that cannot be read is named in a ``note``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.records import INTERRUPTED, RECORDS_FILE, SCHEMA, SCHEMA_VERSION, read_records
from hil.run_header import overall_outcome

#: A worker's sub-directory, as pytest-xdist names workers.
WORKER_DIR = re.compile(r"^gw(\d+)$")


def worker_records(run_dir: Path) -> list[Path]:
    """The workers' record files under ``run_dir``, in worker order (gw0, gw1, … gw10)."""
    found = []
    for path in run_dir.glob(f"gw*/{RECORDS_FILE}"):
        match = WORKER_DIR.match(path.parent.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


@dataclass
class _Worker:
    """One worker's record, cut into its header, tests, session lines and end."""

    name: str
    path: Path
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    tests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    open_tests: list[str] = field(default_factory=list)
    outside: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> _Worker:
        worker = cls(path.parent.name, path)
        try:
            records = read_records(path)
        except (ConfigError, OSError) as exc:
            worker.problems.append(f"worker {worker.name}: its record could not be read: {exc}")
            return worker
        worker.problems += [
            f"worker {worker.name}: line {n} of its record skipped: {why}"
            for n, why in records.corrupt
        ]
        current: list[dict[str, Any]] | None = None
        for raw in records.lines:
            line = {**raw, "worker": worker.name}
            kind = line.get("type")
            if kind == "run_start" and worker.header is None:
                worker.header = line
            elif kind == "run_end":
                worker.end = line
            elif kind == "test_start":
                nodeid = str(line.get("nodeid", ""))
                current = worker.tests.setdefault(nodeid, [])
                current.append(line)
                worker.open_tests.append(nodeid)
            elif current is not None:
                current.append(line)
                if kind == "test_end":
                    nodeid = str(line.get("nodeid", ""))
                    if nodeid in worker.open_tests:
                        worker.open_tests.remove(nodeid)
                    current = None
            else:
                worker.outside.append(line)
        return worker


def _header(workers: list[_Worker]) -> dict[str, Any]:
    headers = [w for w in workers if w.header is not None]
    if not headers:
        return {}
    merged = dict(headers[0].header or {})
    merged["instruments"] = [
        {**inst, "worker": w.name}
        for w in headers
        for inst in (w.header or {}).get("instruments") or []
        if isinstance(inst, dict)
    ]
    merged["unidentified"] = {
        f"{w.name}:{key}": why
        for w in headers
        for key, why in ((w.header or {}).get("unidentified") or {}).items()
    }
    starts = [str((w.header or {}).get("started_at", "")) for w in headers]
    merged["started_at"] = min((s for s in starts if s), default="")
    merged["workers"] = {
        w.name: {
            "record": str(w.path),
            "emulator_log": str(w.path.parent / "emulator.log"),
            "instruments": len((w.header or {}).get("instruments") or []),
        }
        for w in workers
    }
    merged.pop("worker", None)
    return merged


def _order(workers: list[_Worker]) -> list[str]:
    """Collection order: the header's ``collected``, then any test it does not name."""
    order: list[str] = []
    for w in workers:
        collected = (w.header or {}).get("collected")
        if isinstance(collected, list) and collected:
            order = [str(n) for n in collected]
            break
    for w in workers:
        order += [n for n in w.tests if n not in order]
    return order


def _end(workers: list[_Worker], order: list[str]) -> dict[str, Any] | None:
    if any(w.end is None for w in workers):
        return None
    ends = [w.end or {} for w in workers]
    counts: Counter[str] = Counter()
    for end in ends:
        counts.update({str(k): int(v) for k, v in (end.get("counts") or {}).items()})
    merged: dict[str, Any] = dict(ends[0])
    merged.pop("worker", None)
    merged["outcome"] = overall_outcome(str(e.get("outcome", "ERROR")) for e in ends)
    merged["counts"] = dict(counts)
    merged["finished_at"] = max(str(e.get("finished_at", "")) for e in ends)
    reasons = [str(e["interrupted"]) for e in ends if e.get("interrupted")]
    merged.pop("not_run", None)
    if reasons:
        started = {n for w in workers for n in w.tests}
        merged["interrupted"] = reasons[0]
        merged["not_run"] = [n for n in order if n not in started]
        if merged["outcome"] != "SAFETY TRIP":
            merged["outcome"] = INTERRUPTED
    return merged


def _note(message: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "type": "note", "message": message}


def merged_lines(paths: list[Path]) -> list[dict[str, Any]]:
    """The lines of one record made of the workers' records at ``paths``."""
    workers = [_Worker.read(path) for path in paths]
    header = _header(workers)
    order = _order(workers)
    blocks: list[list[dict[str, Any]]] = [[header]] if header else []
    unfinished: list[list[dict[str, Any]]] = []
    for nodeid in order:
        for w in workers:
            block = w.tests.get(nodeid)
            if block is not None:
                (unfinished if nodeid in w.open_tests else blocks).append(block)
    for w in workers:
        blocks.append(w.outside + [_note(problem) for problem in w.problems])
    blocks += unfinished
    lines = [line for block in blocks for line in block]
    end = _end(workers, order)
    if end is not None and not unfinished:
        lines.append(end)
    return lines


def merge_workers(run_dir: Path) -> Path | None:
    """Write ``run_dir/records.jsonl`` from the workers' records; None when ``run_dir``
    has no worker record (or already has its own record, which is left alone)."""
    target = run_dir / RECORDS_FILE
    paths = worker_records(run_dir)
    if target.exists() or not paths:
        return None
    lines = merged_lines(paths)
    temp = run_dir / f".{RECORDS_FILE}.{os.getpid()}.partial"
    with temp.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
    os.replace(temp, target)
    return target
