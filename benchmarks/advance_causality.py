"""Write-then-advance stress: 10 000 set-points, each followed at once by an ``advance``.

The emulator (``hil emulate``, a child process as in every run) serves the default bench;
two CPU hogs spin meanwhile (``--hogs``). Each iteration writes ``VOLT v`` to the Sony
rig's N5767A (a set-only SCPI command on its own TCP connection) and at once advances the
plant 50 ms on the control channel; the battery node must then stand at ``v``. A miss is an
``advance`` that overtook the write (``tests/causality_probe.py``).

Prints ``name value unit`` lines: ``causality_iterations``, ``causality_misses`` (target
0), ``write_advance_ms_median`` and ``write_advance_ms_p99`` (one write plus one
``advance`` round trip), ``causality_hogs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from causality_probe import cpu_hogs, probe  # noqa: E402

from instruments.emulation.process import start_emulator  # noqa: E402

BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-spinning processes meanwhile")
    args = parser.parse_args()
    with start_emulator(BENCH) as emulator, cpu_hogs(args.hogs):
        result = probe(emulator.resources, emulator.control, args.iterations)
    print(f"causality_iterations {result.iterations} count")
    print(f"causality_misses {len(result.misses)} count")
    print(f"causality_hogs {args.hogs} count")
    print(f"write_advance_ms_median {result.median_ms:.3f} ms")
    print(f"write_advance_ms_p99 {result.p99_ms:.3f} ms")
    for miss in result.misses[:10]:
        print(f"# miss: {miss}", file=sys.stderr)
    return 0 if not result.misses else 1


if __name__ == "__main__":
    sys.exit(main())
