"""A run with the live page in a child process (``hil run --live`` or ``pytest --live``),
for the live-page tests: its own process group, its output read by a thread, the page's
address taken from the line it prints (port 0: a free port). Synchronisation is on output
lines and on the page's own events, never on sleeps."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emulated_rig import ROOT

from hil.live.client import EventStream
from hil.live.events import LiveEvent

#: Generous bound for things that take seconds at most (never a timing claim).
PATIENCE_S = 90.0
#: The folder of the bench that waits for the operator (collected only with HIL_LIVE_BENCH).
LIVE_BENCHES = "tests/live_benches"
PAGE_LINE = "pp2p-hil: live page at "


def until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


class LiveChild:
    """A run in its own process group; :attr:`url` once the page is served."""

    def __init__(
        self, args: list[str], run_dir: Path, *, stdin: str | None = None, prompts: int = 1
    ) -> None:
        self.run_dir = run_dir
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HIL_LIVE_PROMPTS": str(prompts)}
        env["HIL_LIVE_BENCH"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        if stdin is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin)
            self.process.stdin.close()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""

    @classmethod
    def pytest(cls, run_dir: Path, *extra: str, **kwargs: Any) -> LiveChild:
        args = ["-m", "pytest", LIVE_BENCHES, "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        return cls([*args, "--run-dir", str(run_dir), *extra], run_dir, **kwargs)

    @classmethod
    def hil_run(cls, run_dir: Path, *extra: str, **kwargs: Any) -> LiveChild:
        args = ["-m", "hil.cli", "run", "--run-dir", str(run_dir), "--live", "127.0.0.1:0"]
        args += ["--benches", LIVE_BENCHES, "--", "-p", "no:randomly", *extra]
        return cls(args, run_dir, **kwargs)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_line(self, text: str) -> str:
        deadline = time.monotonic() + PATIENCE_S
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

    def wait_page(self) -> str:
        self.url = self.wait_line(PAGE_LINE).split(PAGE_LINE, 1)[1].split()[0]
        return self.url

    def finish(self) -> int:
        code = self.process.wait(PATIENCE_S)
        while (line := self._queue.get(timeout=PATIENCE_S)) is not None:
            self.lines.append(line)
        return code

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def events_until(
    stream: Iterator[LiveEvent], done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Read the stream until an event satisfies ``done``; every event read, in order."""
    seen: list[dict[str, Any]] = []
    for event in stream:
        seen.append(event.data)
        if done(event.data):
            return seen
    raise AssertionError(f"the stream ended first: {[e['type'] for e in seen][-20:]}")


def open_stream(url: str) -> EventStream:
    return EventStream(url, timeout=PATIENCE_S)
