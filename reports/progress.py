"""How far the report's build has come, told to the person waiting for it.

:class:`BuildProgress` is called by :func:`reports.build.build_report` once per test laid
out and once when the pages are written. On a terminal it redraws one bar in place
(``hil run: building the report [########----------] 24/48 tests``); to a pipe or a file it
writes a line at most every :data:`LINE_EVERY_S` seconds, so a log shows that the build
moves without one line per test. Nothing is printed for a build that ends within
:data:`QUIET_S` seconds of its start, beyond the caller's own lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

#: A build shorter than this prints no progress at all.
QUIET_S = 1.0
#: At most one progress line this often when the output is not a terminal.
LINE_EVERY_S = 2.0
BAR_W = 24


class BuildProgress:
    """A progress bar (terminal) or progress lines (pipe) for one report build."""

    def __init__(
        self,
        out: TextIO,
        prefix: str = "hil run",
        *,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.out = out
        self.prefix = prefix
        self.clock = clock
        self.tty = out.isatty() if tty is None else tty
        self.started = clock()
        self._last = self.started
        self._drawn = False

    def __call__(self, done: int, total: int, what: str) -> None:
        """``done`` of ``total`` parts are laid out; ``what`` names the stage."""
        now = self.clock()
        if now - self.started < QUIET_S:
            return
        if self.tty:
            filled = BAR_W * done // max(total, 1)
            bar = "#" * filled + "-" * (BAR_W - filled)
            self.out.write(f"\r{self.prefix}: building the report [{bar}] {done}/{total} {what}")
            self.out.flush()
            self._drawn = True
        elif now - self._last >= LINE_EVERY_S or (done == total and what == "pages"):
            self._last = now
            print(f"{self.prefix}: building the report: {done}/{total} {what}", file=self.out)

    def finish(self) -> None:
        """End the bar's line (a terminal), so the next line starts clean."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False
