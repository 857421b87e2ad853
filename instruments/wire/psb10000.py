"""Facts of the EA PSB 10000 that the driver and the emulator model share.

Source: EA's *ModBus & SCPI programming guide* for the PSB 10000 series (register list:
coils 402/405/409, set values 498-502, device state 505-506, actual values 507-509,
protections 550-570, nominal values 121-125; the 0xCCCC full scale and the set / protection
caps), as the driver's module docstring cites it. The unit answers ids 0 and 1; the
project's one default is 0.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

COIL_REMOTE = 402
COIL_OUTPUT = 405
COIL_UIR_MODE = 409
REG_SINK_POWER = 498
REG_SINK_CURRENT = 499
REG_VOLTAGE = 500
REG_CURRENT = 501
REG_POWER = 502
REG_STATE = 505
REG_ACTUAL = 507
REG_OVP = 550
REG_OCP = 553
REG_OPP = 556
REG_SINK_OCP = 569
REG_SINK_OPP = 570
REG_NOMINAL_VOLTAGE = 121
REG_NOMINAL_CURRENT = 123
REG_NOMINAL_POWER = 125

FULL_SCALE = 0xCCCC
SET_CAP = 0xD0E5
PROTECTION_CAP = 0xE147
#: The project's one default unit id for a PSB (the unit answers 0 and 1 alike).
DEFAULT_DEVICE_ID = 0


class Regulation(IntEnum):
    """Device state bits 9-10."""

    CV = 0
    CR = 1
    CC = 2
    CP = 3


class PsbState(IntFlag):
    """Device state (registers 505-506 as one u32)."""

    OUTPUT_ON = 1 << 7
    REMOTE = 1 << 11
    SINK = 1 << 12
    ALARM = 1 << 15
    OVP = 1 << 16
    OCP = 1 << 17
    OPP = 1 << 18
    OT = 1 << 19

    @property
    def regulation(self) -> Regulation:
        return Regulation((int(self) >> 9) & 0b11)


TRIPS = PsbState.OVP | PsbState.OCP | PsbState.OPP | PsbState.OT
