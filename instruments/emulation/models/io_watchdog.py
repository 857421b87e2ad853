"""An SCPI model with an I/O watchdog: output off after a set time without received bytes.

The ITECH IT6000C (``SYST:COMM:WATC``) and the Keysight RP7900 (``OUTP:PROT:WDOG``) both latch
their output off when no byte arrives for the programmed delay; their models share the timer
here and keep their own commands and status bits.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from instruments.emulation.models.scpi_model import ScpiModel
from instruments.emulation.plant import BidirectionalHandle
from instruments.emulation.scpi_session import ScpiSession
from instruments.emulation.transport import SessionFactory

log = logging.getLogger(__name__)


class WatchedScpiModel(ScpiModel):
    """Timer state and expiry of the I/O watchdog; the subclass sets the fields up."""

    #: How the instrument's manual names its watchdog, for the log line.
    watchdog_name: ClassVar[str] = "I/O watchdog"
    port: BidirectionalHandle
    watchdog_on: bool
    watchdog_delay: float
    watchdog_tripped: bool
    last_io: float

    def next_deadline(self) -> float | None:
        if not self.watchdog_on or self.watchdog_tripped:
            return None
        return self.last_io + self.watchdog_delay

    def on_time(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            log.warning(
                "%s: %s expired (%g s without I/O); output off",
                self.key,
                self.watchdog_name,
                self.watchdog_delay,
            )
            self.watchdog_tripped = True
            self.port.set_output(False)

    def note_activity(self) -> None:
        """Bytes arrived: an expiry already due still fires, then the timer restarts."""
        now = self.plant.time
        self.on_time(now)
        self.last_io = now

    def session_factory(self) -> SessionFactory:
        return lambda: _WatchedSession(ScpiSession(self), self)


class _WatchedSession:
    """A SCPI session that tells the model about every received byte (its watchdog)."""

    def __init__(self, inner: ScpiSession, model: WatchedScpiModel) -> None:
        self._inner = inner
        self._model = model

    def feed(self, data: bytes) -> list[bytes]:
        if data:
            self._model.note_activity()
        return self._inner.feed(data)
