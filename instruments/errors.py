"""The toolkit's exception hierarchy, at the bottom layer so drivers and emulators can raise it.

Every message says what went wrong, where (unit, instrument, file, key, resource, command)
and, where it helps, what to do about it. Control paths never swallow these.
``hil.errors`` re-exports every class here (``except hil.errors.ConfigError`` keeps working)
and adds the errors of the layers above (exchanges, safety trips).
"""

from __future__ import annotations


class HilError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class ConfigError(HilError):
    """A bench file, scenario or parameter set is malformed or impossible."""


class EnvelopeError(HilError):
    """A set-point or configuration lies outside its safety envelope; nothing was sent."""


class CapabilityError(EnvelopeError):
    """A unit was asked for something its hardware cannot do (a load asked to source)."""


class RatingError(EnvelopeError):
    """A set-point lies outside the instrument's own rating (model table); nothing was sent."""


class InstrumentError(HilError):
    """Something went wrong talking to, or inside, an instrument."""


class CommunicationError(InstrumentError):
    """The instrument did not answer, answered garbage, or the connection dropped.

    Carries the resource string and the command so that the message names both.
    """

    def __init__(self, message: str, *, resource: str = "", command: str = "") -> None:
        self.resource = resource
        self.command = command
        where = ", ".join(
            part
            for part in (
                f"resource {resource}" if resource else "",
                f"command {command!r}" if command else "",
            )
            if part
        )
        super().__init__(f"{message} ({where})" if where else message)


class InstrumentTimeout(CommunicationError):
    """No (complete) reply arrived within the timeout."""


class MalformedReply(CommunicationError):
    """A reply arrived but could not be parsed (non-numeric, truncated, bad checksum)."""


class InstrumentReportedError(InstrumentError):
    """The instrument refused a command and said why (SCPI error, Modbus exception, NAK)."""
