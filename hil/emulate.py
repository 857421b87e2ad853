"""``hil emulate BENCH.toml``: serve every instrument of a bench on loopback.

Prints one line per instrument (``unit instrument driver resource``) and ``control
HOST:PORT`` — or, with ``--json``, one JSON line — flushed before serving, then runs until
SIGINT, SIGTERM or a ``shutdown`` request. Every path out makes every output safe first.

``--lifeline FD`` (set by :func:`instruments.emulation.process.start_emulator`, not by
people): a pipe's read end whose write end only the parent holds. EOF on it means the
parent died (the kernel closed its end, SIGKILL included): every output is made safe and the
emulator exits. A person's own ``hil emulate`` has no lifeline and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from hil.benchfile import load_bench_file
from hil.errors import HilError
from instruments.emulation.emulator import Emulator, EmulatorInfo

LOOPBACK = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", type=Path, help="bench file (TOML)")
    parser.add_argument("--json", action="store_true", help="print one JSON line, not a table")
    parser.add_argument(
        "--clock",
        choices=("sim", "wall"),
        default="sim",
        help="sim: time moves only on 'advance' (default); wall: real time x --speed",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="wall clock speed-up factor")
    parser.add_argument(
        "--serial",
        choices=("tcp", "pty"),
        default=None,
        help="serve serial instruments on loopback sockets or ptys (default: the bench file's)",
    )
    parser.add_argument("--control-port", type=int, default=0, help="control channel port")
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host other than 127.0.0.1 (instruments become reachable from outside)",
    )
    parser.add_argument("--lifeline", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.host != LOOPBACK and not args.allow_remote:
        print(
            f"hil emulate: refusing to bind {args.host}: add --allow-remote to serve beyond "
            "this machine",
            file=sys.stderr,
        )
        return 2
    if args.host != LOOPBACK:
        print(
            f"hil emulate: WARNING: serving emulated instruments on {args.host}, reachable "
            "from other machines",
            file=sys.stderr,
        )
    try:
        bench = load_bench_file(args.bench)
        emulator = Emulator(
            bench,
            clock=args.clock,
            speed=args.speed,
            host=args.host,
            control_port=args.control_port,
            serial=args.serial,
        )
    except HilError as exc:
        print(f"hil emulate: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(emulator, as_json=args.json, lifeline=args.lifeline))
    return 0


def _print_info(info: EmulatorInfo, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info.as_dict()), flush=True)
        return
    for item in info.instruments:
        print(f"{item.unit} {item.id} {item.driver} {item.resource}")
    print(f"control {info.control}", flush=True)


async def _serve(emulator: Emulator, *, as_json: bool, lifeline: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    reason: list[str] = []

    def on_signal(name: str) -> None:
        reason.append(f"received {name}")
        emulator.stopped.set()

    def on_lifeline() -> None:
        assert lifeline is not None
        try:
            data = os.read(lifeline, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(lifeline)
            reason.append("its parent process died (lifeline closed)")
            emulator.stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    if lifeline is not None:
        os.set_blocking(lifeline, False)
        loop.add_reader(lifeline, on_lifeline)
    info = await emulator.start()
    _print_info(info, as_json=as_json)
    try:
        await emulator.stopped.wait()
    finally:
        if reason:
            emulator.make_safe(f"emulator {reason[0]}")
        await emulator.stop()
