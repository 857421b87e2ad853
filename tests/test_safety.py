"""Process-level safety: signals, exit, a second signal and SIGKILL all end with every
output safe, as the emulator (a separate process, the witness) reports it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from child_process import until
from emulated_rig import EMULATED_BENCH, ROOT

from hil.exchange import safety
from hil.exchange.safety import ProcessGuard, SignalInterrupt
from hil.records import read_records
from instruments.emulation.process import EmulatorProcess, start_emulator

CHILD = Path(__file__).with_name("safety_child.py")
#: Generous bounds for events that happen in well under a second (never a timing claim).
PATIENCE_S = 30.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """The witness: the default bench in its own process, on wall time x 20."""
    with start_emulator(EMULATED_BENCH, clock="wall", speed=20.0) as emu:
        yield emu


@pytest.fixture
def witness(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    yield emulator
    emulator.control.request("arm_watchdog", seconds=0)
    emulator.control.clear()


def _controller(emulator: EmulatorProcess, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps(emulator.resources))
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            "--control",
            emulator.info.control,
            "--resources",
            str(resources),
            "--records",
            str(tmp_path / "run"),
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "RUNNING":
        child.kill()
        _, err = child.communicate()
        raise AssertionError(f"controller did not start: {line!r} {err[-2000:]}")
    return child


def _bus_running(emulator: EmulatorProcess) -> bool:
    ports = {p["port"]: p for p in emulator.control.status()["ports"]}
    modes = (ports["E003.converter"]["mode"], ports["E001.converter"]["mode"])
    return modes == ("VOLTAGE_REFERENCE", "DISCHARGE")


def _shutdowns(tmp_path: Path) -> list[dict[str, Any]]:
    return list(read_records(tmp_path / "run").of_type("shutdown"))


def test_sigterm_runs_the_ordered_shutdown(witness: EmulatorProcess, tmp_path: Path) -> None:
    child = _controller(witness, tmp_path)
    assert _bus_running(witness)
    child.send_signal(signal.SIGTERM)
    assert child.wait(PATIENCE_S) == 128 + signal.SIGTERM
    until("every output safe", lambda: witness.control.status()["all_safe"], PATIENCE_S)
    lines = _shutdowns(tmp_path)
    begin = next(line for line in lines if line["event"] == "begin")
    assert "SIGTERM" in begin["reason"] and begin["reference"] == "E003"
    end = next(line for line in lines if line["event"] == "end")
    assert end["unconfirmed"] == [], [s for s in end["steps"] if not s.get("ok", True)]
    actions = [(s["unit"], s["action"]) for s in end["steps"]]
    assert actions.index(("E001", "confirm idle")) < actions.index(("E003", "idle"))
    assert any("scramVoltageReferenceDelayMsec" in action for _, action in actions)


def test_exit_without_stopping_runs_the_shutdown(witness: EmulatorProcess, tmp_path: Path) -> None:
    child = _controller(witness, tmp_path, "--mode", "exit")
    assert child.wait(PATIENCE_S) == 0
    until("every output safe", lambda: witness.control.status()["all_safe"], PATIENCE_S)
    begin = next(line for line in _shutdowns(tmp_path) if line["event"] == "begin")
    assert begin["reason"] == "process exit" and begin["reference"] == "E003"


def test_second_signal_forces_safe_off(witness: EmulatorProcess, tmp_path: Path) -> None:
    child = _controller(witness, tmp_path, "--scram-delay", "600")
    child.send_signal(signal.SIGINT)
    until(
        "the shutdown to wait before the reference",
        lambda: any("scramVoltage" in str(line.get("action")) for line in _shutdowns(tmp_path)),
        PATIENCE_S,
    )
    child.send_signal(signal.SIGINT)
    assert child.wait(PATIENCE_S) == 128 + signal.SIGINT
    forced = [line for line in _shutdowns(tmp_path) if line["event"] == "forced"]
    assert forced and "second signal SIGINT" in forced[0]["reason"] and not forced[0]["failures"]
    status = until(
        "every output safe",
        lambda: (s := witness.control.status())["all_safe"] and s,
        PATIENCE_S,
    )
    ports = {p["port"]: p for p in status["ports"]}
    assert ports["E003.converter"]["mode"] == "WAIT"


def test_sigkill_leaves_it_to_the_watchdog(witness: EmulatorProcess, tmp_path: Path) -> None:
    child = _controller(witness, tmp_path)
    assert _bus_running(witness)
    child.kill()
    child.wait(PATIENCE_S)
    status = until(
        "every output safe",
        lambda: (s := witness.control.status())["all_safe"] and s,
        PATIENCE_S,
    )
    assert "watchdog" in status["safe_reason"]
    assert not _shutdowns(tmp_path)  # nothing ran in the killed process: the watchdog did it


# -- the guard's own logic, in this process ---------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.shutdowns: list[str] = []
        self.forced: list[str] = []

    def shutdown(self, reason: str) -> None:
        self.shutdowns.append(reason)

    def force(self, reason: str) -> None:
        self.forced.append(reason)


def test_first_signal_outside_an_operation_shuts_down_then_interrupts() -> None:
    calls = Calls()
    with ProcessGuard(calls.shutdown, calls.force, signals=(signal.SIGUSR1,)) as guard:
        with pytest.raises(SignalInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(PATIENCE_S)  # the handler interrupts this
        assert calls.shutdowns == ["signal SIGUSR1"] and not calls.forced
        with pytest.raises(SystemExit) as info:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(PATIENCE_S)
        assert info.value.code == 128 + signal.SIGUSR1
        assert calls.forced == ["second signal SIGUSR1"] and guard.forced
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_signal_during_an_operation_unwinds_it_instead() -> None:
    calls = Calls()
    guard = ProcessGuard(calls.shutdown, calls.force, busy=lambda: True, signals=(signal.SIGUSR2,))
    with guard, pytest.raises(SignalInterrupt):
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(PATIENCE_S)
    assert calls.shutdowns == []  # the operation's own guard runs it while unwinding


def test_an_exception_in_the_guarded_block_runs_the_shutdown() -> None:
    calls = Calls()
    with pytest.raises(ZeroDivisionError), ProcessGuard(calls.shutdown, calls.force, signals=()):
        _ = 1 / 0
    assert calls.shutdowns == ["exception: ZeroDivisionError: division by zero"]


def test_a_failing_shutdown_is_reported_not_raised() -> None:
    def broken(reason: str) -> None:
        raise RuntimeError("line dead")

    guard = ProcessGuard(broken, Calls().force, signals=())
    guard.shutdown("test")
    assert guard.outcomes == ["shutdown failed: test: line dead"]


def test_a_second_signal_exits_even_when_it_interrupted_a_lock_force_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler runs on the interrupted thread: if that thread holds a lock ``force``
    needs (the record's, a line's), ``force`` must not run there and wait for itself."""
    monkeypatch.setattr(safety, "FORCE_WAIT_S", 0.2)
    held = threading.Lock()

    def force(reason: str) -> None:
        with held:  # blocks while this test's main thread holds it
            pass

    exits: list[int] = []
    guard = ProcessGuard(
        Calls().shutdown, force, signals=(signal.SIGUSR1,), defer=True, exit=exits.append
    )
    with guard, held:
        with pytest.raises(SignalInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(PATIENCE_S)
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(PATIENCE_S)
    assert exits == [128 + signal.SIGUSR1]
