"""Facts of the Kikusui PWR-01 that the driver and the emulator model share.

Source: *Kikusui PWR-01 Series Communication Interface Manual* (IB034212, Oct 2019; read on
manualshive.com), "STATus Command": the QUEStionable register bits (OV 1, OC 2, PF 4,
FOCP 8, OT 16, SD 32, PARA 64, SENS 128, WDOG 16384 "communication monitor has been
activated") and the OPERation bits (CV 256, CC 1024, WTG 32). The OVP and OCP ranges as
fractions of the rating are *assumed* (10 % to 110 % of the rating, the usual Kikusui
front-panel range; not found in the interface manual excerpts we read).
"""

from __future__ import annotations

from enum import IntFlag

#: OVP/OCP lowest and highest level as fractions of the rated voltage/current (*assumed*).
PROTECTION_MIN_FRACTION = 0.10
PROTECTION_MAX_FRACTION = 1.10


def protection_range(rated: float) -> tuple[float, float]:
    """(minimum, maximum) of ``VOLT:PROT`` or ``CURR:PROT`` for a rated voltage or current."""
    return (
        round(PROTECTION_MIN_FRACTION * rated, 6),
        round(PROTECTION_MAX_FRACTION * rated, 6),
    )


class Questionable(IntFlag):
    """``STAT:QUES:COND?`` bits (interface manual, QUEStionable status register)."""

    OV = 1
    OC = 2
    PF = 4
    FOCP = 8
    OT = 16
    SD = 32
    PARA = 64
    SENS = 128
    WDOG = 16384


class Operation(IntFlag):
    """``STAT:OPER:COND?`` bits (interface manual, OPERation status register)."""

    WTG = 32
    CV = 256
    CC = 1024


#: Questionable bits after which the output is off (every protection of the list).
TRIPS = (
    Questionable.OV
    | Questionable.OC
    | Questionable.PF
    | Questionable.FOCP
    | Questionable.OT
    | Questionable.SD
    | Questionable.WDOG
)
