"""How long each signal takes to reach all-safe, and a killed parent's emulator to go.

- ``signal_to_safe_s_<how>``: ``hil run`` (two exchange benches) attached to a witness
  emulator (``--emulator``) is signalled when its record shows the exchange ramping up;
  the figure is the wall time from the signal until the witness reports every port safe
  (``status.all_safe``, polled; or every output switched off by the emulator's own
  watchdog, ``safe_reason``). ``<how>``: ``group_sigint`` (Ctrl-C in a terminal),
  ``sigint``, ``sigterm``, ``second_sigint`` (a second Ctrl-C right after the first's
  shutdown began) and ``sigkill`` (left to the emulator's watchdog).
- ``lifeline_exit_s``: a parent that started an emulator (``start_emulator``) is killed
  with SIGKILL; the figure is the wall time until that emulator's pid is gone (target < 2 s).
- ``hil_run_kill_exit_s``: the same for ``hil run``'s own emulator.

Prints ``name value unit`` lines, each the median of ``--repeat`` trials.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from emulated_rig import EMULATED_BENCH  # noqa: E402
from test_interrupts import Child, hil_run, marked_pids, until  # noqa: E402

from instruments.emulation.process import EmulatorProcess, start_emulator  # noqa: E402

HOLDER = (
    "import sys; from pathlib import Path; "
    "from instruments.emulation.process import start_emulator; "
    "e = start_emulator(Path(sys.argv[1])); print(e.pid, flush=True); sys.stdin.read()"
)


def signal_to_safe(witness: EmulatorProcess, how: str, work: Path) -> float:
    children: list[Child] = []
    child = hil_run(children, work / how, emulator=witness.info.control)
    try:
        child.wait_record("rampUp")
        until("a port on", lambda: not witness.control.status()["all_safe"])
        started = time.monotonic()
        if how == "group_sigint":
            child.signal(signal.SIGINT, group=True)
        elif how == "second_sigint":
            child.signal(signal.SIGINT, group=True)
            child.wait_line("ordered shutdown")
            child.signal(signal.SIGINT, group=True)
        else:
            signum = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}.get(how, signal.SIGKILL)
            child.signal(signum, group=False)
        until("every port safe", lambda: _safe(witness))
        elapsed = time.monotonic() - started
        child.finish()
        return elapsed
    finally:
        child.close()
        witness.control.clear()


def _safe(witness: EmulatorProcess) -> bool:
    """Every port safe, or every output switched off by the emulator itself (its watchdog):
    the plant's currents show it on its next step, which nobody takes once the run is dead."""
    status = witness.control.status()
    return bool(status["all_safe"] or status["safe_reason"])


def lifeline_exit() -> float:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(EMULATED_BENCH)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    pid = int(holder.stdout.readline())
    started = time.monotonic()
    holder.kill()
    holder.wait()
    until("the emulator gone", lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid))
    return time.monotonic() - started


def hil_run_kill_exit(work: Path) -> float:
    children: list[Child] = []
    child = hil_run(children, work / "killed")
    try:
        child.wait_record("rampUp")
        until("the emulator", lambda: marked_pids(child.mark)[1:])
        started = time.monotonic()
        child.signal(signal.SIGKILL, group=False)
        until("nothing left", lambda: not marked_pids(child.mark))
        return time.monotonic() - started
    finally:
        child.close()


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, start_emulator(EMULATED_BENCH) as witness:
        work = Path(tmp)
        for trial in range(args.repeat):
            for how in ("group_sigint", "sigint", "sigterm", "second_sigint", "sigkill"):
                figures.setdefault(f"signal_to_safe_s_{how}", []).append(
                    signal_to_safe(witness, how, work / f"{trial}")
                )
            figures.setdefault("lifeline_exit_s", []).append(lifeline_exit())
            figures.setdefault("hil_run_kill_exit_s", []).append(
                hil_run_kill_exit(work / f"{trial}")
            )
    for name, values in figures.items():
        print(f"{name} {statistics.median(values):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
