"""Emulated EA PSB 10000 on SCPI (driver ``psb10000-scpi``): EA's dialect on the shared physics.

The physics and its plant port are :mod:`instruments.emulation.models.psb10000`'s
(:class:`~instruments.emulation.models.psb10000.PsbPhysics`); this module is the SCPI front.

Sources: EA's "Programming ModBus & SCPI" guide (10000 series) as summarised in the project's
``reference/instrument-protocols.md`` (checked 2026-12-07); the independent drivers
nominal-io/instro ``instro/psu/drivers/ea_psb10000.py`` (commit 3ce6aa3a, "per EA guide REV
24": ``SYST:LOCK ON``, ``SYST:LOCK:OWN?`` → ``REMOTE``, ``SYST:CONF:MODE UIP|UIR``, signed
``MEAS:CURR?`` "REV 24 §5.4.4.2", replies ``43.50V``, ``SYST:ERR?`` after every command) and
an EA client in C++ (``cEAsource.cpp``: ``SYST:COMM:MON:TIM n;SYST:COMM:MON:ACT ON``, compound
``VOLT:PROT;CURR:PROT;SINK:CURR:PROT;POW:PROT;SINK:POW:PROT``). *Assumed* where marked.

Commands: ``SYST:LOCK ON|OFF`` (remote control; leaving it switches the DC output off),
``SYST:LOCK:OWN?`` (``REMOTE``/``NONE``), ``OUTP``, ``VOLT``, ``CURR``, ``POW``, ``SINK:CURR``,
``SINK:POW`` (0..102 % of nominal, -222 outside), ``VOLT:PROT``, ``CURR:PROT``, ``POW:PROT``
(source) and ``SINK:CURR:PROT``, ``SINK:POW:PROT`` (sink; 0..110 %), ``SYST:CONF:MODE
UIP|UIR`` (stored: the plant has no resistance mode), ``MEAS:VOLT?``, ``MEAS:CURR?``,
``MEAS:POW?``, ``MEAS:ARR?``, ``SYST:NOM:VOLT?``/``CURR?``/``POW?``/``RES?``/``RES:MIN?``,
``STAT:OPER?``/``STAT:QUES?`` (with ``:COND?``, ``:ENAB``, ``:PTR``, ``:NTR``),
``SYST:ERR?``, ``SYST:ERR:ALL?``. Replies carry the unit with no space and two decimals
(``43.50V``); measured current and power are negative while sinking (REV 24 §5.4.4.2, as
instro quotes it). ``MEAS:ARR?`` answers ``350.00V,-2.00A,-0.70kW`` on a unit of 10 kW or
more: a magnitude prefix on the power (guide; the 10 kW threshold and the comma without a
space are assumed).

Compound messages: every unit after ``;`` starts at the root, not at the previous header's
path (assumed from cEAsource.cpp, which sends ``SYST:NOM:VOLT?;SYST:NOM:CURR?;SYST:NOM:POW?``
and ``VOLT 300.00 V;CURR 0.00 A;SINK:CURR 2.00 A;POW 5000.00 W;SINK:POW 5000.00 W`` to real
units and means the source ``POW`` there).

Remote: a setting without ``SYST:LOCK ON`` queues ``-221,"Settings conflict"`` (guide; -201
belongs to the front-panel lock, not modelled). ``*RST`` switches to remote first, then sets
the output off, set values to 0 and protections to 110 % (assumed defaults).

Alarms (a latched OVP/OCP/OT trip) are acknowledged by reading the error queue,
``SYST:ERR?`` or ``SYST:ERR:ALL?`` (guide): the output stays off. ``OUTP:PROT:CLE`` is in
neither guide and answers -113. ``SYST:ERR:ALL?`` empties the queue into one reply,
``code,"text"`` pairs joined by commas, ``0,"No error"`` when empty (SCPI 1999 form;
assumed for EA).

Status registers (bit layout *assumed*, the guide's table was not available): ``STAT:OPER``
condition bits 0 output on, 1 remote, 2 CV, 3 CC, 4 CP, 5 sink mode; ``STAT:QUES`` bits 0 OV,
1 OC, 2 OP, 3 OT.

Communication watchdog: EA's "interface monitoring", ``SYSTem:COMMunicate:MONitoring:ACTion
ON|OFF`` and ``:TIMeout <s>`` (short forms ``SYST:COMM:MON:ACT``/``:TIM``, guide and
cEAsource.cpp; 1..36000 s from the ea_psb10000 driver). When no message has arrived for the
timeout the unit leaves remote control and the DC output follows "state after remote" (OFF
assumed). Modelled in plant time through ``next_deadline``/``on_time``; any message counts as
activity, and a message that arrives after the deadline finds the unit already out of remote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.psb10000 import (
    CC,
    CP,
    CR,
    CV,
    UNITS,
    Nominal,
    NotInRemote,
    PsbPhysics,
    psb_port_spec,
)
from instruments.emulation.models.scpi_model import IDENTITY, ScpiModel
from instruments.emulation.plant_specs import AnyPortSpec, TripKind
from instruments.emulation.scpi import (
    Boolean,
    BoundQuery,
    Choice,
    Command,
    Number,
    ScpiError,
    query,
    scpi_session_factory,
    status_commands,
)
from instruments.emulation.scpi_parser import SETTINGS_CONFLICT
from instruments.emulation.transport import Session, SessionFactory

log = logging.getLogger(__name__)

MONITOR_DEFAULT_S = 5.0
MONITOR_MIN_S = 1.0
MONITOR_MAX_S = 36000.0
#: Units of at least this nominal power report ``MEAS:ARR?`` power in kW (assumed).
KILOWATT_FROM_W = 10000.0

OPER_OUTPUT = 1 << 0
OPER_REMOTE = 1 << 1
OPER_REGULATION = {CV: 1 << 2, CC: 1 << 3, CP: 1 << 4, CR: 1 << 2}
OPER_SINK = 1 << 5
QUES_TRIPS = {TripKind.OVP: 1 << 0, TripKind.OCP: 1 << 1, TripKind.OTP: 1 << 3}


@dataclass(frozen=True)
class EaFormat:
    """EA's replies: two decimals and the unit with no space between (``43.50V``)."""

    decimals: int = 2

    def real(self, value: float, unit: str) -> str:
        return f"{value:.{self.decimals}f}{unit}"

    def integer(self, value: int) -> str:
        return str(value)


