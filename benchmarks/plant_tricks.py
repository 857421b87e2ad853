"""What each of the plant's speed tricks buys: the workloads of ``plant_speed.py`` with one
trick switched off at a time (by patching it out for the run) against all tricks on.

Prints ``name value unit`` lines: per trick ``plant_trick_<trick>_<workload>_cpu_s`` (the
best of three runs without it, process CPU seconds: steadier than wall time on a shared
machine) next to ``plant_trick_none_<workload>_cpu_s`` (best of three with every trick).
Workloads: ``day19`` (24 h of the 19-port bus), ``houses`` (24 h of 19 households),
``ports1000`` (1.5 s of 1000 slewing ports). A trick pays where its run is slower than the
baseline by more than the run-to-run noise (a few percent).

Run: ``.venv/bin/python -m benchmarks.plant_tricks``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.plant_speed import DAY_S, day_plant, household_plant, run_day, thousand_port_plant
from instruments.emulation import plant as plant_module
from instruments.emulation import plant_network
from instruments.emulation.plant import ConverterMode, Plant


def day19() -> None:
    run_day(day_plant())


def houses() -> None:
    household_plant().advance(DAY_S)


def ports1000() -> None:
    big = thousand_port_plant()
    big.advance(1.0)
    for k in range(1, 500):
        conv = big.converter(f"E{k}")
        conv.set_grid_current(2.0)
        conv.set_mode(ConverterMode.DISCHARGE if k % 2 else ConverterMode.CHARGE)
    big.advance(1.5)


@contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def no_ocv_refresh_skip() -> Any:
    """Battery EMFs recomputed every fine step."""
    return patched(plant_module, "_OCV_REFRESH", 1)


def no_injection_extrapolation() -> Any:
    """Converter battery-side currents guessed as last step's (no extrapolation)."""
    original = Plant._predict_injection

    def predict(self: Plant, dt: float, *, extrapolate: bool) -> None:
        original(self, dt, extrapolate=False)

    return patched(Plant, "_predict_injection", predict)


def no_active_set() -> Any:
    """Every node solve by the bracketed Newton/bisection (no active-set pass)."""
    return patched(plant_network, "_FAST_ITERATIONS", 0)


def no_watch_flags() -> Any:
    """Trip levels checked every step even where none is set."""
    original = Plant._refresh_watch

    def refresh(self: Plant) -> None:
        original(self)
        self._watch_v = self._watch_i = self._watch_t = True

    return patched(Plant, "_refresh_watch", refresh)


TRICKS: dict[str, Callable[[], Any]] = {
    "ocv_refresh_skip": no_ocv_refresh_skip,
    "injection_extrapolation": no_injection_extrapolation,
    "watch_flags": no_watch_flags,
    "active_set": no_active_set,
}
WORKLOADS: dict[str, Callable[[], None]] = {
    "day19": day19,
    "houses": houses,
    "ports1000": ports1000,
}


def best_of_three(work: Callable[[], None]) -> float:
    cpus = []
    for _ in range(3):
        t0 = time.process_time()
        work()
        cpus.append(time.process_time() - t0)
    return min(cpus)


def main() -> None:
    """Measure and print."""
    for workload, work in WORKLOADS.items():
        print(f"plant_trick_none_{workload}_cpu_s {best_of_three(work):.4f} s", flush=True)
        for trick, switch_off in TRICKS.items():
            with switch_off():
                cpu = best_of_three(work)
            print(f"plant_trick_{trick}_{workload}_cpu_s {cpu:.4f} s", flush=True)


if __name__ == "__main__":
    main()
