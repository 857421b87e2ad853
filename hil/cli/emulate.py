"""``hil emulate BENCH.toml``: serve every instrument of a bench on loopback.

Prints one line per instrument (``unit instrument driver resource``) and ``control
HOST:PORT`` — or, with ``--json``, one JSON line — flushed before serving, then runs until
SIGINT, SIGTERM or a ``shutdown`` request. Every path out makes every output safe first.

Beyond loopback: ``--host ADDR --allow-remote`` exposes the instruments only; the control
channel (fault injection, ``set``, ``shutdown``; unauthenticated) stays on 127.0.0.1 unless
``--expose-control`` is given as well. A bad argument (a port outside 0..65535, a port in
use, a host that does not resolve, a speed out of range) is one line on stderr, exit 2.

``--apis``: every APIS unit (a converter with a BMS) is also served through APIS's device
HTTP API, driven by the toolkit's own drivers on the emulated instruments
(:mod:`hil.units.apis_front`): one ``dcdc_v2`` port per unit (one more line or JSON entry
each, with an ``http://`` resource) and the ``dcdc_emulator`` flavour for every unit on one
port (``apis dcdc_emulator URL``; ``"apis_emulator"`` in JSON). On the way out the HTTP
servers stop first and every served converter goes to WAIT. See ``docs/apis.md``.

``--labgrid HOST:PORT [--place NAME] [--tag K=V]`` publishes the bench as a labgrid place
(its own ``labgrid-exporter``; serial instruments on loopback sockets), tagged
``kind=emulated``, so runs reserve it as they reserve a real bench; the place is deleted
and the exporter stopped on every way out (``hil.lab.publish``, docs/labgrid.md).

``--lifeline FD`` (set by :func:`instruments.emulation.process.start_emulator`, not by
people): a pipe's read end whose write end only the parent holds. EOF on it means the
parent died (the kernel closed its end, SIGKILL included): every output is made safe and the
emulator exits. A person's own ``hil emulate`` has no lifeline and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.errors import ConfigError, HilError
from hil.lab import need_labgrid
from hil.lab.places import check_address, parse_tags
from hil.units import EMULATOR_DRIVER_OPTIONS
from hil.units.apis_front import ApisFront
from instruments.emulation.busy_poll import SIM_BUSY_POLL_US, event_loop_factory
from instruments.emulation.emulator import MAX_SPEED, Emulator, EmulatorInfo

LOOPBACK = "127.0.0.1"
PLACE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: Longest ``--busy-poll-us`` window: beyond it an idle loop only burns its core.
MAX_BUSY_POLL_US = 10_000.0


@dataclass(frozen=True)
class LabRequest:
    """Where ``--labgrid`` publishes the bench: coordinator, place name, extra tags."""

    address: str
    place: str
    tags: dict[str, str]
    bench: BenchConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", type=Path, help="bench file (TOML)")
    parser.add_argument("--json", action="store_true", help="print one JSON line, not a table")
    parser.add_argument(
        "--clock",
        choices=("sim", "wall"),
        default="sim",
        help="sim: time moves only on 'advance' (default); wall: real time x --speed",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help=f"wall clock speed-up factor (above 0, at most {MAX_SPEED:g})",
    )
    parser.add_argument(
        "--serial",
        choices=("tcp", "pty"),
        default=None,
        help="serve serial instruments on loopback sockets or ptys (default: the bench file's)",
    )
    parser.add_argument(
        "--timing",
        choices=("real", "none"),
        default=None,
        help="instrument timing: real (each model's processing time and serial line time) "
        "or none (answer at once); default: the bench file's [emulation] timing, else real "
        "under --clock wall and none under --clock sim; a unit's own timing still wins",
    )
    parser.add_argument(
        "--advance",
        choices=("deferred", "eager"),
        default="deferred",
        help="sim clock: deferred (default) answers 'advance' at once and steps the plant when "
        "something next looks at it; eager steps the plant inside every 'advance'",
    )
    parser.add_argument(
        "--busy-poll-us",
        type=float,
        default=None,
        metavar="US",
        help="after serving a request, poll for the next one this long before sleeping "
        f"(default: {SIM_BUSY_POLL_US:g} under --clock sim, 0 under --clock wall; "
        "instruments.emulation.busy_poll)",
    )
    parser.add_argument(
        "--control-port", type=int, default=0, help="control channel port (0: any free port)"
    )
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host other than 127.0.0.1 (instruments become reachable from outside)",
    )
    parser.add_argument(
        "--expose-control",
        action="store_true",
        help="with --allow-remote: serve the control channel (fault, set, shutdown; no "
        "authentication) on --host too; without it the control channel stays on 127.0.0.1",
    )
    parser.add_argument(
        "--apis",
        action="store_true",
        help="also serve every APIS unit through APIS's device HTTP API (dcdc_batt_comm v2, "
        "one port per unit, and the dcdc_emulator flavour on one port)",
    )
    parser.add_argument(
        "--labgrid",
        metavar="HOST:PORT",
        default=None,
        help="publish the bench as a place on this labgrid coordinator (its own "
        "labgrid-exporter; serial instruments on loopback sockets); needs pp2p-hil[labgrid]",
    )
    parser.add_argument(
        "--place", default=None, help="with --labgrid: the place's name (default: BENCH-PID)"
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --labgrid: tag the place (repeatable; kind=emulated and bench=NAME always)",
    )
    parser.add_argument("--lifeline", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    problem = _check_arguments(args)
    if problem:
        print(f"hil emulate: {problem}", file=sys.stderr)
        return 2
    control_host = args.host if args.expose_control else LOOPBACK
    if args.host != LOOPBACK:
        print(
            f"hil emulate: WARNING: serving emulated instruments on {args.host}, reachable "
            "from other machines",
            file=sys.stderr,
        )
    if control_host != LOOPBACK:
        print(
            f"hil emulate: WARNING: the control channel (fault injection, set, shutdown; no "
            f"authentication) is exposed on {control_host}: anyone who reaches it can drive "
            "or stop this emulator",
            file=sys.stderr,
        )
    try:
        bench = load_bench_file(args.bench)
        labgrid = _labgrid_request(args, bench)
        emulator = Emulator(
            bench,
            clock=args.clock,
            speed=args.speed,
            host=args.host,
            control_host=control_host,
            control_port=args.control_port,
            serial="tcp" if labgrid is not None else args.serial,
            timing=args.timing,
            advance=args.advance,
        )
    except HilError as exc:
        print(f"hil emulate: {exc}", file=sys.stderr)
        return 2
    front = _FrontStarter(bench, host=args.host) if args.apis else None
    spin_s = _busy_poll_us(args) * 1e-6
    with asyncio.Runner(loop_factory=lambda: event_loop_factory(spin_s)) as runner:
        return runner.run(
            _serve(
                emulator, as_json=args.json, lifeline=args.lifeline, front=front, labgrid=labgrid
            )
        )


def _busy_poll_us(args: argparse.Namespace) -> float:
    """``--busy-poll-us``, or its default: on under the simulated clock, off under wall."""
    if args.busy_poll_us is not None:
        return float(args.busy_poll_us)
    return SIM_BUSY_POLL_US if args.clock == "sim" else 0.0


def _labgrid_request(args: argparse.Namespace, bench: BenchConfig) -> LabRequest | None:
    """``--labgrid``/``--place``/``--tag`` checked (ConfigError: one line), or None."""
    if args.labgrid is None:
        if args.place is not None or args.tag:
            raise ConfigError("--place and --tag publish a place: they need --labgrid HOST:PORT")
        return None
    if args.serial == "pty":
        raise ConfigError("--labgrid publishes loopback sockets: it contradicts --serial pty")
    need_labgrid("--labgrid")
    place = args.place or f"{bench.name}-{os.getpid()}"
    if not PLACE_NAME.fullmatch(place):
        raise ConfigError(f"--place {place!r}: letters, digits, '_', '.', '-' only")
    return LabRequest(
        check_address(args.labgrid, "--labgrid"), place, parse_tags(args.tag, "--tag"), bench
    )


def _check_arguments(args: argparse.Namespace) -> str:
    """What is wrong with the arguments, in one line ("" when nothing is)."""
    if args.host != LOOPBACK and not args.allow_remote:
        return f"refusing to bind {args.host}: add --allow-remote to serve beyond this machine"
    if args.expose_control and not args.allow_remote:
        return "--expose-control needs --allow-remote (and a --host other than 127.0.0.1)"
    if not 0 <= args.control_port <= 65535:
        return f"--control-port {args.control_port}: a TCP port is 0..65535 (0: any free port)"
    try:
        socket.getaddrinfo(args.host, None)
    except (socket.gaierror, UnicodeError) as exc:
        return f"--host {args.host}: host does not resolve ({exc})"
    if not (math.isfinite(args.speed) and 0 < args.speed <= MAX_SPEED):
        return (
            f"--speed {args.speed:g}: must be above 0 and at most {MAX_SPEED:g} "
            "(simulated seconds per wall second)"
        )
    if args.busy_poll_us is not None and not (0 <= args.busy_poll_us <= MAX_BUSY_POLL_US):
        return (
            f"--busy-poll-us {args.busy_poll_us:g}: must be 0 (off) to {MAX_BUSY_POLL_US:g} "
            "microseconds"
        )
    return ""


class _FrontStarter:
    """Starts the APIS units' HTTP front on the emulator's resources (``--apis``)."""

    def __init__(self, bench: BenchConfig, *, host: str) -> None:
        self.bench = bench
        self.host = host
        self.front: ApisFront | None = None

    async def start(self, info: EmulatorInfo) -> None:
        self.front = await asyncio.to_thread(
            ApisFront.start,
            self.bench,
            resources=info.resources,
            host=self.host,
            driver_options=EMULATOR_DRIVER_OPTIONS,
        )

    async def stop(self) -> None:
        if self.front is not None:
            await asyncio.to_thread(self.front.stop)
            self.front = None


def _print_info(info: EmulatorInfo, *, as_json: bool, front: ApisFront | None = None) -> None:
    if as_json:
        data = info.as_dict()
        if front is not None:
            data["instruments"].extend(s.as_dict() for s in front.served)
            data["apis_emulator"] = front.emulator_url
        print(json.dumps(data), flush=True)
        return
    for item in info.instruments:
        print(f"{item.unit} {item.id} {item.driver} {item.resource}")
    if front is not None:
        for served in front.served:
            print(f"{served.unit} {served.id} {served.driver} {served.url}")
        print(f"apis dcdc_emulator {front.emulator_url}")
    print(f"control {info.control}", flush=True)


async def _serve(
    emulator: Emulator,
    *,
    as_json: bool,
    lifeline: int | None = None,
    front: _FrontStarter | None = None,
    labgrid: LabRequest | None = None,
) -> int:
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
    try:
        info = await emulator.start()
    except OSError as exc:  # a port in use, a host that does not resolve, ...
        print(f"hil emulate: cannot serve on {emulator.host}: {_os_error(exc)}", file=sys.stderr)
        return 2
    published = None
    try:
        if front is not None:
            try:
                await front.start(info)
            except (HilError, OSError, RuntimeError) as exc:
                print(f"hil emulate: cannot serve the APIS units: {exc}", file=sys.stderr)
                return 2
        if labgrid is not None:
            published = await _publish(info, labgrid)
            if published is None:
                return 2
        _print_info(info, as_json=as_json, front=front.front if front else None)
        if published is not None:
            print(f"place {published.place} on {published.session.address}", flush=True)
        await emulator.stopped.wait()
    finally:
        if published is not None:
            await published.withdraw()
        if front is not None:
            await front.stop()
        if reason:
            emulator.make_safe(f"emulator {reason[0]}")
        await emulator.stop()
    return 0


async def _publish(info: EmulatorInfo, request: LabRequest) -> Any:
    """Publish the running emulator as a labgrid place; None (and one line) on failure."""
    from hil.lab.publish import EmulatedPlace

    try:
        return await EmulatedPlace.publish(
            request.address,
            request.bench,
            {item.id: item.resource for item in info.instruments},
            info.control,
            request.place,
            request.tags,
        )
    except HilError as exc:
        print(f"hil emulate: {exc}", file=sys.stderr)
        return None


def _os_error(exc: OSError) -> str:
    """One line for a failure to bind (asyncio and our servers put it in ``args[1]``)."""
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)
