"""Facts of the Keysight RP7900 that the driver and the emulator model share.

Source: *Keysight RP7900 Series Operating and Service Guide*, chapter 5 "SCPI Programming
Reference", section "Status Tutorial" (Operation and Questionable1 status group tables, p. 241
of the edition indexed at manualshive.com / easymanua.ls), and the OUTPut:PROTection:WDOG
entries (p. 226): watchdog delay 1-3600 s in 1 s steps, ``*RST`` OFF and 60 s; a watchdog
expiry latches the output off and sets the PROT bit. The protection levels' SCPI maxima are
102 % of the rating (the guide's ``VOLT:PROT:LOW`` entry, p. 238, gives "0 to 102% of
rating"; the same 102 % for ``VOLT:PROT`` and ``POW:LIM`` is *assumed*).
"""

from __future__ import annotations

from enum import IntFlag


class OperationStatus(IntFlag):
    """``STAT:OPER:COND?`` bits (Operation Status Group table)."""

    CV = 1
    CC = 2
    OFF = 4
    WTG_MEAS = 8
    WTG_TRAN = 16
    MEAS_ACTIVE = 32
    TRAN_ACTIVE = 64


class QuestionableStatus(IntFlag):
    """``STAT:QUES:COND?`` bits (Questionable1 Status Group table)."""

    OV = 1
    OC = 2
    PF = 4
    CP_POS = 8
    OT = 16
    CP_NEG = 32
    OV_NEG = 64
    LIM_POS = 128
    LIM_NEG = 256
    INH = 512
    UNR = 1024
    PROT = 2048
    EDP = 4096


#: Watchdog delay range and ``*RST`` value, seconds (OUTP:PROT:WDOG:DEL entry).
WATCHDOG_DELAY_MIN_S = 1.0
WATCHDOG_DELAY_MAX_S = 3600.0
WATCHDOG_DELAY_RESET_S = 60.0
#: SCPI maximum of the protection levels as a fraction of the rating (see module docstring).
SCPI_PROTECTION_MAX = 1.02
