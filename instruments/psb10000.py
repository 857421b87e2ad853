"""EA Elektro-Automatik PSB 10000 bidirectional supplies: ModBus TCP (primary) or SCPI.

ModBus resource: ``modbus-tcp://<host>:502``; device (unit) id 0 by default — a
single-channel PSB answers 0 and 1 alike (EA's "Programming ModBus & SCPI" guide, 10000
series); 0 is this project's one default (driver, adapter, model table, emulator).
SCPI resource: ``TCPIP0::<host>::5025::SOCKET``.

Sources: EA's "Programming ModBus & SCPI" guide and the PSB 10000 register lists (firmware
KE 3.02+ / 3.10+) as summarised in the project's ``reference/instrument-protocols.md``
(checked 2026-12-07; the guide is not in the search index, so its section numbers are not
quoted here); the independent driver nominal-io/instro ``instro/psu/drivers/ea_psb10000.py``
(commit 3ce6aa3a, written to the guide REV 24) for the SCPI replies. Facts from neither are
marked *assumed*.

ModBus map used:

- coils 402 remote control, 405 DC output, 409 U/I/P (OFF) or U/I/R (ON) mode; ON is
  written as 0xFF00;
- holding registers 500 U set, 501 I set, 502 P set (source), 499 sink I, 498 sink P;
  505-506 device state (u32, high word first); 507/508/509 actual U/I/P; protection levels
  550 OVP, 553 **source** OCP, 556 **source** OPP, 569 **sink** OCP, 570 **sink** OPP (register
  list); nominal U/I/P at 121/123/125 as IEEE float32 (high word first);
- scaling: 0xCCCC (52428) is 100 % of nominal; set values cap at 0xD0E5 (102 %),
  protection levels at 0xE147 (110 %). This driver refuses set values above 100 % and
  protection levels above 110 % of the rating *before sending*;
- device state bits: 7 output on, 9-10 regulation (0 CV, 1 CR, 2 CC, 3 CP), 11 remote,
  12 sink mode, 15 alarm, 16 OVP, 17 OCP, 18 OPP, 19 OT;
- a setting while not in remote is refused with exception 0x07 (0x17 with the front-panel
  local lock on); pymodbus reports it as an instrument error naming the code.

Sign convention of :class:`PsbReading`: the instrument's own magnitude, signed negative
while the unit is in sink mode (state bit 12) — positive sources, negative sinks.

SCPI (:class:`Psb10000Scpi`): ``SYST:LOCK ON`` before any setting (else -221); ``OUTP``,
``VOLT``, ``CURR``, ``POW``, ``SINK:CURR``, ``SINK:POW``; protections ``VOLT:PROT``,
``CURR:PROT``, ``POW:PROT`` (source), ``SINK:CURR:PROT``, ``SINK:POW:PROT`` (sink);
interface monitoring ``SYST:COMM:MON:TIM``/``:ACT``; alarms acknowledged by reading the
error queue (``SYST:ERR:ALL?``). Replies carry the unit, with or without a space
(``43.50V``), and may carry a magnitude prefix (``1.75kW``), which :func:`parse_ea_number`
scales.

How the bidirectional adapter (role ``BidirectionalSupply``) drives it —
(ModBus; the driver signs the current negative in sink mode):
the PSB sources up to its current set value while its terminal voltage is below its voltage
set value, and sinks up to its *sink* current set value while it is above.

- ``set_current(a > 0)``: sink current 0, ``U`` at the window top, ``I = a``, output on: it
  sources ``a`` while the bus sits below the window top.
- ``set_current(a < 0)``: source current 0, ``U`` at the window bottom, sink ``I = |a|``:
  it sinks ``|a|`` while the bus sits above the window bottom. (``a = 0``: both 0.)
- ``hold_voltage(v, limit)``: ``I = limit``, sink ``I = limit``, ``U = v``, output on.
- ``arm()``: remote on, output off, U/I/P mode, power set values at ``power_max``, OVP at
  1.05 x the window top; source OCP (register 553) at 1.1 x ``current_source_max`` and sink
  OCP (569) at 1.1 x ``current_sink_max`` (a direction whose limit is 0 takes the other's);
  source and sink OPP (556/570) at 1.1 x ``power_max``.
- Only registers whose value changes are written (a ramp step is one register write);
  ``read()`` is one read of registers 505-509.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from instruments.errors import MalformedReply
from instruments.families import Family, SettingSpec, register

from .base import Identity, Rating, check_setpoint
from .connection import DEFAULT_TIMEOUT_S, ModbusConnection, ScpiConnection
from .roles import Allowed, OutputReading, OutputStatus, ProtectionLevels, SafeAction
from .scpi import ScpiInstrument, ScpiMeasurement, ScpiNumber, ScpiSwitch, parse_number
from .wire.psb10000 import (
    COIL_OUTPUT,
    COIL_REMOTE,
    COIL_UIR_MODE,
    DEFAULT_DEVICE_ID,
    FULL_SCALE,
    PROTECTION_CAP,
    REG_CURRENT,
    REG_NOMINAL_CURRENT,
    REG_NOMINAL_POWER,
    REG_NOMINAL_VOLTAGE,
    REG_OCP,
    REG_OPP,
    REG_OVP,
    REG_POWER,
    REG_SINK_CURRENT,
    REG_SINK_OCP,
    REG_SINK_OPP,
    REG_SINK_POWER,
    REG_STATE,
    REG_VOLTAGE,
    SET_CAP,
    TRIPS,
    PsbState,
    Regulation,
)

log = logging.getLogger(__name__)

VENDOR = "Elektro-Automatik"

#: Protection levels the driver sets are clipped to this times the nominal value.
PROTECTION_FACTOR = 1.1

_STATE_FLAGS = {
    PsbState.OVP: "OVP",
    PsbState.OCP: "OCP",
    PsbState.OPP: "OPP",
    PsbState.OT: "OTP",
    PsbState.ALARM: "ALARM",
}


def state_flags(state: PsbState) -> frozenset[str]:
    """Flag names of the device state (``OVP``, ``OCP``, ``OPP``, ``OTP``, ``ALARM``)."""
    return frozenset(name for bit, name in _STATE_FLAGS.items() if bit in state)


@dataclass(frozen=True)
class PsbReading:
    """Actual values (current and power negative in sink mode) and the device state."""

    voltage: float
    current: float
    power: float
    state: PsbState

    @property
    def output_on(self) -> bool:
        return PsbState.OUTPUT_ON in self.state

    @property
    def sinking(self) -> bool:
        return PsbState.SINK in self.state

    @property
    def tripped(self) -> bool:
        return bool(self.state & TRIPS)


def to_raw(value: float, nominal: float, cap: int) -> int:
    """Physical value → register word (0xCCCC = nominal), capped at ``cap``."""
    raw = round(value / nominal * FULL_SCALE)
    return max(0, min(raw, cap))


def from_raw(raw: int, nominal: float) -> float:
    """Register word → physical value."""
    return raw * nominal / FULL_SCALE


class Psb10000:
    """PSB 10000 over ModBus. Every public call holds the driver's lock.

    ``rating`` is the nominal U/I/P used for scaling and range checks; when omitted it is
    read once from registers 121/123/125.
    """

    def __init__(
        self,
        connection: ModbusConnection,
        *,
        device_id: int = DEFAULT_DEVICE_ID,
        rating: Rating | None = None,
        model: str = "",
        serial: str = "",
        name: str = "",
    ) -> None:
        self.connection = connection
        self.device_id = device_id
        self.name = name or connection.resource
        self.model = model
        self.serial = serial
        self._rating = rating
        self._lock = threading.RLock()
        #: Set values written since the last :meth:`forget` (skipped when unchanged).
        self._levels: dict[str, float] = {}
        self._output_on = False

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        device_id: int = DEFAULT_DEVICE_ID,
        rating: Rating | None = None,
        model: str = "",
        serial: str = "",
        name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Psb10000:
        """Open ``resource`` (``modbus-tcp://host:502``) and wrap it."""
        connection = ModbusConnection(resource, timeout=timeout)
        return cls(
            connection, device_id=device_id, rating=rating, model=model, serial=serial, name=name
        )

    @property
    def resource(self) -> str:
        return self.connection.resource

    def __repr__(self) -> str:
        return f"Psb10000({self.name!r}, resource={self.resource!r})"

    # registers --------------------------------------------------------------------------

    def _read(self, address: int, count: int) -> list[int]:
        return self.connection.read_holding_registers(address, count, device_id=self.device_id)

    def _write(self, address: int, value: int) -> None:
        self.connection.write_register(address, value, device_id=self.device_id)

    def _coil(self, address: int, value: bool) -> None:
        self.connection.write_coil(address, value, device_id=self.device_id)

    def _float(self, address: int) -> float:
        words = self._read(address, 2)
        value: float = struct.unpack(">f", struct.pack(">HH", *words))[0]
        if not (math.isfinite(value) and value > 0):
            raise MalformedReply(
                f"nominal value {value!r} is not a positive number",
                resource=self.resource,
                command=f"read float {address}",
            )
        return value

    # identity and rating ----------------------------------------------------------------

    def read_nominal(self) -> Rating:
        """Nominal voltage, current and power from registers 121/123/125."""
        with self._lock:
            return Rating(
                voltage=self._float(REG_NOMINAL_VOLTAGE),
                current=self._float(REG_NOMINAL_CURRENT),
                power=self._float(REG_NOMINAL_POWER),
            )

    @property
    def rating(self) -> Rating:
        """The nominal values used for scaling (read once from the unit if not given)."""
        with self._lock:
            if self._rating is None:
                self._rating = self.read_nominal()
            return self._rating

    def identify(self) -> Identity:
        """Vendor and model; the model is the configured one or derived from the nominals.

        (EA's ModBus identity registers were not confirmed, so serial and firmware are the
        configured values.)
        """
        nominal = self.read_nominal()
        model = self.model or (
            f"PSB 10000 ({nominal.voltage:g} V / {nominal.current:g} A / {nominal.power:g} W)"
        )
        return Identity(VENDOR, model, self.serial, "")

    # control ----------------------------------------------------------------------------

    def set_remote(self, on: bool = True) -> None:
        """Coil 402: take (or give back) remote control; needed before any setting."""
        with self._lock:
            self._coil(COIL_REMOTE, on)

    def set_output(self, on: bool) -> None:
        """Coil 405: DC output on or off."""
        with self._lock:
            self._coil(COIL_OUTPUT, on)

    def set_resistance_mode(self, on: bool) -> None:
        """Coil 409: U/I/R (resistance) mode on, or plain U/I/P (off)."""
        with self._lock:
            self._coil(COIL_UIR_MODE, on)

    def _set(self, address: int, quantity: str, value: float, nominal: float, unit: str) -> None:
        number = check_setpoint(self.name, quantity, value, 0.0, nominal, unit)
        with self._lock:
            self._write(address, to_raw(number, nominal, SET_CAP))

    def set_voltage(self, volts: float) -> None:
        """Register 500: voltage set value."""
        self._set(REG_VOLTAGE, "voltage", volts, self.rating.voltage, "V")

    def set_current(self, amps: float) -> None:
        """Register 501: source current set value."""
        self._set(REG_CURRENT, "current", amps, self.rating.current, "A")

    def set_power(self, watts: float) -> None:
        """Register 502: source power set value."""
        self._set(REG_POWER, "power", watts, self.rating.power, "W")

    def set_sink_current(self, amps: float) -> None:
        """Register 499: sink current set value (a magnitude)."""
        self._set(REG_SINK_CURRENT, "sink current", amps, self.rating.current, "A")

    def set_sink_power(self, watts: float) -> None:
        """Register 498: sink power set value (a magnitude)."""
        self._set(REG_SINK_POWER, "sink power", watts, self.rating.power, "W")

    def _protect(
        self, address: int, quantity: str, value: float, nominal: float, unit: str
    ) -> None:
        number = check_setpoint(self.name, quantity, value, 0.0, PROTECTION_FACTOR * nominal, unit)
        with self._lock:
            self._write(address, to_raw(number, nominal, PROTECTION_CAP))

    def set_ovp(self, volts: float) -> None:
        """Register 550: over-voltage protection level (up to 110 % of nominal)."""
        self._protect(REG_OVP, "OVP", volts, self.rating.voltage, "V")

    def set_ocp(self, amps: float) -> None:
        """Register 553: source-mode over-current protection level."""
        self._protect(REG_OCP, "OCP", amps, self.rating.current, "A")

    def set_opp(self, watts: float) -> None:
        """Register 556: source-mode over-power protection level."""
        self._protect(REG_OPP, "OPP", watts, self.rating.power, "W")

    def set_sink_ocp(self, amps: float) -> None:
        """Register 569: sink-mode over-current protection level."""
        self._protect(REG_SINK_OCP, "sink OCP", amps, self.rating.current, "A")

    def set_sink_opp(self, watts: float) -> None:
        """Register 570: sink-mode over-power protection level."""
        self._protect(REG_SINK_OPP, "sink OPP", watts, self.rating.power, "W")

    def program(
        self,
        *,
        voltage: float,
        current: float,
        power: float,
        sink_current: float,
        sink_power: float,
    ) -> None:
        """All five set values, every one checked before the first is written."""
        rating = self.rating
        checks = (
            (REG_VOLTAGE, "voltage", voltage, rating.voltage, "V"),
            (REG_CURRENT, "current", current, rating.current, "A"),
            (REG_POWER, "power", power, rating.power, "W"),
            (REG_SINK_CURRENT, "sink current", sink_current, rating.current, "A"),
            (REG_SINK_POWER, "sink power", sink_power, rating.power, "W"),
        )
        for _, quantity, value, nominal, unit in checks:
            check_setpoint(self.name, quantity, value, 0.0, nominal, unit)
        with self._lock:
            for address, _, value, nominal, _ in checks:
                self._write(address, to_raw(value, nominal, SET_CAP))

    # status -----------------------------------------------------------------------------

    def state(self) -> PsbState:
        """Registers 505-506: the device state word."""
        with self._lock:
            high, low = self._read(REG_STATE, 2)
        return PsbState((high << 16) | low)

    def read(self) -> PsbReading:
        """State and actual values (one read of 505-509)."""
        rating = self.rating
        with self._lock:
            high, low, volts, amps, watts = self._read(REG_STATE, 5)
        state = PsbState((high << 16) | low)
        sign = -1.0 if PsbState.SINK in state else 1.0
        return PsbReading(
            voltage=from_raw(volts, rating.voltage),
            current=sign * from_raw(amps, rating.current),
            power=sign * from_raw(watts, rating.power),
            state=state,
        )

    # the bidirectional role (instruments.roles.BidirectionalSupply) -----------------------

    @contextmanager
    def locked(self) -> Iterator[Psb10000]:
        """Hold the driver's (re-entrant) lock across several calls."""
        with self._lock:
            yield self

    def probe(self) -> Identity:
        """The identity (reads the nominal registers, so a silent device raises)."""
        return self.identify()

    def measure(self) -> OutputReading:
        """One read of 505-509: state, voltage, signed current."""
        reading = self.read()
        state = reading.state
        return OutputReading(
            voltage=reading.voltage,
            current=reading.current,
            on=reading.output_on,
            regulation="voltage" if state.regulation is Regulation.CV else "current",
            tripped=bool(state & (TRIPS | PsbState.ALARM)),
            flags=state_flags(state),
        )

    def output_status(self) -> OutputStatus:
        """Output state and flags from one read of 505-509."""
        reading = self.read()
        return OutputStatus(reading.output_on, state_flags(reading.state))

    def safe_off_actions(self) -> list[SafeAction]:
        """Output off (coil 405), then both current set values 0."""

        def currents_zero() -> None:
            self.set_current(0.0)
            self.set_sink_current(0.0)

        return [
            ("output OFF (coil 405)", lambda: self.set_output(False)),
            ("I = 0, sink I = 0", currents_zero),
        ]

    def arm_bidirectional(self, levels: ProtectionLevels) -> None:
        """Remote, output off, U/I/P mode, power set values, OVP, source and sink OCP/OPP
        (each clipped to 1.1 x nominal), currents 0. The PSB has separate protections per
        direction: source OCP/OPP (553/556), sink OCP/OPP (569/570)."""
        rating = self.rating
        watts = min(levels.power, rating.power)
        opp = min(levels.opp, PROTECTION_FACTOR * rating.power)
        self.forget()
        self.set_remote(True)
        self.set_output(False)
        self.set_resistance_mode(False)
        self.set_power(watts)
        self.set_sink_power(watts)
        self.set_ovp(min(levels.ovp, PROTECTION_FACTOR * rating.voltage))
        self.set_ocp(min(levels.ocp_source, PROTECTION_FACTOR * rating.current))
        self.set_opp(opp)
        self.set_sink_ocp(min(levels.ocp_sink, PROTECTION_FACTOR * rating.current))
        self.set_sink_opp(opp)
        self.set_current(0.0)
        self.set_sink_current(0.0)
        self._levels = {"I": 0.0, "sink I": 0.0}

    def drive_current(
        self, amps: float, voltage_min: float, voltage_max: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """Sourcing: sink I 0, U at the window's top, I; sinking: I 0, U at its bottom,
        sink I; each set value written only when it changes; then output on."""
        if amps >= 0:
            self._level("sink I", 0.0, False, allowed)
            self._level("U", voltage_max, False, allowed)
            self._level("I", amps, True, allowed)
        else:
            self._level("I", 0.0, False, allowed)
            self._level("U", voltage_min, False, allowed)
            self._level("sink I", -amps, True, allowed)
        self._output_on_once(allowed)

    def drive_voltage(
        self, volts: float, current_limit: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """I and sink I at the limit (when they change), U, then output on."""
        self._level("I", current_limit, False, allowed)
        self._level("sink I", current_limit, False, allowed)
        self._level("U", volts, True, allowed)
        self._output_on_once(allowed)

    def stop(self) -> None:
        """Output off, then both current set values 0."""
        self.set_output(False)
        self.set_current(0.0)
        self.set_sink_current(0.0)
        self._output_on = False
        self._levels.update({"I": 0.0, "sink I": 0.0})

    def forget(self) -> None:
        """Forget the set values and output state written: the next drive writes all."""
        self._levels = {}
        self._output_on = False

    def _level(self, key: str, value: float, force: bool, allowed: Allowed) -> None:
        """Write one set value unless it is already there (``force`` writes anyway)."""
        if not force and self._levels.get(key) == value:
            return
        allowed()
        setter: Callable[[float], None] = {
            "U": self.set_voltage,
            "I": self.set_current,
            "sink I": self.set_sink_current,
        }[key]
        setter(value)
        self._levels[key] = value

    def _output_on_once(self, allowed: Allowed) -> None:
        if not self._output_on:
            allowed()
            self.set_output(True)
            self._output_on = True

    # connection -------------------------------------------------------------------------

    def reconnect(self) -> None:
        with self._lock:
            self.connection.reopen()

    def close(self) -> None:
        with self._lock:
            self.connection.close()


_EA_NUMBER = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([mkM]?)([A-Za-z]*)\s*$"
)
_PREFIXES = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6}


def parse_ea_number(reply: str, unit: str, *, resource: str, command: str) -> float:
    """An EA reply (``43.50V``, ``5.00 A``, ``1.75kW``, ``12``) in base units.

    The unit, when present, must be ``unit``, optionally after a magnitude prefix
    (m, k, M); anything else raises :class:`MalformedReply` naming the command.
    """
    match = _EA_NUMBER.match(reply)
    if match is not None:
        number, prefix, suffix = match.groups()
        if not suffix and prefix:
            prefix, suffix = "", prefix
        if suffix.upper() == unit.upper() or (not suffix and not prefix):
            value = float(number) * _PREFIXES[prefix]
            if math.isfinite(value):
                return value
    raise MalformedReply(
        f"reply {reply!r} is not a number in {unit} (with an optional m/k/M prefix)",
        resource=resource,
        command=command,
    )


def _psb_volts(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, psb.rating.voltage)


def _psb_amps(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, psb.rating.current)


def _psb_watts(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, psb.rating.power)


@dataclass(frozen=True)
class ScpiArray:
    """``MEAS:ARR?``: voltage, current, power as the unit reports them."""

    voltage: float
    current: float
    power: float


def _psb_protected_volts(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, PROTECTION_FACTOR * psb.rating.voltage)


def _psb_protected_amps(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, PROTECTION_FACTOR * psb.rating.current)


def _psb_protected_watts(psb: Psb10000Scpi) -> tuple[float, float]:
    return (0.0, PROTECTION_FACTOR * psb.rating.power)


class Psb10000Scpi(ScpiInstrument):
    """PSB 10000 over SCPI (optional path). Replies carry units (and magnitude prefixes)."""

    output = ScpiSwitch("OUTP")
    voltage = ScpiNumber("VOLT", unit="V", limits=_psb_volts, reply_unit="V")
    current = ScpiNumber("CURR", unit="A", limits=_psb_amps, reply_unit="A")
    power = ScpiNumber("POW", unit="W", limits=_psb_watts, reply_unit="W")
    sink_current = ScpiNumber("SINK:CURR", unit="A", limits=_psb_amps, reply_unit="A")
    sink_power = ScpiNumber("SINK:POW", unit="W", limits=_psb_watts, reply_unit="W")
    ovp = ScpiNumber("VOLT:PROT", unit="V", limits=_psb_protected_volts, reply_unit="V")
    ocp = ScpiNumber("CURR:PROT", unit="A", limits=_psb_protected_amps, reply_unit="A")
    opp = ScpiNumber("POW:PROT", unit="W", limits=_psb_protected_watts, reply_unit="W")
    sink_ocp = ScpiNumber("SINK:CURR:PROT", unit="A", limits=_psb_protected_amps, reply_unit="A")
    sink_opp = ScpiNumber("SINK:POW:PROT", unit="W", limits=_psb_protected_watts, reply_unit="W")
    measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V", reply_unit="V")
    measured_current = ScpiMeasurement("MEAS:CURR?", unit="A", reply_unit="A")

    def __init__(
        self, connection: ScpiConnection, *, rating: Rating, name: str = "", strict: bool = False
    ) -> None:
        super().__init__(connection, name=name, strict=strict)
        self.rating = rating

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        rating: Rating,
        name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        visa_library: str = "@py",
        strict: bool = False,
    ) -> Psb10000Scpi:
        connection = ScpiConnection(resource, timeout=timeout, visa_library=visa_library)
        return cls(connection, rating=rating, name=name, strict=strict)

    def query_number(self, command: str, *, unit: str = "") -> float:
        """A numeric query; EA replies may carry the unit with a magnitude prefix."""
        reply = self.query(command)
        if not unit:
            return parse_number(reply, resource=self.resource, command=command)
        return parse_ea_number(reply, unit, resource=self.resource, command=command)

    def lock(self, on: bool = True) -> None:
        """``SYST:LOCK ON``: remote control; required before any setting is accepted."""
        self.write_setting(f"SYST:LOCK {'ON' if on else 'OFF'}")

    def set_interface_monitoring(self, timeout_s: int | None) -> None:
        """EA's communication watchdog: ``SYST:COMM:MON:TIM <s>`` then ``:ACT ON``; None: off.

        The unit leaves remote (output off) after ``timeout_s`` without a message.
        """
        if timeout_s is None:
            self.write_setting("SYST:COMM:MON:ACT OFF")
            return
        seconds = int(check_setpoint(self.name, "monitoring timeout", timeout_s, 1, 36000, "s"))
        self.write_setting(f"SYST:COMM:MON:TIM {seconds}")
        self.write_setting("SYST:COMM:MON:ACT ON")

    def acknowledge_alarms(self) -> list[str]:
        """``SYST:ERR:ALL?``: read (and so acknowledge) every queued error and alarm."""
        reply = self.query("SYST:ERR:ALL?")
        return [] if reply.strip().startswith("0,") else [reply.strip()]

    def measure_array(self) -> ScpiArray:
        """``MEAS:ARR?`` → ``350.00V,2.00A,0.70kW`` (units, possibly prefixed, in base units)."""
        command = "MEAS:ARR?"
        parts = [part.strip() for part in self.query(command).split(",")]
        if len(parts) != 3:
            raise MalformedReply(
                f"expected three values, got {parts!r}", resource=self.resource, command=command
            )
        values = [
            parse_ea_number(part, unit, resource=self.resource, command=command)
            for part, unit in zip(parts, ("V", "A", "W"), strict=True)
        ]
        return ScpiArray(*values)


#: The PSB over ModBus TCP, ``driver = "psb10000"`` (ratings: ``instruments/psb10000.toml``).
FAMILY = register(
    Family(
        name="psb10000",
        function="bidirectional",
        transport="modbus_tcp",
        description="EA PSB 10000 bidirectional supply (ModBus TCP)",
        opener=Psb10000.open,
        ratings="psb10000.toml",
        settings=(
            SettingSpec(
                "device_id", "int", "Modbus unit id (answers 0 and 1)", DEFAULT_DEVICE_ID, 0, 247
            ),
        ),
        open_keywords=frozenset({"rating", "model"}),
    )
)

#: The PSB over SCPI, ``driver = "psb10000-scpi"`` (same ratings file as over ModBus).
FAMILY_SCPI = register(
    Family(
        name="psb10000-scpi",
        function="bidirectional",
        transport="visa",
        description="EA PSB 10000 bidirectional supply (SCPI)",
        opener=Psb10000Scpi.open,
        ratings="psb10000.toml",
        open_keywords=frozenset({"rating"}),
        unadapted="the bidirectional adapter drives the PSB over ModBus (driver psb10000); "
        "psb10000-scpi serves identification and scripted tests",
    )
)
