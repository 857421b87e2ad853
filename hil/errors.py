"""The toolkit's exception hierarchy: the instruments' errors plus those of the layers above.

The base classes live in :mod:`instruments.errors` (drivers and emulators raise them without
importing ``hil``); they are re-exported here, so ``except hil.errors.ConfigError`` catches
what a driver raises. Every message says what went wrong, where and, where it helps, what to
do about it. Control paths never swallow these.
"""

from __future__ import annotations

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
    "CapabilityError",
    "CommunicationError",
    "ConfigError",
    "EnvelopeError",
    "ExchangeError",
    "HilError",
    "InstrumentError",
    "InstrumentReportedError",
    "InstrumentTimeout",
    "MalformedReply",
    "RatingError",
    "SafetyTrip",
]


class ExchangeError(HilError):
    """An exchange is impossible or failed while running."""


class SafetyTrip(HilError):
    """The supervisor (or an instrument's protection) stopped the bench for safety."""
