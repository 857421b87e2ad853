"""Busy polling: the emulator's event loop looks for the next request before it sleeps.

On loopback every request and reply is a wake-up on the other side. A process asleep in
``epoll_wait`` is woken by the scheduler, across cores an inter-processor interrupt, and on
a virtual machine that costs more than the work: an EZA-2500 query took 0.16 ms with the
emulator asleep between requests and 0.07 ms with it polling (19-house community bench, two
cores). A simulated-clock client asks again within microseconds, so after the loop handled
something, :class:`BusyPollSelector` polls without blocking for up to ``spin_s`` before it
sleeps as usual. An idle emulator sleeps; a busy one trades a core for latency, which is
why it is on by default only under the simulated clock (``hil emulate --busy-poll-us``).
"""

from __future__ import annotations

import asyncio
import selectors
import time

#: Default poll window under the simulated clock, microseconds.
SIM_BUSY_POLL_US = 300.0


class BusyPollSelector(selectors.DefaultSelector):
    """The platform's selector, polling for up to ``spin_s`` before a blocking wait.

    The poll counts against ``timeout``, so a timer due within the window keeps its time;
    a zero timeout polls once, as before."""

    def __init__(self, spin_s: float) -> None:
        super().__init__()
        if not spin_s >= 0.0:
            raise ValueError(f"busy-poll window must be >= 0 s, not {spin_s}")
        self.spin_s = spin_s

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        window = self.spin_s if timeout is None else min(self.spin_s, timeout)
        if window > 0.0:
            start = time.perf_counter()
            while True:
                ready = super().select(0)
                if ready:
                    return ready
                spent = time.perf_counter() - start
                if spent >= window:
                    break
            if timeout is not None:
                timeout = max(timeout - spent, 0.0)
        return super().select(timeout)


def event_loop_factory(spin_s: float) -> asyncio.AbstractEventLoop:
    """A selector event loop on a :class:`BusyPollSelector` (a plain one for 0)."""
    if spin_s <= 0.0:
        return asyncio.SelectorEventLoop()
    return asyncio.SelectorEventLoop(BusyPollSelector(spin_s))
