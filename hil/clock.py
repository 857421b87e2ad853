"""Clocks: the only way the toolkit reads or waits for time (``Clock`` and ``WallClock`` live
in :mod:`instruments.clock`, at the bottom, so drivers can use them).

``WallClock`` is for the lab. ``SimClock`` is for emulated benches: ``sleep`` advances the
simulated plant instead of waiting, so a 10-minute exchange runs in milliseconds and every
run is deterministic. Nothing in the toolkit calls ``time.sleep`` directly.
"""

from __future__ import annotations

from collections.abc import Callable

from instruments.clock import Clock, WallClock

__all__ = ["Clock", "SimClock", "WallClock"]


class SimClock:
    """Simulated time that moves only when ``sleep`` asks the plant to advance.

    ``advance`` is called with the number of seconds to simulate and returns the new
    simulated time (the emulator's control channel or a plant's ``advance``).
    """

    def __init__(self, advance: Callable[[float], float], start: float = 0.0) -> None:
        self._advance = advance
        self._now = start
        #: ``sleep`` calls so far: each is one ``advance`` (one control-channel round trip
        #: on an emulator).
        self.sleeps = 0

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        self._now = self._advance(seconds)
        self.sleeps += 1
