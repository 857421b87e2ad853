"""Wall time of the whole ``test_benches/`` suite on the emulated bench, serial and ``-n 2``.

Each run is a fresh ``pytest`` process (as CI runs it) with its run record written to a
temporary directory. Prints ``name value unit`` lines:

- ``suite_serial_s``: ``pytest test_benches`` — target: under 120 s on the 2-core machine;
- ``suite_n2_s``: ``pytest -n 2 test_benches`` (each worker its own emulator);
- ``suite_speedup``: serial / ``-n 2``, the baseline being the serial run of the same moment.

Run: ``.venv/bin/python benchmarks/suite_time.py [--bench FILE] [extra pytest args]``.
A run that does not pass is an error (exit 1): a time of a failing suite means nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "test_benches"
TIMEOUT_S = 1800.0


def run_suite(extra: Sequence[str], run_dir: Path) -> float:
    """Wall seconds of one ``pytest`` run of the suite; ``RuntimeError`` if it fails."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-q",
        "-p",
        "no:cacheprovider",
        "--run-dir",
        str(run_dir),
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="other arguments go to pytest (--bench F …)"
    )
    _, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="suite-time-") as tmp:
        try:
            serial = run_suite(extra, Path(tmp) / "serial")
            parallel = run_suite(["-n", "2", *extra], Path(tmp) / "n2")
        except RuntimeError as exc:
            print(f"suite_time: {exc}", file=sys.stderr)
            return 1
    print(f"suite_serial_s {serial:.1f} s")
    print(f"suite_n2_s {parallel:.1f} s")
    print(f"suite_speedup {serial / parallel:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
