"""Emulated EA PSB 10000 on SCPI (driver ``psb10000-scpi``): EA's dialect on the shared physics.

The physics and its plant port are :mod:`instruments.emulation.models.psb10000`'s
(:class:`~instruments.emulation.models.psb10000.PsbPhysics`); this module is the SCPI front.

Commands (the project reference; third-party EA PSB drivers found with the search tool use
the same strings, EA's programming guide itself was not found): ``SYST:LOCK ON|OFF`` (remote
control; leaving it switches the DC output off), ``SYST:LOCK:OWN?`` (``REMOTE``/``NONE``),
``OUTP``, ``VOLT``, ``CURR``, ``POW``, ``SINK:CURR``, ``SINK:POW`` (0..102 % of nominal,
-222 outside), ``VOLT:PROT``, ``CURR:PROT``, ``POW:PROT`` (0..110 %), ``MEAS:VOLT?``,
``MEAS:CURR?``, ``MEAS:POW?``, ``MEAS:ARR?``, ``SYST:NOM:VOLT?``/``CURR?``/``POW?``.
Replies carry units with two decimals (``5.00 A``); ``MEAS:ARR?`` answers
``350.00 V, -2.00 A, -700.00 W``. *Assumed*: measured current and power are negative while
sinking; ``OUTP:PROT:CLE`` acknowledges alarms (clears latched trips); ``*RST`` switches the
output off, set values to 0 and protections to 110 %.

A setting without ``SYST:LOCK ON`` queues ``-201,"Invalid while in local"``: the code is in
EA's 10000-series error list as a third-party driver (``ea_psb10000``) reproduces it, and is
SCPI 1999's code for it.

Communication watchdog, from the same third-party driver: EA's "interface monitoring",
``SYST:COMM:MON:ACT ON|OFF`` and ``SYST:COMM:MON:TIME <s>`` (1..36000 s; the long forms
``SYSTem:COMMunicate:MONitoring:ACTive``/``:TIME`` are assumed). When no message has
arrived for the timeout the unit leaves remote control and the DC output follows "state after
remote" (OFF assumed). Modelled in plant time through ``next_deadline``/``on_time``; any
message counts as activity, and a message that arrives after the deadline finds the unit
already out of remote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from instruments.emulation.models.base import ModelContext, Wire
from instruments.emulation.models.psb10000 import (
    UNITS,
    Nominal,
    NotInRemote,
    PsbPhysics,
    psb_port_spec,
)
from instruments.emulation.models.scpi_model import IDENTITY, ScpiModel
from instruments.emulation.plant_specs import AnyPortSpec
from instruments.emulation.scpi import (
    Boolean,
    BoundQuery,
    Command,
    FixedFormat,
    Number,
    ScpiError,
    command,
    query,
    scpi_session_factory,
)
from instruments.emulation.transport import Session, SessionFactory

log = logging.getLogger(__name__)

INVALID_WHILE_IN_LOCAL = -201
INVALID_WHILE_IN_LOCAL_TEXT = "Invalid while in local"
MONITOR_DEFAULT_S = 5.0
MONITOR_MIN_S = 1.0
MONITOR_MAX_S = 36000.0


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
    """Run a setting; outside remote control it queues -201 "Invalid while in local"."""
    try:
        device.physics.require_remote(what)
        action()
    except NotInRemote as refusal:
        raise ScpiError(INVALID_WHILE_IN_LOCAL, str(refusal)) from refusal


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
    volts, amps, watts = device.physics.actual()
    return ", ".join(
        device.format_real(value, unit) for value, unit in ((volts, "V"), (amps, "A"), (watts, "W"))
    )


def _set_output(device: Psb10000ScpiModel, on: bool) -> None:
    _remote("DC output", device, lambda: device.physics.set_output(on))


def _clear_alarms(device: Psb10000ScpiModel) -> None:
    _remote("alarm acknowledge", device, device.physics.clear_alarms)


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
    number_format = FixedFormat(2)
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
        command("OUTPut:PROTection:CLEar", _clear_alarms),
        _level_command("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage"),
        _level_command("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "current"),
        _level_command("[SOURce:]POWer[:LEVel][:IMMediate][:AMPLitude]", "power"),
        _level_command("SINK:CURRent[:LEVel][:IMMediate][:AMPLitude]", "sink_current"),
        _level_command("SINK:POWer[:LEVel][:IMMediate][:AMPLitude]", "sink_power"),
        _level_command("[SOURce:]VOLTage:PROTection[:LEVel]", "ovp"),
        _level_command("[SOURce:]CURRent:PROTection[:LEVel]", "ocp"),
        _level_command("[SOURce:]POWer:PROTection[:LEVel]", "opp"),
        query("MEASure[:SCALar]:VOLTage[:DC]?", lambda d: d.physics.actual()[0], unit="V"),
        query("MEASure[:SCALar]:CURRent[:DC]?", lambda d: d.physics.actual()[1], unit="A"),
        query("MEASure[:SCALar]:POWer[:DC]?", lambda d: d.physics.actual()[2], unit="W"),
        query("MEASure[:SCALar]:ARRay?", _measure_array),
        query("SYSTem:NOMinal:VOLTage?", lambda d: d.physics.nominal.voltage, unit="V"),
        query("SYSTem:NOMinal:CURRent?", lambda d: d.physics.nominal.current, unit="A"),
        query("SYSTem:NOMinal:POWer?", lambda d: d.physics.nominal.power, unit="W"),
        Command(
            "SYSTem:COMMunicate:MONitoring:ACTive",
            set=_set_monitor,
            query=lambda device: _on_off(device.monitor.enabled),
            params=(Boolean(),),
        ),
        Command(
            "SYSTem:COMMunicate:MONitoring:TIME",
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
        self.monitor = InterfaceMonitor(self._interface_timeout, lambda: plant.time)

    def push(self) -> None:
        """``*RST`` (and power-on): output off, set values 0, protections 110 %."""
        self.physics.reset()

    def session_factory(self) -> SessionFactory:
        sessions = scpi_session_factory(self)
        monitor = self.monitor

        def make() -> _MonitoredSession:
            return _MonitoredSession(sessions(), monitor)

        return make

    def push_error(self, code: int, detail: str = "") -> None:
        super().push_error(code, detail)
        if code == INVALID_WHILE_IN_LOCAL and self.errors and self.errors[-1][0] == code:
            self.errors[-1] = (code, INVALID_WHILE_IN_LOCAL_TEXT)

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
