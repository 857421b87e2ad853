"""Fuzzing every server kind of the emulated bench (issue 13).

Per kind (SCPI over TCP, Modbus TCP, Modbus RTU over TCP, EZA-2500 frames, the control
channel, SCPI on a pty): seeded junk from :mod:`instruments.emulation.fuzz`, then a valid
request that must be answered; no connection dropped over bad input, no traceback or error
logged, and the process's memory bounded. A few thousand inputs per kind here; 20 000 per
kind with ``-m fuzz_long`` (deselected by default); ``benchmarks/fuzz_campaign.py`` also
measures stalls and RSS against a separate emulator process.
"""

from __future__ import annotations

import gc
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulated_rig import EMULATED_BENCH

from hil.config.benchfile import load_bench_file
from instruments.emulation import fuzz
from instruments.emulation.process import EmulatorThread

CI_INPUTS = 3000
LONG_INPUTS = 20_000
#: RSS growth allowed over one kind's attack (the campaign's target is 64 MiB for 20 000).
MAX_GROWTH_BYTES = 64 << 20
KINDS = {kind.name: kind for kind in fuzz.kinds()}


class Served:
    """The default bench served twice in this process: serial lines on TCP, and on ptys."""

    def __init__(self, bench: Path) -> None:
        config = load_bench_file(bench)
        self.tcp = EmulatorThread(config, serial="tcp")
        try:
            self.pty = EmulatorThread(config, serial="pty")
        except BaseException:
            self.tcp.stop()
            raise
        self.identities: dict[str, bytes] = {}

    def resource(self, kind: fuzz.FuzzKind) -> str:
        emulator = self.pty if kind.name.endswith("pty") else self.tcp
        if kind.instrument == "control":
            return emulator.info.control
        return emulator.resources[kind.instrument]

    def answered(self, kind: fuzz.FuzzKind) -> fuzz.Answered:
        if kind.name.startswith("scpi") and kind.instrument not in self.identities:
            self.identities[kind.instrument] = fuzz.identity(self.resource(kind))
        return fuzz.answered_by(kind, self.identities)

    def stop(self) -> None:
        self.pty.stop()
        self.tcp.stop()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    bench = Served(EMULATED_BENCH)
    yield bench
    bench.stop()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run_attack(
    served: Served, name: str, count: int, caplog: pytest.LogCaptureFixture
) -> fuzz.Attack:
    kind = KINDS[name]
    resource = served.resource(kind)
    answered = served.answered(kind)
    caplog.set_level(logging.WARNING)
    gc.collect()
    before = rss_bytes()
    result = fuzz.attack(kind, resource, answered, count=count, seed=zlib.crc32(name.encode()))
    gc.collect()
    grown = rss_bytes() - before
    troubles = [
        f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= 40
    ]
    assert troubles == [], troubles[:5]
    assert result.inputs == count
    assert result.dropped == 0, f"{name}: the server dropped {result.dropped} connections"
    assert result.answered, f"{name}: no answer to a valid request after {count} inputs"
    assert grown < MAX_GROWTH_BYTES, f"{name}: RSS grew by {grown / 2**20:.0f} MiB"
    return result


@pytest.mark.parametrize("name", list(KINDS))
def test_fuzz_server_kind(served: Served, name: str, caplog: pytest.LogCaptureFixture) -> None:
    run_attack(served, name, CI_INPUTS, caplog)


@pytest.mark.fuzz_long
@pytest.mark.parametrize("name", list(KINDS))
def test_fuzz_server_kind_long(served: Served, name: str, caplog: pytest.LogCaptureFixture) -> None:
    run_attack(served, name, LONG_INPUTS, caplog)
