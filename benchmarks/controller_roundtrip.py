"""Controller round trips against emulated instruments in their own process.

Prints ``name value unit`` lines:

- ``read_us``: one ``CurrentController.read()`` of the default bench's SUP1 (emulated
  Keysight N5772A); ``raw_query_us``: a bare pyvisa-py query of the same data (the same
  compound query) to the same emulator in the same run; ``driver_overhead_ratio`` (target
  <= 1.2).
- ``snapshot_19_units_ms``: ``Bench.snapshot()`` of a 19-unit emulated bench (target
  <= 10 ms); ``sequential_19_units_ms``: the same units read one after the other;
  ``snapshot_vs_sequential_ratio`` (target <= 0.5: concurrency must pay).

Every figure is the median of several batches, alternating the compared operations so that
load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyvisa
from pyvisa.resources import MessageBasedResource

from hil.bench import Bench
from hil.benchfile import load_bench_file
from instruments.emulation.process import EmulatorProcess, start_emulator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
BENCH_19 = ROOT / "benchmarks" / "benches" / "bench-19.toml"
SUPPLY_QUERY = ";:".join(
    ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "STAT:OPER:COND?", "STAT:QUES:COND?")
)


def _open(path: Path) -> tuple[EmulatorProcess, Bench]:
    emulator = start_emulator(path)
    bench = Bench.on_emulator(load_bench_file(path), emulator, timeout_s=2.0, identify=False)
    return emulator, bench


def _batch_us(operation: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count * 1e6


def _alternate(
    first: Callable[[], object], second: Callable[[], object], rounds: int, count: int
) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(_batch_us(first, count))
        b.append(_batch_us(second, count))
    return statistics.median(a), statistics.median(b)


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
        read_us, raw_us = _alternate(unit.read, lambda: raw.query(SUPPLY_QUERY), rounds, count)
    finally:
        raw.close()
        bench.close()
        emulator.stop()
    return [
        ("read_us", read_us, "us"),
        ("raw_query_us", raw_us, "us"),
        ("driver_overhead_ratio", read_us / raw_us, "ratio"),
    ]


def measure_snapshot(rounds: int, count: int) -> list[tuple[str, float, str]]:
    emulator, bench = _open(BENCH_19)
    units = list(bench.units.values())

    def sequential() -> None:
        for unit in units:
            unit.read()

    try:
        bench.snapshot()
        snap_us, seq_us = _alternate(bench.snapshot, sequential, rounds, count)
    finally:
        bench.close()
        emulator.stop()
    return [
        (f"snapshot_{len(units)}_units_ms", snap_us / 1000, "ms"),
        (f"sequential_{len(units)}_units_ms", seq_us / 1000, "ms"),
        ("snapshot_vs_sequential_ratio", snap_us / seq_us, "ratio"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating batches")
    parser.add_argument("--count", type=int, default=100, help="operations per batch")
    args = parser.parse_args()
    for name, value, unit in measure_read(args.rounds, args.count):
        print(f"{name} {value:.3f} {unit}", flush=True)
    for name, value, unit in measure_snapshot(args.rounds, max(1, args.count // 5)):
        print(f"{name} {value:.3f} {unit}", flush=True)


if __name__ == "__main__":
    main()
