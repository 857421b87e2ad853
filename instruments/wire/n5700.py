"""Facts of the Keysight N5700 that the driver and the emulator model share.

Source: *Series N5700 User's Guide*, Language Reference (``[SOUR:]VOLT:PROT:LEV``,
``[SOUR:]VOLT:LIM:LOW``, status registers). The OVP table has one row per voltage rating,
6 V to 600 V; the guide lists no row above 600 V (no N5700 model is rated above it), so a
higher rating is refused rather than given the 600 V row (the emulator's old copy did
that; the driver's refusal follows the guide).
"""

from __future__ import annotations

from enum import IntFlag

from instruments.errors import ConfigError

#: OVP range per voltage rating: rating (V) -> (minimum, maximum) OVP level (V).
OVP_TABLE: dict[float, tuple[float, float]] = {
    6.0: (0.5, 7.5),
    8.0: (0.5, 10.0),
    12.5: (1.0, 15.0),
    20.0: (1.0, 24.0),
    30.0: (2.0, 36.0),
    40.0: (2.0, 44.0),
    60.0: (5.0, 66.0),
    80.0: (5.0, 88.0),
    100.0: (5.0, 110.0),
    150.0: (5.0, 165.0),
    300.0: (5.0, 330.0),
    600.0: (5.0, 660.0),
}
#: ``VOLT:PROT:LEV`` must be at least this times the voltage setting.
OVP_FACTOR = 1.05
#: ``VOLT:LIM:LOW`` may be at most this times the voltage setting (and the rating).
UV_LIMIT_FACTOR = 0.95


def ovp_range(rating_voltage: float) -> tuple[float, float]:
    """The OVP table row for a voltage rating (nearest row at or above it)."""
    for volts in sorted(OVP_TABLE):
        if rating_voltage <= volts:
            return OVP_TABLE[volts]
    raise ConfigError(f"no N5700 OVP table row for a {rating_voltage:g} V rating")


class Questionable(IntFlag):
    """``STAT:QUES:COND?`` bits."""

    OV = 1
    OC = 2
    PF = 4
    OT = 16
    INH = 512
    UNR = 1024


class Operation(IntFlag):
    """``STAT:OPER:COND?`` bits."""

    WTG = 32
    CV = 256
    CC = 1024
