"""``hil live --emulator HOST:PORT``: the live page for an emulator that is already running.

Serves the page (``--listen``, default 127.0.0.1:8765; port 0 picks a free one) and feeds
it from the emulator's ``status`` :data:`~hil.live.events.RATE_HZ` times a second
(:class:`~hil.live.watch.EmulatorWatch`). It only watches: no Stop (the run that owns the
emulator stops it), no prompts. ``--bench FILE`` gives the page the units' functions and
envelopes. Runs until Ctrl-C or SIGTERM (exit 0) or until the emulator stops answering
(one line, exit 1). A bad argument is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from hil.config.benchfile import load_bench_file
from hil.errors import HilError
from hil.live.events import EventHub, bench_event
from hil.live.prompts import PromptDesk
from hil.live.server import LiveApp, LiveServer, parse_address
from hil.live.watch import EmulatorWatch
from instruments.emulation.client import ControlClient

DEFAULT_LISTEN = "127.0.0.1:8765"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--emulator", required=True, metavar="HOST:PORT", help="the emulator's control channel"
    )
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="where the page is served"
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="let --listen be beyond loopback"
    )
    parser.add_argument("--bench", type=Path, help="the emulator's bench file (envelopes)")


def run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_address(args.listen, allow_remote=args.allow_remote, option="--listen")
        parse_address(args.emulator, allow_remote=True, option="--emulator")
        hub = EventHub()
        if args.bench is not None:
            hub.publish(bench_event(load_bench_file(args.bench), args.bench, emulated=True))
    except (HilError, OSError) as exc:
        print(f"hil live: {exc}", file=sys.stderr)
        return 2
    try:
        control = ControlClient(args.emulator)
    except (HilError, OSError) as exc:
        print(f"hil live: the emulator at {args.emulator} does not answer: {exc}", file=sys.stderr)
        return 1
    watch = EmulatorWatch(control, hub)
    try:
        watch.poll()
    except (HilError, OSError) as exc:
        print(f"hil live: the emulator at {args.emulator} does not answer: {exc}", file=sys.stderr)
        control.close()
        return 1
    try:
        server = LiveServer(LiveApp(hub, PromptDesk(hub), None), host, port).start()
    except HilError as exc:
        print(f"hil live: {exc}", file=sys.stderr)
        control.close()
        return 2
    print(f"pp2p-hil: live page at {server.url} (watching {args.emulator})", flush=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _setter(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while not stop.wait(hub.interval):
            try:
                watch.poll()
            except (HilError, OSError) as exc:
                print(f"hil live: the emulator stopped answering: {exc}", file=sys.stderr)
                code = 1
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        control.close()
    return code


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return handler