class InterfaceMonitor:
    """EA's interface monitoring: no message for ``timeout_s`` of plant time → leave remote.

    ``activity()`` is called for every message; it first checks whether the time had already
    run out (a late message cannot rescue the session). Between messages the emulator asks
    :meth:`deadline` and calls :meth:`check` when the plant reaches it, so silence alone is
    enough. ``clock`` reads plant time (simulated, or scaled wall time).
    """

    def __init__(self, on_expire: Callable[[], None], clock: Callable[[], float]) -> None:
        self.on_expire = on_expire
        self.clock = clock
        self.enabled = False
        self.timeout_s = MONITOR_DEFAULT_S
        self.expirations = 0
        self._last = clock()
        self._expired = False

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self._last = self.clock()
        self._expired = False

    def set_timeout(self, seconds: float) -> None:
        self.timeout_s = float(seconds)
        self._last = self.clock()

    def activity(self) -> None:
        """A message arrived: check for a timeout first, then restart the period."""
        now = self.clock()
        self.check(now)
        self._last = now
        self._expired = False

    def deadline(self) -> float | None:
        """Plant time at which the monitor expires if nothing arrives (None: not armed)."""
        if not self.enabled or self._expired:
            return None
        return self._last + self.timeout_s

    def check(self, now: float) -> bool:
        """Expire (once per silence) if the timeout has run out at ``now``; True if it did."""
        due = self.deadline()
        if due is None or now < due:
            return False
        self._expired = True
        self.expirations += 1
        self.on_expire()
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "timeout_s": self.timeout_s,
            "expirations": self.expirations,
        }


def _remote(what: str, device: Psb10000ScpiModel, action: Callable[[], None]) -> None:
    """Run a setting; outside remote control it queues -221 "Settings conflict" (guide)."""
    try:
        device.physics.require_remote(what)
        action()
    except NotInRemote as refusal:
        raise ScpiError(SETTINGS_CONFLICT, str(refusal)) from refusal


