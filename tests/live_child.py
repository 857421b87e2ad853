"""A run with the live page in a child process (``hil run --live`` or ``pytest --live``),
for the live-page tests: its own process group, its output read by a thread, the page's
address taken from the line it prints (port 0: a free port). Synchronisation is on output
lines and on the page's own events, never on sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from child_process import ChildProcess

from hil.live.client import EventStream
from hil.live.events import LiveEvent

#: Generous bound for things that take seconds at most (never a timing claim).
PATIENCE_S = 90.0
#: The folder of the bench that waits for the operator (collected only with HIL_LIVE_BENCH).
LIVE_BENCHES = "tests/live_benches"
PAGE_LINE = "pp2p-hil: live page at "


class LiveChild(ChildProcess):
    """A run in its own process group; :attr:`url` once the page is served."""

    def __init__(
        self, args: list[str], run_dir: Path, *, stdin: str | None = None, prompts: int = 1
    ) -> None:
        self.run_dir = run_dir
        env = {"HIL_LIVE_PROMPTS": str(prompts), "HIL_LIVE_BENCH": "1"}
        super().__init__(args, env, stdin=stdin, patience_s=PATIENCE_S)
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

    def wait_page(self) -> str:
        self.url = self.wait_line(PAGE_LINE).split(PAGE_LINE, 1)[1].split()[0]
        return self.url


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
