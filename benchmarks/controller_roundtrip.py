"""Controller round trips against emulated instruments in their own process.

Prints ``name value unit`` lines:

- ``read_us``: one ``CurrentController.read()`` of the default bench's SUP1 (emulated
  Keysight N5772A); ``raw_query_us``: a bare pyvisa-py query of the same data (the same
  compound query) to the same emulator in the same run; ``driver_overhead_ratio`` (target
  <= 1.2).
- ``snapshot_19_units_ms``: ``Bench.snapshot()`` of a 19-unit emulated bench (target
  <= 10 ms); ``sequential_19_units_ms``: the same units read one after the other;
  ``snapshot_vs_sequential_ratio`` (target <= 0.5: concurrency must pay).
- ``snapshot_realistic_ms`` / ``sequential_realistic_ms``: the same 19 units with the
  emulator's instrument timing on (``hil emulate --timing real``: each model's processing
  time per command and the serial line time of every byte, EZA-2500 at 19200 baud, BMS
  RTU at 9600), as real instruments answer; ``snapshot_vs_sequential_ratio_realistic``
  (target <= 0.25: the snapshot should take little more than the slowest unit). The
  EZA-2500 driver's 62 ms pacing between frames (APIS's) stays off, as on any emulated
  bench: the figure is the instruments' time, not the pacing's.
- The CPU each side spent per snapshot and per sequential pass (``*_client_cpu_ms`` for
  this process, ``*_emulator_cpu_ms`` for the emulator's, from ``/proc``; Linux only): the
  emulator serves every instrument from one thread, so a snapshot can take no less than the
  larger of the two with two idle cores, and no less than their sum with one.

Every wall figure is the median of several batches, alternating the compared operations so
that load from other processes hits both alike; CPU figures are totals over all batches.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyvisa
from pyvisa.resources import MessageBasedResource

from hil.config.benchfile import load_bench_file
from hil.units.bench import Bench
from instruments.emulation.process import EmulatorProcess, start_emulator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
BENCH_19 = ROOT / "benchmarks" / "benches" / "bench-19.toml"
SUPPLY_QUERY = ";:".join(
    ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
)


def _open(
    path: Path, *, timing: Literal["real", "none"] | None = None
) -> tuple[EmulatorProcess, Bench]:
    emulator = start_emulator(path, timing=timing)
    bench = Bench.on_emulator(load_bench_file(path), emulator, timeout_s=2.0, identify=False)
    return emulator, bench


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (NaN where ``/proc`` is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    """Per-operation wall time of each batch, and CPU totals of both processes."""

    walls_us: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    emulator_cpu_s: float = 0.0
    operations: int = 0

    @property
    def wall_us(self) -> float:
        return statistics.median(self.walls_us)

    @property
    def client_cpu_us(self) -> float:
        return self.client_cpu_s / self.operations * 1e6

    @property
    def emulator_cpu_us(self) -> float:
        return self.emulator_cpu_s / self.operations * 1e6


def _batch(operation: Callable[[], object], count: int, timing: Timing, emulator_pid: int) -> None:
    cpu, emulator_cpu = time.process_time(), _process_cpu_s(emulator_pid)
    start = time.perf_counter()
    for _ in range(count):
        operation()
    timing.walls_us.append((time.perf_counter() - start) / count * 1e6)
    timing.client_cpu_s += time.process_time() - cpu
    timing.emulator_cpu_s += _process_cpu_s(emulator_pid) - emulator_cpu
    timing.operations += count


def _alternate(
    first: Callable[[], object],
    second: Callable[[], object],
    rounds: int,
    count: int,
    emulator_pid: int,
) -> tuple[Timing, Timing]:
    a, b = Timing(), Timing()
    for _ in range(rounds):
        _batch(first, count, a, emulator_pid)
        _batch(second, count, b, emulator_pid)
    return a, b


def measure_read(rounds: int, count: int) -> list[tuple[str, float, str]]:
    emulator, bench = _open(DEFAULT_BENCH)
    rm = pyvisa.ResourceManager("@py")
    raw = rm.open_resource(emulator.resources["SUP1.supply"])
    assert isinstance(raw, MessageBasedResource)
    raw.read_termination = raw.write_termination = "\n"
    try:
        unit = bench.unit("SUP1")
        unit.read()
        raw.query(SUPPLY_QUERY)
        read, query = _alternate(
            unit.read, lambda: raw.query(SUPPLY_QUERY), rounds, count, emulator.process.pid
        )
    finally:
        raw.close()
        bench.close()
        emulator.stop()
    return [
        ("read_us", read.wall_us, "us"),
        ("raw_query_us", query.wall_us, "us"),
        ("driver_overhead_ratio", read.wall_us / query.wall_us, "ratio"),
        ("read_client_cpu_us", read.client_cpu_us, "us"),
        ("raw_query_client_cpu_us", query.client_cpu_us, "us"),
    ]


def _snapshot_and_sequential(
    rounds: int, count: int, timing: Literal["real", "none"] | None = None
) -> tuple[int, Timing, Timing]:
    """The 19-unit bench's snapshot against the same reads one after the other, each warmed
    up once first: the unit count and both samples."""
    emulator, bench = _open(BENCH_19, timing=timing)
    units = list(bench.units.values())

    def sequential() -> None:
        for unit in units:
            unit.read()

    try:
        bench.snapshot()
        sequential()
        snap, seq = _alternate(bench.snapshot, sequential, rounds, count, emulator.process.pid)
    finally:
        bench.close()
        emulator.stop()
    return len(units), snap, seq


def measure_snapshot(rounds: int, count: int) -> list[tuple[str, float, str]]:
    n, snap, seq = _snapshot_and_sequential(rounds, count)
    return [
        (f"snapshot_{n}_units_ms", snap.wall_us / 1000, "ms"),
        (f"sequential_{n}_units_ms", seq.wall_us / 1000, "ms"),
        ("snapshot_vs_sequential_ratio", snap.wall_us / seq.wall_us, "ratio"),
        ("snapshot_client_cpu_ms", snap.client_cpu_us / 1000, "ms"),
        ("snapshot_emulator_cpu_ms", snap.emulator_cpu_us / 1000, "ms"),
        ("sequential_client_cpu_ms", seq.client_cpu_us / 1000, "ms"),
        ("sequential_emulator_cpu_ms", seq.emulator_cpu_us / 1000, "ms"),
    ]


def measure_snapshot_realistic(rounds: int, count: int) -> list[tuple[str, float, str]]:
    """Snapshot against sequential reads with real instrument timing in the emulator."""
    _, snap, seq = _snapshot_and_sequential(rounds, count, timing="real")
    return [
        ("snapshot_realistic_ms", snap.wall_us / 1000, "ms"),
        ("sequential_realistic_ms", seq.wall_us / 1000, "ms"),
        ("snapshot_vs_sequential_ratio_realistic", snap.wall_us / seq.wall_us, "ratio"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating batches")
    parser.add_argument("--count", type=int, default=100, help="operations per batch")
    parser.add_argument(
        "--realistic-rounds", type=int, default=5, help="alternating batches with real timing"
    )
    args = parser.parse_args()
    for name, value, unit in measure_read(args.rounds, args.count):
        print(f"{name} {value:.3f} {unit}", flush=True)
    for name, value, unit in measure_snapshot(args.rounds, max(1, args.count // 5)):
        print(f"{name} {value:.3f} {unit}", flush=True)
    for name, value, unit in measure_snapshot_realistic(args.realistic_rounds, 2):
        print(f"{name} {value:.3f} {unit}", flush=True)


if __name__ == "__main__":
    main()
