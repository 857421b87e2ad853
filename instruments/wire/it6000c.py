"""Facts of the ITECH IT6000C that the driver and the emulator model share.

Source: OpenBench's IT6000C driver and profile (read, not copied), as listed in the
driver's module docstring: the status register bits and the SCPI maxima as fractions of
the rating (IT6054C-800-225: 808 V, 227.25 A, 55 080 W). Which questionable bit a
watchdog expiry sets is not documented (*assumed*: PROTECTION).
"""

from __future__ import annotations

from enum import IntFlag


class OperationStatus(IntFlag):
    """``STAT:OPER:COND?`` bits (OpenBench): the regulation loop in control."""

    CC_POS = 128
    CV = 256
    CP_POS = 512
    CC_NEG = 2048
    CP_NEG = 4096


class QuestionableStatus(IntFlag):
    """``STAT:QUES:COND?`` bits (OpenBench): latched protections and faults."""

    OVP = 1
    OCP_POS = 2
    OCP_NEG = 4
    OPP_POS = 8
    OPP_NEG = 16
    UVP = 32
    OTP = 64
    UCP = 128
    SENSE = 256
    SHARE = 512
    REVERSE = 1024
    INHIBIT = 2048
    POWER_STATE = 4096
    PROTECTION = 8192
    INTERNAL = 16384


#: SCPI maxima as fractions of the rating (OpenBench, IT6054C-800-225).
SCPI_VOLTAGE_MAX = 1.01
SCPI_CURRENT_MAX = 1.01
SCPI_POWER_MAX = 1.02
