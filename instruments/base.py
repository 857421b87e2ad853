"""What every driver shares: identity, ratings, the pre-send range check, the driver protocol.

A driver never sends a set-point its instrument is not rated for: every setter calls
:func:`check_setpoint` (or a descriptor that does) *before* any byte leaves, and the
:class:`~instruments.errors.RatingError` it raises names the instrument, the quantity, the value and
the limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from instruments.errors import ConfigError, RatingError


@dataclass(frozen=True)
class Identity:
    """Who an instrument says it is (for the report's instrument table)."""

    vendor: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        serial = self.serial or "?"
        firmware = self.firmware or "?"
        return f"{self.vendor} {self.model} (serial {serial}, fw {firmware})"


@dataclass(frozen=True)
class Rating:
    """The rated output of one instrument: magnitudes, all non-negative.

    ``voltage`` is the highest programmable voltage, ``current`` the highest current
    magnitude (source or sink), ``power`` the highest power magnitude.
    """

    voltage: float
    current: float
    power: float

    def __post_init__(self) -> None:
        for name in ("voltage", "current", "power"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"rating {name} must be a positive finite number, got {value!r}")


_MODEL_RATING = re.compile(
    r"^[A-Z]*\d*?(?P<kw>\d{2})[A-Z]*-(?P<volts>\d+(?:\.\d+)?)-(?P<amps>\d+(?:\.\d+)?)$"
)


def rating_from_model_name(model: str) -> Rating:
    """Rating encoded in a ``SERIES<kW>X-<volts>-<amps>`` model name.

    ITECH (``IT6006C-500-40``: 6 kW, 500 V, 40 A) and Chroma (``63206A-600-210``: 6 kW,
    600 V, 210 A) both name their models this way; the two digits before the letter give
    the power in kW.
    """
    match = _MODEL_RATING.match(model.strip().upper())
    if match is None:
        raise ConfigError(
            f"model {model!r} does not follow the SERIES<kW>X-<volts>-<amps> naming; "
            "give the rating explicitly"
        )
    return Rating(
        voltage=float(match["volts"]),
        current=float(match["amps"]),
        power=1000.0 * float(match["kw"]),
    )


def format_number(value: float) -> str:
    """A set-point as sent on the wire: up to 10 significant digits, no unit (``12.5``).

    Zero is ``0`` whatever its sign: ``-0.0 + 0.0`` is ``+0.0``, so no ``-0`` reaches a load.
    """
    return format(float(value) + 0.0, ".10g")


def check_setpoint(
    where: str, quantity: str, value: float, minimum: float, maximum: float, unit: str
) -> float:
    """Return ``value`` as a float if it is finite and inside [minimum, maximum].

    Otherwise raise :class:`RatingError` naming the instrument (``where``), the quantity,
    the value and the violated limit; nothing has been sent at that point.
    """
    number = float(value)
    if not math.isfinite(number):
        raise RatingError(f"{where}: {quantity} {value!r} is not a finite number; nothing sent")
    if number < minimum:
        raise RatingError(
            f"{where}: {quantity} {number:g} {unit} is below the minimum {minimum:g} {unit}; "
            "nothing sent"
        )
    if number > maximum:
        raise RatingError(
            f"{where}: {quantity} {number:g} {unit} exceeds the rating {maximum:g} {unit}; "
            "nothing sent"
        )
    return number


@runtime_checkable
class Instrument(Protocol):
    """What every driver offers, whatever its protocol."""

    @property
    def resource(self) -> str:
        """The resource string the driver talks to."""
        ...

    def identify(self) -> Identity:
        """Vendor, model, serial and firmware, as far as the instrument tells them."""
        ...

    def probe(self) -> Identity:
        """The identity, after proving that the instrument answers (a silent one raises)."""
        ...

    def reconnect(self) -> None:
        """Close and reopen the transport (after a dropped connection)."""
        ...

    def close(self) -> None:
        """Release the transport; idempotent."""
        ...
