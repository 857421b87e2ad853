"""The toolkit's exception hierarchy: the instruments' errors plus those of the layers above.

The base classes live in :mod:`instruments.errors` (drivers and emulators raise them without
importing ``hil``); they are re-exported here, so ``except hil.errors.ConfigError`` catches
what a driver raises. Every message says what went wrong, where and, where it helps, what to
do about it. Control paths never swallow these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from instruments.errors import (
    CapabilityError,
    CommunicationError,
    ConfigError,
    EnvelopeError,
    HilError,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    RatingError,
)

__all__ = [
    "BenchOpenError",
    "CapabilityError",
    "CommunicationError",
    "ConfigError",
    "EnvelopeError",
    "ExchangeError",
    "HilError",
    "InstrumentError",
    "InstrumentFailure",
    "InstrumentReportedError",
    "InstrumentTimeout",
    "MalformedReply",
    "RatingError",
    "SafetyTrip",
]


@dataclass(frozen=True)
class InstrumentFailure:
    """One instrument that could not be opened or did not answer: where, and why."""

    unit: str
    instrument: str
    resource: str
    error: str

    @property
    def key(self) -> str:
        """``<unit>.<instrument>``."""
        return f"{self.unit}.{self.instrument}"


class BenchOpenError(CommunicationError):
    """Some instruments of a bench did not answer; ``failures`` says which and why.

    Callers read ``failures`` (one :class:`InstrumentFailure` each) instead of the text.
    """

    def __init__(self, message: str, failures: Sequence[InstrumentFailure]) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


class ExchangeError(HilError):
    """An exchange is impossible or failed while running."""


class SafetyTrip(HilError):
    """The supervisor (or an instrument's protection) stopped the bench for safety."""
