"""The clock protocol the drivers wait on, and the lab's wall clock.

Drivers pace their frames and time their retries on a :class:`Clock` so that an emulated
bench can run them on simulated time (``hil.clock.SimClock``). Nothing in the toolkit calls
``time.sleep`` directly. ``hil.clock`` re-exports both names.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Reads and waits for time, in seconds."""

    def now(self) -> float:
        """Seconds since an arbitrary origin fixed for the clock's life."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (on this clock's time base)."""
        ...


class WallClock:
    """Real time, monotonic."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