def _level_command(pattern: str, name: str) -> Command:
    """A set value or protection level: set (in remote), query, ``? MIN|MAX|DEF``."""
    unit = UNITS[name]

    def top(device: Psb10000ScpiModel) -> float:
        return device.physics.maximum(name)

    param = Number(unit, min=0.0, max=top)

    def set_level(device: Psb10000ScpiModel, value: float) -> None:
        _remote(name, device, lambda: device.physics.set_level(name, value))

    def get_level(device: Psb10000ScpiModel, which: str | None = None) -> float:
        if which is not None:
            return param.bound(which, device)
        return device.physics.levels[name]

    return Command(
        pattern,
        set=set_level,
        query=get_level,
        params=(param,),
        query_params=(BoundQuery(),),
        unit=unit,
    )


def _on_off(value: bool) -> str:
    return "ON" if value else "OFF"


def _measure_array(device: Psb10000ScpiModel) -> str:
    """``MEAS:ARR?``: voltage, current, power; power in kW on a unit of 10 kW or more."""
    volts, amps, watts = device.physics.actual()
    power = (
        device.format_real(watts / 1000.0, "kW")
        if device.physics.nominal.power >= KILOWATT_FROM_W
        else device.format_real(watts, "W")
    )
    return ",".join((device.format_real(volts, "V"), device.format_real(amps, "A"), power))


def _set_output(device: Psb10000ScpiModel, on: bool) -> None:
    _remote("DC output", device, lambda: device.physics.set_output(on))


def _set_operation_mode(device: Psb10000ScpiModel, mode: str) -> None:
    _remote("operation mode", device, lambda: device.physics.set_resistance_mode(mode == "UIR"))


def _all_errors(device: Psb10000ScpiModel) -> str:
    """``SYST:ERR:ALL?``: every queued error (acknowledging alarms), or ``0,"No error"``."""
    replies = [device.next_error()]
    while device.errors:
        replies.append(device.next_error())
    return ",".join(replies)


def _set_monitor(device: Psb10000ScpiModel, on: bool) -> None:
    _remote("interface monitoring", device, lambda: device.monitor.set_enabled(on))


def _set_monitor_timeout(device: Psb10000ScpiModel, seconds: float) -> None:
    _remote("interface monitoring timeout", device, lambda: device.monitor.set_timeout(seconds))


class _MonitoredSession:
    """A SCPI session that reports every received chunk to the interface monitor first."""

    def __init__(self, inner: Session, monitor: InterfaceMonitor) -> None:
        self._inner = inner
        self._monitor = monitor

    def feed(self, data: bytes) -> list[bytes]:
        self._monitor.activity()
        return self._inner.feed(data)


