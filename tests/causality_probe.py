"""Write a set-point, advance simulated time at once, check the plant acted on it.

The probe behind ``tests/test_causality.py`` and ``benchmarks/advance_causality.py``: the
Sony rig's battery supply (E005's N5767A, SCPI over TCP through the toolkit's own
:class:`~instruments.connection.ScpiConnection`) is told a new voltage with a set-only
``VOLT`` command, and *immediately* the control channel advances the plant 50 ms. The
battery node must then stand at the new voltage: a *miss* is an ``advance`` that overtook
the write (the emulator stepped the plant before it read the command).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from instruments.connection import ScpiConnection
from instruments.emulation.client import ControlClient

SUPPLY = "E005.supply"
NODE = "E005.battery"
#: Set-points cycled through (V), each 0.5 V from the last: a stale one is plain to see.
VOLTS = (46.0, 46.5, 47.0, 47.5, 48.0)
STEP_S = 0.05
TOLERANCE_V = 0.05
#: Simulated seconds for the first set-point to settle (the node starts at its own voltage).
SETTLE_S = 1.0


@dataclass
class ProbeResult:
    iterations: int = 0
    misses: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.seconds) if self.seconds else 0.0

    @property
    def p99_ms(self) -> float:
        if len(self.seconds) < 100:
            return 1000 * max(self.seconds, default=0.0)
        return 1000 * statistics.quantiles(self.seconds, n=100)[98]


def probe(resources: Mapping[str, str], control: ControlClient, iterations: int) -> ProbeResult:
    """``iterations`` times: ``VOLT v`` then ``advance`` at once, then the true node voltage."""
    line = ScpiConnection(resources[SUPPLY], timeout=5.0)
    result = ProbeResult()
    try:
        line.write(f"VOLT {VOLTS[-1]}")
        line.write("CURR 22")
        line.write("OUTP ON")
        line.query("*OPC?")
        control.advance(SETTLE_S)
        for k in range(iterations):
            volts = VOLTS[k % len(VOLTS)]
            started = time.perf_counter()
            line.write(f"VOLT {volts}")
            control.advance(STEP_S)
            result.seconds.append(time.perf_counter() - started)
            seen = float(control.status()["nodes"][NODE]["voltage"])
            if abs(seen - volts) > TOLERANCE_V:
                result.misses.append(f"iteration {k}: set {volts} V, node at {seen:.4f} V")
            result.iterations += 1
    finally:
        try:
            line.write("OUTP OFF")
            line.query("*OPC?")
        finally:
            line.close()
    return result


@contextmanager
def cpu_hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes spinning on a CPU each, killed (and reaped) on the way out."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
