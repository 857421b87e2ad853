"""The dcdc_batt_comm HTTP front's cost: apis-main's status poll, over HTTP and without it.

``hil emulate fixtures/benches/emulated.toml --apis`` runs as a child process (as in every
run). The baseline reads what ``GET /dcdc/get/status`` answers (EZA-2500 commands 0x00,
0x01, 0x09) straight through the EZA-2500 driver, from this process; then the same read
through the HTTP front, one client at a time; then four clients at once, one per unit (as
apis-main polls every unit), and one deadline check: the slowest answer against apis-main's
5 s request timeout.

Prints ``name value unit`` lines: ``driver_status_ms_median`` (baseline),
``http_status_ms_median``, ``http_status_ms_p99``, ``http_over_driver_ratio``,
``http_concurrent_status_per_s`` (four units polled at once), ``http_slowest_ms``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from instruments.emulation.process import start_emulator
from instruments.eza2500 import Eza2500

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "fixtures" / "benches" / "emulated.toml"


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return 1000.0 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with start_emulator(BENCH, apis=True) as emulator:
        urls = {s.unit: s.resource for s in emulator.info.services}
        driver = Eza2500.open(emulator.resources["E002.converter"], pacing=0.0, timeout=2.0)
        baseline = []
        try:
            for _ in range(args.requests):
                start = time.perf_counter()
                driver.mode()
                driver.status()
                driver.meters()
                baseline.append(time.perf_counter() - start)
        finally:
            driver.close()
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            through = []
            for _ in range(args.requests):
                start = time.perf_counter()
                http.get(urls["E001"] + "/dcdc/get/status").raise_for_status()
                through.append(time.perf_counter() - start)

            def poll(unit: str) -> float:
                start = time.perf_counter()
                http.get(urls[unit] + "/dcdc/get/status").raise_for_status()
                return time.perf_counter() - start

            units = sorted(urls) * (args.requests // len(urls))
            start = time.perf_counter()
            with ThreadPoolExecutor(len(urls)) as pool:
                each = list(pool.map(poll, units))
            elapsed = time.perf_counter() - start
    driver_ms = 1000.0 * statistics.median(baseline)
    http_ms = 1000.0 * statistics.median(through)
    print(f"driver_status_ms_median {driver_ms:.3f} ms")
    print(f"http_status_ms_median {http_ms:.3f} ms")
    print(f"http_status_ms_p99 {_ms(through, 0.99):.3f} ms")
    print(f"http_over_driver_ratio {http_ms / driver_ms:.2f} ratio")
    print(f"http_concurrent_status_per_s {len(units) / elapsed:.1f} requests/s")
    print(f"http_slowest_ms {1000.0 * max(each + through):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
