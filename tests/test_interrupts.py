"""Ctrl-C, SIGTERM, a second signal and SIGKILL of ``hil run`` and of pytest with the
plugin, at several moments: every port ends safe (the emulator's ``status``), no process is
left behind (checked by pid), the record reads, the verdict is INTERRUPTED, exit code 2
(128 + signal for a second one).

Each run is a child in its own process group, as a terminal would start it; a group signal
is what Ctrl-C sends. Every child carries a marker in its environment, which the emulator it
starts inherits, so the processes of *this* run are found in ``/proc`` among any others.
Synchronisation is on the child's output lines and its record, never on sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from child_process import ChildProcess, until, until_safe
from emulated_rig import EMULATED_BENCH

from hil.records import read_records
from instruments.emulation.process import EmulatorProcess, start_emulator

#: Generous bound for events that take well under a second (never a timing claim).
PATIENCE_S = 60.0
TWO_TESTS = "test_one_to_one_in_both_directions or test_many_to_one"
MARK = "HIL_TEST_RUN_MARK"


def marked_pids(mark: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``MARK=mark``."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


class Child(ChildProcess):
    """``hil run`` or pytest in its own process group, its lines read by a thread."""

    def __init__(self, args: list[str], run_dir: Path) -> None:
        self.mark = uuid.uuid4().hex
        self.run_dir = run_dir
        super().__init__(args, {MARK: self.mark}, patience_s=PATIENCE_S)

    def wait_record(self, step: str) -> None:
        """Until the record holds a ``step`` line of that step (the engine reached it)."""

        def seen() -> bool:
            path = self.run_dir / "records.jsonl"
            if not path.exists():
                return False
            for raw in path.read_text().splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("type") == "step" and line.get("step") == step:
                    return True
            return False

        until(f"step {step} in the record", seen)

    def signal(self, signum: int, *, group: bool) -> None:
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.close()


@pytest.fixture(scope="module")
def witness() -> Iterator[EmulatorProcess]:
    """An emulator of this test process that runs may attach to (``--emulator``)."""
    with start_emulator(EMULATED_BENCH) as emu:
        yield emu


def hil_run(
    children: list[Child], run_dir: Path, *, keyword: str = TWO_TESTS, emulator: str = ""
) -> Child:
    args = ["-m", "hil.cli", "run", "--run-dir", str(run_dir), "-k", keyword]
    args += ["--", "-p", "no:randomly"]
    if emulator:
        args += ["--emulator", emulator]
    child = Child(args, run_dir)
    children.append(child)
    return child


def plain_pytest(children: list[Child], run_dir: Path, emulator: str = "") -> Child:
    args = ["-m", "pytest", "test_benches/test_exchanges.py", "-k", TWO_TESTS, "-q"]
    args += ["-p", "no:cacheprovider", "-p", "no:randomly", "--run-dir", str(run_dir)]
    if emulator:
        args += ["--emulator", emulator]
    child = Child(args, run_dir)
    children.append(child)
    return child


def run_end(run_dir: Path) -> dict[str, Any]:
    records = read_records(run_dir)
    (end,) = records.of_type("run_end")
    return dict(end)


def unsafe_ports(status: dict[str, Any]) -> list[str]:
    return [p["port"] for p in status["ports"] if not p["safe"]]


def assert_nothing_left(child: Child) -> None:
    until("no process of the run left", lambda: not marked_pids(child.mark))


def assert_interrupted(child: Child, code: int, name: str) -> None:
    assert code == 2, child.output()[-3000:]
    assert "Traceback" not in child.output(), child.output()[-3000:]
    end = run_end(child.run_dir)
    assert end["outcome"] == "INTERRUPTED" and name in end["interrupted"], end
    assert isinstance(end["not_run"], list)
    cut_short = [t for t in read_records(child.run_dir).of_type("test_end") if t["message"]]
    cut_short = [t for t in cut_short if t["message"].startswith("interrupted")]
    assert all(t["outcome"] == "INTERRUPTED" for t in cut_short), cut_short
    assert_nothing_left(child)


# -- hil run with its own emulator ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "signum", "group"),
    [
        ("tests collected", signal.SIGINT, True),  # opening the bench
        ("[2/", signal.SIGTERM, True),  # between two tests
        ("[2/", signal.SIGINT, False),  # the process alone, not its group
    ],
)
def test_hil_run_signal_at_a_line_ends_interrupted_with_a_report(
    children: list[Child], tmp_path: Path, moment: str, signum: int, group: bool
) -> None:
    child = hil_run(children, tmp_path / "run")
    child.wait_line(moment)
    child.signal(signum, group=group)
    code = child.finish()
    if not (tmp_path / "run" / "records.jsonl").exists():
        # the signal came before the bench opened: nothing ran, nothing to record
        assert code == 2 and "no run record" in child.output(), child.output()[-3000:]
        assert_nothing_left(child)
        return
    assert_interrupted(child, code, signal.Signals(signum).name)
    assert (tmp_path / "run" / "report.pdf").is_file()
    assert "INTERRUPTED" in child.output()


def test_hil_run_ctrl_c_while_the_report_is_built_still_writes_it(
    children: list[Child], tmp_path: Path
) -> None:
    child = hil_run(children, tmp_path / "run")
    child.wait_line(" tests in ")
    child.signal(signal.SIGINT, group=True)
    code = child.finish()
    # 2: the signal came while the report was built; 0: only after it was done (a loaded
    # machine may deliver the line late) — either way the report is whole, no traceback
    assert code in (0, 2), child.output()[-3000:]
    assert "Traceback" not in child.output()
    assert (tmp_path / "run" / "report.pdf").is_file()
    assert run_end(tmp_path / "run")["outcome"] == "PASS"
    assert_nothing_left(child)


def test_hil_run_killed_leaves_no_emulator_behind(children: list[Child], tmp_path: Path) -> None:
    child = hil_run(children, tmp_path / "run")
    child.wait_record("rampUp")
    emulators = until("the run's emulator", lambda: marked_pids(child.mark)[1:])
    child.signal(signal.SIGKILL, group=False)
    child.finish()
    assert_nothing_left(child)
    assert emulators
    log = (tmp_path / "run" / "emulator.log").read_text()
    assert "its parent process died" in log
    assert list(read_records(tmp_path / "run").of_type("run_start"))  # readable, partial


# -- on an emulator that outlives the run: its status says every port is safe ---------------------
@pytest.mark.parametrize(
    ("step", "signum", "group"),
    [
        ("rampUp", signal.SIGINT, True),
        ("start", signal.SIGTERM, False),
        ("stop", signal.SIGINT, False),
    ],
)
def test_hil_run_signal_during_an_exchange_leaves_every_port_safe(
    children: list[Child],
    tmp_path: Path,
    witness: EmulatorProcess,
    step: str,
    signum: int,
    group: bool,
) -> None:
    child = hil_run(children, tmp_path / "run", emulator=witness.info.control)
    child.wait_record(step)
    child.signal(signum, group=group)
    code = child.finish()
    assert_interrupted(child, code, signal.Signals(signum).name)
    assert witness.process.poll() is None  # the group signal did not reach it
    status = witness.control.status()
    assert status["all_safe"], [p["port"] for p in status["ports"] if not p["safe"]]


def test_a_second_signal_exits_at_once_all_safe(
    children: list[Child], tmp_path: Path, witness: EmulatorProcess
) -> None:
    child = hil_run(children, tmp_path / "run", emulator=witness.info.control)
    child.wait_record("rampUp")
    child.signal(signal.SIGINT, group=True)
    child.wait_line("ordered shutdown")
    child.signal(signal.SIGINT, group=True)
    code = child.finish()
    assert code in (2, 128 + signal.SIGINT), child.output()[-3000:]
    assert_nothing_left(child)
    assert list(read_records(tmp_path / "run").of_type("run_start"))
    status = until_safe(witness)
    assert status["all_safe"], (code, unsafe_ports(status), child.output()[-3000:])


def test_hil_run_killed_mid_exchange_leaves_it_to_the_watchdog(
    children: list[Child], tmp_path: Path, witness: EmulatorProcess
) -> None:
    child = hil_run(children, tmp_path / "run", emulator=witness.info.control)
    child.wait_record("start")
    child.signal(signal.SIGKILL, group=True)
    child.finish()
    assert_nothing_left(child)
    status = until_safe(witness)
    assert status["all_safe"], unsafe_ports(status)
    assert "watchdog" in status["safe_reason"]
    witness.control.clear()


# -- pytest with the plugin ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "signum", "group"),
    [("rampUp", signal.SIGINT, True), ("start", signal.SIGTERM, True)],
)
def test_pytest_signal_ends_interrupted(
    children: list[Child],
    tmp_path: Path,
    witness: EmulatorProcess,
    step: str,
    signum: int,
    group: bool,
) -> None:
    child = plain_pytest(children, tmp_path / "run", emulator=witness.info.control)
    child.wait_record(step)
    child.signal(signum, group=group)
    code = child.finish()
    assert_interrupted(child, code, signal.Signals(signum).name)
    assert witness.control.status()["all_safe"]


def test_pytest_own_emulator_group_sigint(children: list[Child], tmp_path: Path) -> None:
    child = plain_pytest(children, tmp_path / "run")
    child.wait_record("rampUp")
    child.signal(signal.SIGINT, group=True)
    code = child.finish()
    assert_interrupted(child, code, "SIGINT")
    log = (tmp_path / "run" / "emulator.log").read_text()
    assert "shutdown requested on the control channel" in log
