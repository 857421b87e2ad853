"""Waiting on other processes and threads in tests: :func:`until` a condition holds,
:func:`until_safe` an emulator's every output is safe, and :class:`ChildProcess`, a run in
its own process group whose output a thread reads line by line. Synchronisation is on
conditions and output lines; the patience is a generous bound for things that take seconds
at most, never a timing claim."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from emulated_rig import ROOT

from instruments.emulation.process import EmulatorProcess

#: Default patience, seconds.
PATIENCE_S = 60.0


def until(what: str, check: Callable[[], Any], patience_s: float = PATIENCE_S) -> Any:
    """``check()``'s first truthy value, polled every 10 ms; fails after ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def until_safe(emulator: EmulatorProcess, patience_s: float = PATIENCE_S) -> dict[str, Any]:
    """The emulator's status once every port is safe, or the last one after the patience.

    Simulated time is advanced a little first: the plant solves its circuit again on its
    next step, and nobody else advances it once a run's process is gone."""
    deadline = time.monotonic() + patience_s
    while True:
        emulator.control.advance(0.1)
        status: dict[str, Any] = emulator.control.status()
        if status["all_safe"] or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


class ChildProcess:
    """``python ARGS`` in the project folder and its own session (as a terminal starts a
    run: a group signal is Ctrl-C), stdout and stderr read by a thread into :attr:`lines`."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        *,
        stdin: str | None = None,
        patience_s: float = PATIENCE_S,
    ) -> None:
        self.patience_s = patience_s
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            start_new_session=True,
        )
        if stdin is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin)
            self.process.stdin.close()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_line(self, text: str) -> str:
        """The next output line that contains ``text`` (every line read is kept)."""
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}: {self.lines[-5:]}") from None
            if line is None:
                raise AssertionError(f"exited before a line with {text!r}: {self.lines[-20:]}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self) -> int:
        """Wait for the exit and the last line; the exit code."""
        code = self.process.wait(self.patience_s)
        while (line := self._queue.get(timeout=self.patience_s)) is not None:
            self.lines.append(line)
        return code

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        """Kill the child's whole group if it still runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
