"""A controlling process for the process-level safety tests (run as a child).

It opens the default bench on a running emulator (wall clock), arms and feeds the
emulator's watchdog, installs the process guard, starts a long exchange, prints
``RUNNING`` and then either keeps serving (``--mode hold``: the test signals or kills it)
or returns at once (``--mode exit``: the exit hook must shut the bench down). The record
goes to ``--records``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from emulated_rig import DRIVER_OPTIONS, EMULATED_BENCH

from hil.clock import WallClock
from hil.config.benchfile import load_bench_file
from hil.exchange import Exchange
from hil.exchange.engine import ExchangeEngine
from hil.exchange.safety import EmulatorWatchdog, SignalInterrupt, guard_bench
from hil.records import RecordWriter
from hil.units.bench import Bench


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True)
    parser.add_argument("--resources", required=True, type=Path)
    parser.add_argument("--records", required=True, type=Path)
    parser.add_argument("--mode", choices=("hold", "exit"), default="hold")
    parser.add_argument("--scram-delay", type=float, default=0.3)
    parser.add_argument("--watchdog", type=float, default=2.0)
    args = parser.parse_args()

    config = load_bench_file(EMULATED_BENCH)
    apis = dataclasses.replace(config.apis, scram_vr_delay=args.scram_delay, supervisor_period=1.0)
    config = dataclasses.replace(config, apis=apis)
    resources = json.loads(args.resources.read_text())
    bench = Bench.open(
        config,
        resources=resources,
        clock=WallClock(),
        timeout_s=0.5,
        identify=False,
        driver_options=DRIVER_OPTIONS,
    )
    bench.arm_all()
    recorder = RecordWriter(args.records)
    engine = ExchangeEngine(bench, recorder=recorder, authorize=False)
    watchdog = EmulatorWatchdog.arm(args.control, args.watchdog, recorder)
    guard_bench(bench, engine, watchdog=watchdog, recorder=recorder)
    try:
        engine.start(Exchange.between("E001", "E003", 1.0, duration=3600.0, name="held"))
        print("RUNNING", flush=True)
        if args.mode == "exit":
            return 0
        engine.serve()
    except SignalInterrupt as exc:
        return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
