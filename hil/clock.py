"""Clocks: the only way the toolkit reads or waits for time.

``WallClock`` is for the lab. ``SimClock`` is for emulated benches: ``sleep`` advances the
simulated plant instead of waiting, so a 10-minute exchange runs in milliseconds and every
run is deterministic. Nothing in the toolkit calls ``time.sleep`` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


class SimClock:
    """Simulated time that moves only when ``sleep`` asks the plant to advance.

    ``advance`` is called with the number of seconds to simulate and returns the new
    simulated time (the emulator's control channel or a plant's ``advance``).
    """

    def __init__(self, advance: Callable[[float], float], start: float = 0.0) -> None:
        self._advance = advance
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        self._now = self._advance(seconds)
