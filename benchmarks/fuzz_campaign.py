"""Fuzzing campaign against ``hil emulate`` processes: 20 000 hostile inputs per server kind.

For each kind of :mod:`instruments.emulation.fuzz` (SCPI TCP, Modbus TCP, Modbus RTU over
TCP, EZA-2500 frames, the control channel, SCPI on a pty) an attacker process sends the
seeded junk while this process keeps a valid client busy on another instrument of the same
emulator (``MEAS:VOLT?`` on the bus load) and times every round trip. Printed per kind:

- ``crashes``: the emulator died, a connection was dropped over bad input, or the valid
  probe after the junk went unanswered;
- ``tracebacks``: tracebacks the emulator wrote to its log meanwhile;
- ``worst_stall``: the valid client's slowest round trip during the attack (target < 0.1 s),
  and its ratio to the slowest round trip of a quiet period of the same length measured
  first (the baseline);
- ``rss_growth``: the emulator process's resident memory after minus before (target
  < 64 MiB).

Run: ``.venv/bin/python benchmarks/fuzz_campaign.py [--inputs 20000] [--kind NAME]``.
Output lines are ``name value unit``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from instruments.emulation import fuzz

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"
WATCHED = "LOAD1.load"  # the valid client's instrument (SCPI over TCP in both emulators)


@dataclass
class Served:
    """One ``hil emulate`` process, its resources and its log file."""

    process: subprocess.Popen[bytes]
    log: Path
    control: str
    resources: dict[str, str]

    @classmethod
    def start(cls, serial: str, folder: Path) -> Served:
        log = folder / f"emulator-{serial}.log"
        command = [sys.executable, "-m", "hil.cli", "emulate", str(BENCH), "--json"]
        command += ["--serial", serial]
        with log.open("wb") as err:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL
            )
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        resources = {item["id"]: item["resource"] for item in info["instruments"]}
        return cls(process, log, info["control"], resources)

    def resource(self, kind: fuzz.FuzzKind) -> str:
        return self.control if kind.instrument == "control" else self.resources[kind.instrument]

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")

    def stop(self) -> None:
        try:
            link = fuzz.Link.open(self.control)
            try:
                link.ask(b'{"cmd": "shutdown"}\n', lambda received: b"\n" in received)
            finally:
                link.close()
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class Watcher:
    """A valid client asking ``MEAS:VOLT?`` in a loop; remembers its slowest round trip."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.worst = 0.0
        self.unanswered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        link = fuzz.Link.open(self.resource)
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                if not link.ask(b"MEAS:VOLT?\n", lambda received: received.endswith(b"\n")):
                    self.unanswered += 1
                self.worst = max(self.worst, time.perf_counter() - start)
        finally:
            link.close()


def _attack(
    kind_name: str, resource: str, identities: dict[str, bytes], count: int, out: mp.Queue
) -> None:
    kind = {k.name: k for k in fuzz.kinds()}[kind_name]
    answered = fuzz.answered_by(kind, identities)
    seed = zlib.crc32(kind_name.encode())
    try:
        out.put(fuzz.attack(kind, resource, answered, count=count, seed=seed))
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def campaign(kind: fuzz.FuzzKind, served: Served, count: int) -> None:
    resource = served.resource(kind)
    identities = {kind.instrument: fuzz.identity(resource)} if kind.name.startswith("scpi") else {}
    context = mp.get_context("spawn")
    out: mp.Queue[object] = context.Queue()
    before_rss, before_tb = served.rss(), served.tracebacks()
    started = time.perf_counter()
    with Watcher(served.resources[WATCHED]) as watcher:
        attacker = context.Process(
            target=_attack, args=(kind.name, resource, identities, count, out)
        )
        attacker.start()
        result = out.get(timeout=3600)
        attacker.join(60)
    elapsed = time.perf_counter() - started
    with Watcher(served.resources[WATCHED]) as quiet:
        time.sleep(min(elapsed, 10.0))  # a quiet span to compare against (no test, a tool)
    growth = served.rss() - before_rss
    tracebacks = served.tracebacks() - before_tb
    crashes = 0 if served.process.poll() is None else 1
    if isinstance(result, fuzz.Attack):
        crashes += result.dropped + (0 if result.answered else 1)
        sent = result.sent
    else:
        crashes += 1
        print(f"# {kind.name}: attacker failed: {result}", file=sys.stderr)
        sent = 0
    crashes += watcher.unanswered
    name = f"fuzz_{kind.name.replace('-', '_')}"
    print(f"{name}_inputs {count} count")
    print(f"{name}_bytes {sent / 2**20:.1f} MiB")
    print(f"{name}_seconds {elapsed:.1f} s")
    print(f"{name}_crashes {crashes} count")
    print(f"{name}_tracebacks {tracebacks} count")
    print(f"{name}_worst_stall {watcher.worst:.4f} s")
    print(f"{name}_worst_stall_quiet_baseline {quiet.worst:.4f} s")
    print(f"{name}_worst_stall_vs_quiet {watcher.worst / max(quiet.worst, 1e-9):.1f} ratio")
    print(f"{name}_rss_growth {growth / 2**20:.1f} MiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs per kind")
    parser.add_argument("--kind", action="append", help="only this kind (repeatable)")
    args = parser.parse_args()
    kinds = [k for k in fuzz.kinds() if not args.kind or k.name in args.kind]
    with tempfile.TemporaryDirectory(prefix="fuzz-campaign-") as folder:
        tcp = Served.start("tcp", Path(folder))
        try:
            pty = Served.start("pty", Path(folder))
        except BaseException:
            tcp.stop()
            raise
        try:
            for kind in kinds:
                campaign(kind, pty if kind.name.endswith("pty") else tcp, args.inputs)
        finally:
            pty.stop()
            tcp.stop()
        for served in (tcp, pty):
            if served.tracebacks():
                print(f"# {served.log.name}:", file=sys.stderr)
                print(served.log.read_text(errors="replace")[-4000:], file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
