"""Chroma 63200A high-power DC electronic loads: sink only, SCPI (registry name
``chroma63200a``).

Why this family: its programming documentation is the one we could actually find (the
ITECH IT8900 programming guide is not in the search index). Sources:

- *Chroma 63200A Series User Manual*, chapter 4 "Remote Operation" (easymanua.ls): ``*RST``
  forces ``ABOR``, ``*CLS`` and ``LOAD:PROT:CLE``; the POWER subsystem
  (``POW:STAT:L1|L2|RISE|FALL``, slews in A/µs, ``MIN``/``MAX`` accepted) — confirmed.
- *High Power DC Electronic Load 63200 Series Operation & Programming Manual*: ``*IDN?`` →
  ``Chroma,63203,12345678,01.00``; ``*OPC?`` → ``1`` — confirmed.
- *63600 Series Operation & Programming Manual* (same command language): ``LOAD ON|OFF``,
  ``CURR:STAT:L1``, ``MEAS:VOLT?``/``MEAS:CURR?`` — *assumed* identical on the 63200A.
- Status: the *63200A Series Operation & Programming Manual* §5.2.3 Table 5-2
  (easymanua.ls p. 131) lists the conditions OT, OC, OP, RV, max sine-wave current limit in
  the words and order of the 63600 manual's §6.2.3, whose channel status is OTP 1, OVP 2,
  OCP 4, OPP 8, REV 16, SYNC 32, MAX LIM 64, FAN 128; the 63200A's own bit weights could not
  be read, so these are *assumed* (the 63200 non-A manual's questionable register differs:
  OC 1, OV 2, OP 4, RV 8, OT 16). ``STAT:CHAN:COND?`` and ``STAT:QUES:COND?`` carry them.
- A third-party 63206A driver (``AnnaGiasson/PythonEquipmentDrivers``,
  ``pythonequipmentdrivers/sink/Chroma_63206A.py``, commit 1817eb12) uses ``MODE CCH|CRH|
  CPH|CCDH…`` (mode and range in one word; ``CCD*`` dynamic CC), ``CURR:STAT:L1``,
  ``CURR:DYN:L1|L2|T1|T2|RISE|FALL|REP``, ``VOLT:STAT:L1``, ``VOLT:STAT:ILIM``, ``LOAD:SHOR``,
  ``MEAS:POW?`` — *assumed* (secondary source).
- ``CONF:VOLT:ON`` (turn-on voltage) and ``CONF:REM ON|OFF`` are taken from the 63600
  language — *assumed*. No source says remote must be entered on LAN or GPIB, so the driver
  does not send ``CONF:REM ON`` by itself; :meth:`Chroma63200A.remote` does, where a setup
  needs it.

Models: the name encodes the rating, ``632PPA-<volts>-<amps>`` with PP the power in kW
(``63206A-600-210``: 6 kW, 600 V, 210 A). For the 350 V bus use a 600 V model; for the 48 V
battery node a 150 V model (every 63200A model carries well over 20 A). The exact model
list was not confirmed; the bench file names the model (or gives the rating).

Wire format: ``LOAD ON``, ``MODE CCH``, ``CURR:STAT:L1 2.5`` (no unit; zero is ``0``, never
``-0``), ``MEAS:CURR?``. The load reports sunk current as a *positive* number; adapters turn
it into bus convention.

How the load adapter (role ``Load``) drives it: ``MODE CCH`` (only when not already in
CC), ``CURR:STAT:L1 |a|``, ``LOAD ON``; idle ``LOAD OFF`` then ``CURR:STAT:L1 0``; arm
``LOAD OFF``, ``MODE CCH``, ``CURR:STAT:L1 0``, ``CONF:VOLT:ON <window bottom>``. The
63200A's over-current/power/voltage protections are fixed at its rating (no programmable
levels here); it has no watchdog. ``measure`` is one compound query
``MEAS:VOLT?;:MEAS:CURR?;:LOAD?;:STAT:CHAN:COND?;:MODE?``; a latched channel bit (OTP, OVP,
OCP, OPP, REV) trips it, SYNC, MAX LIM and FAN do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from instruments.errors import MalformedReply
from instruments.families import Family, SettingSpec, register

from .base import check_setpoint
from .roles import OutputReading, OutputStatus, SafeAction
from .scpi import (
    RatedScpiInstrument,
    ScpiChoice,
    ScpiMeasurement,
    ScpiNumber,
    ScpiSwitch,
    compound,
    parse_bool,
    parse_number,
)
from .wire.chroma63200a import TRIPS, ChannelStatus

log = logging.getLogger(__name__)


class LoadMode(Enum):
    """``MODE``: regulation mode and range in one word (L/M/H = low/middle/high range)."""

    CCL = "CCL"
    CCM = "CCM"
    CCH = "CCH"
    CRL = "CRL"
    CRM = "CRM"
    CRH = "CRH"
    CVL = "CVL"
    CVM = "CVM"
    CVH = "CVH"
    CPL = "CPL"
    CPM = "CPM"
    CPH = "CPH"
    CCDL = "CCDL"
    CCDM = "CCDM"
    CCDH = "CCDH"

    @property
    def regulation(self) -> str:
        """``CC``, ``CR``, ``CV`` or ``CP``."""
        return self.value[:2]


READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "LOAD?", "STAT:CHAN:COND?", "MODE?")
READ_COMMAND = compound(READ_QUERIES)
STATUS_QUERIES = ("LOAD?", "STAT:CHAN:COND?")
STATUS_COMMAND = compound(STATUS_QUERIES)

_STATUS_FLAGS = {
    ChannelStatus.OTP: "OTP",
    ChannelStatus.OVP: "OVP",
    ChannelStatus.OCP: "OCP",
    ChannelStatus.OPP: "OPP",
    ChannelStatus.REV: "REV",
}


def status_flags(status: ChannelStatus) -> frozenset[str]:
    """Flag names of the latched channel status bits (SYNC, MAX LIM and FAN are not)."""
    return frozenset(name for bit, name in _STATUS_FLAGS.items() if bit in status)


@dataclass(frozen=True)
class LoadReading:
    """One read: input voltage, sunk current (positive) and power, input state, status."""

    voltage: float
    current: float
    power: float
    load_on: bool
    status: ChannelStatus

    @property
    def tripped(self) -> bool:
        return bool(self.status)


def _amps(load: Chroma63200A) -> tuple[float, float]:
    return (0.0, load.rating.current)


def _volts(load: Chroma63200A) -> tuple[float, float]:
    return (0.0, load.rating.voltage)


def _watts(load: Chroma63200A) -> tuple[float, float]:
    return (0.0, load.rating.power)


def _slew(load: Chroma63200A) -> tuple[float, float]:
    return (0.0, 1e3)


def _dwell(load: Chroma63200A) -> tuple[float, float]:
    return (0.000025, 50.0)


def _repeat(load: Chroma63200A) -> tuple[float, float]:
    return (0.0, 65535.0)


class Chroma63200A(RatedScpiInstrument):
    """Chroma 63200A load. Set-points are checked against ``rating`` before sending."""

    family = "Chroma 63200A"

    load = ScpiSwitch("LOAD", doc="``LOAD ON|OFF``: the load input.")
    short = ScpiSwitch("LOAD:SHOR", doc="``LOAD:SHOR ON|OFF``: short-circuit simulation.")
    mode = ScpiChoice("MODE", LoadMode, doc="``MODE CCH|…``: regulation mode and range.")
    current = ScpiNumber(
        "CURR:STAT:L1", unit="A", limits=_amps, doc="``CURR:STAT:L1``: static CC level."
    )
    current_rise = ScpiNumber(
        "CURR:STAT:RISE",
        unit="A/us",
        limits=_slew,
        doc="``CURR:STAT:RISE``: rising slew rate in A/µs.",
    )
    current_fall = ScpiNumber(
        "CURR:STAT:FALL",
        unit="A/us",
        limits=_slew,
        doc="``CURR:STAT:FALL``: falling slew rate in A/µs.",
    )
    dynamic_l1 = ScpiNumber("CURR:DYN:L1", unit="A", limits=_amps, doc="Dynamic level 1 (A).")
    dynamic_l2 = ScpiNumber("CURR:DYN:L2", unit="A", limits=_amps, doc="Dynamic level 2 (A).")
    dynamic_t1 = ScpiNumber("CURR:DYN:T1", unit="s", limits=_dwell, doc="Time at level 1.")
    dynamic_t2 = ScpiNumber("CURR:DYN:T2", unit="s", limits=_dwell, doc="Time at level 2.")
    dynamic_rise = ScpiNumber("CURR:DYN:RISE", unit="A/us", limits=_slew)
    dynamic_fall = ScpiNumber("CURR:DYN:FALL", unit="A/us", limits=_slew)
    dynamic_repeat = ScpiNumber(
        "CURR:DYN:REP", unit="", limits=_repeat, doc="Dynamic cycles (0: for ever)."
    )
    cv_voltage = ScpiNumber(
        "VOLT:STAT:L1", unit="V", limits=_volts, doc="``VOLT:STAT:L1``: static CV level."
    )
    cv_current_limit = ScpiNumber(
        "VOLT:STAT:ILIM",
        unit="A",
        limits=_amps,
        doc="``VOLT:STAT:ILIM``: current limit in CV mode.",
    )
    power = ScpiNumber(
        "POW:STAT:L1", unit="W", limits=_watts, doc="``POW:STAT:L1``: static CP level."
    )
    turn_on_voltage = ScpiNumber(
        "CONF:VOLT:ON",
        unit="V",
        limits=_volts,
        doc="``CONF:VOLT:ON``: input voltage above which it sinks.",
    )
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A")
    measured_power = ScpiMeasurement("MEAS:POW?", unit="W")

    def clear_protection(self) -> None:
        """``LOAD:PROT:CLE``: clear latched protection."""
        self.write_setting("LOAD:PROT:CLE")

    def remote(self) -> None:
        """``CONF:REM ON``: remote state (63600 language, *assumed*; not needed on LAN)."""
        self.write_setting("CONF:REM ON")

    def channel_status(self) -> ChannelStatus:
        """``STAT:CHAN:COND?``: live protection status."""
        return ChannelStatus(self.query_int("STAT:CHAN:COND?"))

    def sink_current(self, amps: float) -> None:
        """CC (high range) at ``amps``: ``MODE CCH`` then ``CURR:STAT:L1 <a>``."""
        with self.locked():
            check_setpoint(self.name, "current", amps, *_amps(self), "A")
            self.mode = LoadMode.CCH
            self.current = amps

    def hold_voltage(self, volts: float, current_limit: float) -> None:
        """CV (high range) at ``volts`` limited to ``current_limit``.

        Sequence: ``MODE CVH``, ``VOLT:STAT:ILIM <a>``, ``VOLT:STAT:L1 <v>``.
        """
        with self.locked():
            check_setpoint(self.name, "voltage", volts, *_volts(self), "V")
            check_setpoint(self.name, "current limit", current_limit, *_amps(self), "A")
            self.mode = LoadMode.CVH
            self.cv_current_limit = current_limit
            self.cv_voltage = volts

    def read(self) -> LoadReading:
        """Measured voltage, current, power, input state and channel status."""
        with self.locked():
            return LoadReading(
                voltage=self.measured_voltage,
                current=self.measured_current,
                power=self.measured_power,
                load_on=self.load,
                status=self.channel_status(),
            )

    # -- the load role (instruments.roles.Load) ------------------------------------------
    def measure(self) -> OutputReading:
        """One compound query of voltage, current, input state, channel status and mode;
        the sunk current is returned negative (terminal convention)."""
        fields = self.query_fields(READ_QUERIES)
        where = {"resource": self.resource, "command": READ_COMMAND}
        status = ChannelStatus(int(parse_number(fields[3], **where)))
        regulation = self._mode(fields[4], READ_COMMAND).regulation
        return OutputReading(
            voltage=parse_number(fields[0], **where),
            current=-parse_number(fields[1], **where),
            on=parse_bool(fields[2], **where),
            regulation="voltage" if regulation == "CV" else "current",
            tripped=bool(status & TRIPS),
            flags=status_flags(status),
        )

    def _mode(self, text: str, command: str) -> LoadMode:
        """``CCH`` (any case, optionally quoted) as a :class:`LoadMode`."""
        word = text.strip().strip('"').upper()
        try:
            return LoadMode(word)
        except ValueError:
            raise MalformedReply(
                f"mode {text!r} is none of {', '.join(m.value for m in LoadMode)}",
                resource=self.resource,
                command=command,
            ) from None

    def output_status(self) -> OutputStatus:
        """``LOAD?;:STAT:CHAN:COND?`` in one round trip."""
        state, status = self.query_fields(STATUS_QUERIES)
        where = {"resource": self.resource, "command": STATUS_COMMAND}
        on = parse_bool(state, **where)
        return OutputStatus(on, status_flags(ChannelStatus(int(parse_number(status, **where)))))

    def safe_off_actions(self) -> list[SafeAction]:
        """``LOAD OFF``, then ``CURR:STAT:L1 0``."""
        return [
            ("LOAD OFF", lambda: self.set_input(False)),
            ("CURR:STAT:L1 0", lambda: self.set_sink_current(0.0)),
        ]

    def set_input(self, on: bool) -> None:
        self.load = on

    def select_constant_current(self) -> None:
        """``MODE CCH``: constant current, high range."""
        self.mode = LoadMode.CCH

    def set_sink_current(self, amps: float) -> None:
        """``CURR:STAT:L1 <a>``."""
        self.current = amps

    def set_turn_on_voltage(self, volts: float) -> None:
        """``CONF:VOLT:ON <v>``."""
        self.turn_on_voltage = volts


#: The family a bench file names ``driver = "chroma63200a"``
#: (ratings: ``instruments/chroma63200a.toml``).
FAMILY = register(
    Family(
        name="chroma63200a",
        function="load",
        transport="visa",
        description="Chroma 63200A DC electronic load (SCPI)",
        opener=Chroma63200A.open,
        ratings="chroma63200a.toml",
        settings=(
            SettingSpec(
                "cv_voltage",
                "float",
                "V: run in constant-voltage mode at this level (battery emulation)",
                minimum=0.0,
                opens=False,
            ),
        ),
        open_keywords=frozenset({"rating"}),
    )
)
