"""The life of an emulator the toolkit starts is its parent's: SIGKILL of the parent ends
it (outputs safe first); a person's own ``hil emulate`` keeps running; however much the
emulator logs, it never blocks on its stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from child_process import until
from emulated_rig import EMULATED_BENCH, ROOT

from instruments.emulation.client import ControlClient
from instruments.emulation.process import start_emulator

#: Generous bound for events that take well under a second (never a timing claim).
PATIENCE_S = 60.0
#: A pipe's buffer on Linux: an unread stderr pipe blocks the writer beyond this.
PIPE_BUFFER = 64 * 1024

HOLDER = (
    "import sys; from pathlib import Path; "
    "from instruments.emulation.process import start_emulator; "
    "e = start_emulator(Path(sys.argv[1]), log_path=Path(sys.argv[2])); "
    "print(e.pid, e.info.control, flush=True); sys.stdin.read()"
)
PERSON = (
    "import subprocess, sys; "
    "p = subprocess.Popen([sys.executable, '-m', 'hil.cli', 'emulate', sys.argv[1], '--json'], "
    "stdout=subprocess.PIPE, start_new_session=True); "
    "print(p.pid, p.stdout.readline().decode().strip(), flush=True); sys.stdin.read()"
)


def gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def holder(code: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_a_killed_parent_takes_its_emulator_with_it(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    parent, line = holder(HOLDER, str(EMULATED_BENCH), str(log))
    pid = int(line.split()[0])
    try:
        assert not gone(pid)
        parent.kill()
        parent.wait()
        until("the emulator to exit", lambda: gone(pid))
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    assert "making every output safe: emulator its parent process died" in text


def test_a_persons_own_emulator_outlives_the_shell_that_started_it() -> None:
    parent, line = holder(PERSON, str(EMULATED_BENCH))
    pid_text, _, info = line.partition(" ")
    pid = int(pid_text)
    try:
        parent.kill()
        parent.wait()
        with ControlClient(json.loads(info)["control"]) as control:
            control.advance(1.0)  # a round trip after the parent's death: still serving
            assert control.status()["all_safe"]
        assert not gone(pid)
        os.kill(pid, signal.SIGINT)  # Ctrl-C still ends it
        until("the emulator to exit on SIGINT", lambda: gone(pid))
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_emulator_that_logs_a_lot_keeps_answering(tmp_path: Path) -> None:
    """Each watchdog whose connection closes logs a warning; far more than a pipe holds."""
    log = tmp_path / "emulator.log"
    with start_emulator(EMULATED_BENCH, log_path=log) as emulator:
        address = emulator.info.control
        while log.stat().st_size <= 2 * PIPE_BUFFER:
            for _ in range(50):
                with ControlClient(address) as client:
                    client.arm_watchdog(60.0)
        assert emulator.control.status()["all_safe"]
        assert emulator.control.advance(0.5) >= 0.5
    assert emulator.process.returncode == 0
