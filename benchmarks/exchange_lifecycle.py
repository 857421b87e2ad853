"""Exchange lifecycle and supervisor speed on the emulated benches, with simulated time.

Each emulator runs in its own process (``hil emulate --clock sim``), as it does by default,
and the bench talks to it over loopback with the real drivers; the bench clock is a
``SimClock`` on the emulator's control channel, so the whole APIS sequence (activation,
ramp-up, authorization, warm-up, compensation, running with a supervisor cycle every 5 s,
stop, deactivation) runs as fast as the instruments answer.

Prints ``name value unit`` lines:

- ``exchange_one_to_one_wall_ms``: E001 → E003, 2 A, 100 Wh, the whole lifecycle (target
  ≤ 500 ms); ``exchange_one_to_one_sim_s``: the simulated time it covers;
- ``exchange_many_to_one_wall_ms``: E001 + E002 + SUP1 → E003 (3 → 1), 2 A, 100 Wh;
- ``apis_equivalent_speedup``: the one-to-one lifecycle's simulated duration divided by its
  wall time (the baseline: APIS runs it in real time);
- ``supervisor_max_hz_19_units``: back-to-back supervisor cycles (read all 19 units of
  ``benchmarks/benches/bench-19.toml`` concurrently, judge every check) while an exchange
  runs (target ≥ 50); ``supervisor_vs_apis_period_ratio``: that rate x APIS's 5 s period.

Each lifecycle figure is the median of ``--repeats`` runs, each on a freshly reset plant.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from hil.clock import SimClock
from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine
from hil.exchange.supervisor import Supervisor
from hil.units.bench import Bench
from instruments.emulation.process import EmulatorProcess, start_emulator

ROOT = Path(__file__).resolve().parents[1]
EMULATED = ROOT / "fixtures" / "benches" / "emulated.toml"
BENCH_19 = ROOT / "benchmarks" / "benches" / "bench-19.toml"
LIFECYCLE_TARGET_MS = 500.0
SUPERVISOR_TARGET_HZ = 50.0
DECAY_S = 200.0  # simulated seconds between runs: the bus left by the last one decays


def _open(config: BenchConfig, emulator: EmulatorProcess) -> tuple[Bench, SimClock]:
    bench = Bench.on_emulator(config, emulator, timeout_s=2.0, identify=False)
    bench.arm_all()
    assert isinstance(bench.clock, SimClock)
    return bench, bench.clock


def lifecycle(
    config: BenchConfig,
    bench: Bench,
    clock: SimClock,
    emulator: EmulatorProcess,
    exchange: Exchange,
    repeats: int,
) -> tuple[float, float]:
    """Median wall milliseconds and simulated seconds of ``exchange``'s whole lifecycle."""
    walls, sims = [], []
    for _ in range(repeats):
        for uid, port in config.emulation.ports.items():
            if port.soc is not None and config.unit(uid).has_battery:
                emulator.control.set(uid, "soc", port.soc)
        clock.sleep(DECAY_S)
        engine = ExchangeEngine(bench)
        start_wall, start_sim = time.perf_counter(), clock.now()
        (run,) = engine.run(exchange)
        walls.append((time.perf_counter() - start_wall) * 1000.0)
        sims.append(clock.now() - start_sim)
        if run.stop_reason is None or "amount reached" not in run.stop_reason:
            raise RuntimeError(f"the benchmark exchange ended early: {run.stop_reason}")
    return statistics.median(walls), statistics.median(sims)


def supervisor_hz(cycles: int) -> float:
    """Supervisor cycles per wall second on the 19-unit bench, an exchange running."""
    config = load_bench_file(BENCH_19)
    with start_emulator(BENCH_19, clock="sim") as emulator:
        bench, _ = _open(config, emulator)
        try:
            engine = ExchangeEngine(bench)
            engine.start(Exchange.between("E001", "E002", 1.5, duration=3600.0))
            supervisor = Supervisor(config, record_cycles=False)
            expected = engine.expectations()
            errors = 0
            start = time.perf_counter()
            for _ in range(cycles):
                snap = bench.snapshot()
                report = supervisor.check(snap.t, snap.readings, snap.errors, expected)
                errors += len(report.errors)
            elapsed = time.perf_counter() - start
            engine.scram("benchmark done")
            if errors:
                raise RuntimeError(f"the supervisor found {errors} errors on a healthy bench")
        finally:
            bench.close()
    return cycles / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()

    config = load_bench_file(EMULATED)
    with start_emulator(EMULATED, clock="sim") as emulator:
        bench, clock = _open(config, emulator)
        try:
            one_ms, one_sim = lifecycle(
                config,
                bench,
                clock,
                emulator,
                Exchange.between("E001", "E003", 2.0, amount_wh=100),
                args.repeats,
            )
            many_ms, many_sim = lifecycle(
                config,
                bench,
                clock,
                emulator,
                Exchange({"E001": 0.7, "E002": 0.7, "SUP1": 0.6}, {"E003": 2.0}, amount_wh=100),
                args.repeats,
            )
        finally:
            bench.close()
    hz = supervisor_hz(args.cycles)
    print(f"exchange_one_to_one_wall_ms {one_ms:.1f} ms")
    print(f"exchange_one_to_one_sim_s {one_sim:.1f} s")
    print(f"exchange_one_to_one_vs_target {one_ms / LIFECYCLE_TARGET_MS:.3f} ratio")
    print(f"exchange_many_to_one_wall_ms {many_ms:.1f} ms")
    print(f"exchange_many_to_one_sim_s {many_sim:.1f} s")
    print(f"apis_equivalent_speedup {one_sim / (one_ms / 1000.0):.0f} x")
    print(f"supervisor_max_hz_19_units {hz:.1f} Hz")
    print(f"supervisor_vs_target {hz / SUPERVISOR_TARGET_HZ:.2f} ratio")
    print(f"supervisor_vs_apis_period_ratio {hz * config.apis.supervisor_period:.0f} ratio")


if __name__ == "__main__":
    main()
