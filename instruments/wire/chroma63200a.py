"""Facts of the Chroma 63200A that the driver and the emulator model share.

Source: the channel status layout as the driver's module docstring gives it (63600 manual
layout for ``STAT:CHAN:COND?``): which bits are latched protections.
"""

from __future__ import annotations

from enum import IntFlag


class ChannelStatus(IntFlag):
    """``STAT:CHAN:COND?`` bits (63600 manual layout; see the module docstring)."""

    OTP = 1
    OVP = 2
    OCP = 4
    OPP = 8
    REV = 16
    SYNC = 32
    MAX_LIM = 64
    FAN = 128


#: Channel status bits latched until ``LOAD:PROT:CLE``: a protection or a reversed input.
TRIPS = (
    ChannelStatus.OTP
    | ChannelStatus.OVP
    | ChannelStatus.OCP
    | ChannelStatus.OPP
    | ChannelStatus.REV
)
