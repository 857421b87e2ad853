"""What a labgrid place costs a run: lock, resolve and release against a local coordinator.

Starts ``labgrid-coordinator -l 127.0.0.1:0`` and one emulated place (``hil emulate
--labgrid``, its own exporter) in a temporary folder, then times ``--cycles`` rounds of
:meth:`hil.lab.PlaceHold.take` (by name, and by tag reservation) followed by ``release``.
The baseline is the bare connection (connect, load places and resources, close), measured
in the same run. Prints ``name value unit`` lines; every process is stopped at the end.
Needs the labgrid extra.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hil.config.benchfile import load_bench_file
from hil.lab import PlaceHold
from hil.lab.coordinator import LabClient
from hil.lab.exporter import labgrid_command
from hil.lab.places import LabPlace

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"


def start(command: list[str], folder: Path, pattern: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(pattern, line)
        if match:  # keep reading: the coordinator prints every request, and a full pipe
            # would stop it
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(0)
    raise SystemExit(f"{command[:3]} ended before printing {pattern!r}")


def timed(action: Callable[[], object], cycles: int) -> list[float]:
    times = []
    for _ in range(cycles):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    bench = load_bench_file(BENCH)
    children: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="hil-labgrid-bench-") as name:
        folder = Path(name)
        try:
            coordinator, line = start(
                [*labgrid_command("labgrid-coordinator"), "-l", "127.0.0.1:0"],
                folder,
                r"127\.0\.0\.1:\d+",
            )
            children.append(coordinator)
            address = line
            emulator, _ = start(
                [
                    sys.executable,
                    "-m",
                    "hil.cli",
                    "emulate",
                    str(BENCH),
                    "--labgrid",
                    address,
                    "--place",
                    "bench-emu",
                ],
                folder,
                r"^place ",
            )
            children.append(emulator)
            by_name = LabPlace(place="bench-emu", coordinator=address)
            by_tag = LabPlace(tags={"kind": "emulated"}, coordinator=address)
            connect = timed(lambda: LabClient(address).close(), args.cycles)
            named = timed(lambda: PlaceHold.take(bench, by_name, 10).release(), args.cycles)
            tagged = timed(lambda: PlaceHold.take(bench, by_tag, 10).release(), args.cycles)
        finally:
            for child in reversed(children):
                os.killpg(child.pid, signal.SIGTERM)
                child.wait(30)
    base = statistics.median(connect)
    for label, values in (("connect", connect), ("place", named), ("reserve", tagged)):
        print(f"labgrid_{label}_ms_median {statistics.median(values):.1f} ms")
        print(f"labgrid_{label}_ms_max {max(values):.1f} ms")
    print(f"labgrid_place_vs_connect {statistics.median(named) / base:.2f} ratio")
    print(f"labgrid_reserve_vs_connect {statistics.median(tagged) / base:.2f} ratio")
    print(f"labgrid_cycles {args.cycles} count")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