class Psb10000ScpiModel(ScpiModel):
    """EA PSB 10000 on SCPI over a LAN socket (driver ``psb10000-scpi``)."""

    driver: ClassVar[str] = "psb10000-scpi"
    wire: ClassVar[Wire] = Wire.SCPI_LAN
    vendor: ClassVar[str] = "EA Elektro-Automatik"
    firmware: ClassVar[str] = "KE 3.10 (emulated)"
    number_format = EaFormat(2)
    units_from_root = True
    commands = (
        IDENTITY,
        Command(
            "SYSTem:LOCK[:STATe]",
            set=lambda device, on: device.physics.set_remote(on),
            query=lambda device: _on_off(device.physics.remote),
            params=(Boolean(),),
        ),
        query("SYSTem:LOCK:OWNer?", lambda device: "REMOTE" if device.physics.remote else "NONE"),
        Command(
            "OUTPut[:STATe]",
            set=_set_output,
            query=lambda device: _on_off(device.physics.handle.output_on),
            params=(Boolean(),),
        ),
        Command(
            "SYSTem:CONFig:MODE",
            set=_set_operation_mode,
            query=lambda device: "UIR" if device.physics.resistance_mode else "UIP",
            params=(Choice("UIP", "UIR"),),
        ),
        _level_command("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage"),
        _level_command("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "current"),
        _level_command("[SOURce:]POWer[:LEVel][:IMMediate][:AMPLitude]", "power"),
        _level_command("SINK:CURRent[:LEVel][:IMMediate][:AMPLitude]", "sink_current"),
        _level_command("SINK:POWer[:LEVel][:IMMediate][:AMPLitude]", "sink_power"),
        _level_command("[SOURce:]VOLTage:PROTection[:LEVel]", "ovp"),
        _level_command("[SOURce:]CURRent:PROTection[:LEVel]", "ocp"),
        _level_command("[SOURce:]POWer:PROTection[:LEVel]", "opp"),
        _level_command("SINK:CURRent:PROTection[:LEVel]", "sink_ocp"),
        _level_command("SINK:POWer:PROTection[:LEVel]", "sink_opp"),
        query("MEASure[:SCALar]:VOLTage[:DC]?", lambda d: d.physics.actual()[0], unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", lambda d: d.physics.actual()[1], unit="A"),
        query("MEASure[:SCALar]:POWer[:DC]?", lambda d: d.physics.actual()[2], unit="W"),
        query("MEASure[:SCALar]:ARRay?", _measure_array),
        query("SYSTem:NOMinal:VOLTage?", lambda d: d.physics.nominal.voltage, unit="V"),
        query("SYSTem:NOMinal:CURRent?", lambda d: d.physics.nominal.current, unit="A"),
        query("SYSTem:NOMinal:POWer?", lambda d: d.physics.nominal.power, unit="W"),
        query(
            "SYSTem:NOMinal:RESistance[:MAXimum]?",
            lambda d: d.physics.nominal.resistance_max,
            unit="Ohm",
        ),
        query(
            "SYSTem:NOMinal:RESistance:MINimum?",
            lambda d: d.physics.nominal.resistance_min,
            unit="Ohm",
        ),
        query("SYSTem:ERRor:ALL?", _all_errors),
        *status_commands(),
        Command(
            "SYSTem:COMMunicate:MONitoring:ACTion",
            set=_set_monitor,
            query=lambda device: _on_off(device.monitor.enabled),
            params=(Boolean(),),
        ),
        Command(
            "SYSTem:COMMunicate:MONitoring:TIMeout",
            set=_set_monitor_timeout,
            query=lambda device: round(device.monitor.timeout_s),
            params=(Number("S", min=MONITOR_MIN_S, max=MONITOR_MAX_S, integer=True),),
        ),
    )

    physics: PsbPhysics
    monitor: InterfaceMonitor

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        return [psb_port_spec(ctx)]

    def bind(self) -> None:
        self.physics = PsbPhysics(
            self.plant.bidirectional(self.key), Nominal.of(self.ctx), self.measure, self.key
        )
        plant = self.plant
        plant.add_trip_listener(self.physics.count_trip)
        self.monitor = InterfaceMonitor(self._interface_timeout, lambda: plant.time)

    def push(self) -> None:
        """``*RST`` (and power-on): output off, set values 0, protections 110 %."""
        self.physics.reset()

    def reset(self) -> None:
        """``*RST``: switch to remote first (guide), then the defaults."""
        self.physics.set_remote(True)
        super().reset()

    def next_error(self) -> str:
        """``SYST:ERR?``: pop the oldest error; reading the queue acknowledges alarms (guide)."""
        self.physics.clear_alarms()
        return super().next_error()

    def operation_condition(self) -> int:
        """``STAT:OPER:COND?`` (assumed layout: output, remote, CV, CC, CP, sink)."""
        physics = self.physics
        bits = 0
        if physics.handle.output_on:
            bits |= OPER_OUTPUT | OPER_REGULATION[physics.regulation()]
        if physics.remote:
            bits |= OPER_REMOTE
        if physics.sinking:
            bits |= OPER_SINK
        return bits

    def questionable_condition(self) -> int:
        """``STAT:QUES:COND?`` (assumed layout: OV, OC, OP, OT)."""
        bits = 0
        for kind in self.physics.handle.trips:
            bits |= QUES_TRIPS.get(kind, 0)
        return bits

    def session_factory(self) -> SessionFactory:
        sessions = scpi_session_factory(self)
        monitor = self.monitor

        def make() -> _MonitoredSession:
            return _MonitoredSession(sessions(), monitor)

        return make

    # ---- time and status -----------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.monitor.deadline()

    def on_time(self, now: float) -> None:
        self.monitor.check(now)

    def _interface_timeout(self) -> None:
        self.physics.leave_remote(
            f"no message for {self.monitor.timeout_s:g} s (interface monitoring)"
        )

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            **self.physics.describe(),
            "monitor": self.monitor.describe(),
        }
