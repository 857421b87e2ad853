"""Emulated EA Elektro-Automatik PSB 10000 bidirectional supply: shared physics and ModBus TCP.

:class:`PsbPhysics` is the PSB's settings and their mapping onto one plant bidirectional port;
:class:`Psb10000Model` (driver ``psb10000``) serves it on ModBus TCP, and
:class:`~instruments.emulation.models.psb10000_scpi.Psb10000ScpiModel` (driver
``psb10000-scpi``) on SCPI.

Physics: the PSB holds its voltage set value (CV), sources up to its current set value and
sinks up to its sink current set value: a plant :class:`BidirectionalSpec` port in CV mode.
The plant has no constant-power regulation, so the power set values act as current limits at
the voltage set value (``P / U``); the regulation state is CC (or CP when that limit is the
power one) while the current sits at its limit, CV otherwise.

Sources. EA's "Programming ModBus & SCPI" guide for the 10000 series and the PSB 10000
register lists (firmware KE 3.02+ / 3.10+) as summarised, checked 2026-12-07, in the project's
``reference/instrument-protocols.md`` (the guide itself is not in the search index); the
independent driver nominal-io/instro ``instro/psu/drivers/ea_psb10000.py`` (commit 3ce6aa3a,
"command set per EA ModBus & SCPI guide REV 24") for the SCPI side and the sink sign. Facts
found in neither are marked *assumed*.

ModBus map:

- coils 402 remote, 405 DC output, 409 U/I/R mode (stored, no physical effect: the plant has
  no resistance mode), 411 acknowledge alarms (assumed; clears latched trips, reads 0), 425
  listed in the register list, meaning not confirmed: stored and read back only (assumed);
- holding registers 498 sink P, 499 sink I, 500 U, 501 I, 502 P: 0xCCCC = 100 % of nominal,
  above 0xD0E5 (102 %) exception 3; protections up to 0xE147 (110 %), default 110 %: 550 OVP,
  553 **source** OCP, 556 **source** OPP, 569 **sink** OCP, 570 **sink** OPP (guide/register
  list). OVP and both OCPs are plant trips (553 on current pushed into the bus, 569 on current
  drawn from it); OPPs are stored only (the plant has no power trip);
- 505-506 device state (u32, high word first: bit 7 output on, bits 9-10 regulation
  CV/CR/CC/CP, 11 remote, 12 sink, 15 alarm, 16 OVP, 17 OCP in either direction, 18 OPP, 19
  OT); 507/508/509 actual U, |I|, |P| (sinking shown by bit 12); 511 actual resistance U/|I|
  against the nominal maximum (0xCCCC = 127's value, 0 with no current; assumed);
- 520-527 alarm counters, one u16 each (register list; order assumed): 520 OV, 521 OC (either
  direction), 522 OP, 523 OT, 524 PF, 525-527 reserved (read 0); counted since power-on, not
  cleared by reading (assumed);
- 121/123/125 nominal U/I/P and 127/129 nominal resistance maximum/minimum as float32, high
  word first (the minimum and maximum resistance scale with U/I as an EA PSB 10060-60's
  0.04-48 ohm do, from an independent driver's rating table; assumed for other models);
  1-20 device type and 151-170 serial number as ASCII, two characters a register, the first
  in the high byte (third-party libraries);
- any other address answers exception 2, and so does a write to a read-only register;
- a setting (set values, protections, coils 405/409/411/425) while remote (coil 402) is off
  answers exception 0x07, EA's "not in remote" (0x01 only means a wrong function code). EA
  answers 0x17 when the front panel holds the unit in "local"; that lock is not modelled.
  Leaving remote switches the DC output off ("DC output after remote: OFF", assumed default);
- unit id: a single-channel PSB answers unit id 0 and 1 alike (guide), so the bench file's
  ``device_id`` (default 0) and the other of 0/1 both reach the one device.

Communication watchdog: EA's "interface monitoring" exists (SCPI ``SYST:COMM:MON``, see the
SCPI model), but its ModBus register is not confirmed, so this model has none.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from instruments.emulation.modbus import (
    Encoding,
    ModbusBus,
    ModbusDevice,
    ModbusError,
)
from instruments.emulation.models.base import InstrumentModel, ModelContext, Wire
from instruments.emulation.plant import BidirectionalHandle, Measurement, Plant, TripEvent
from instruments.emulation.plant_specs import (
    AnyPortSpec,
    BidirectionalMode,
    BidirectionalSpec,
    Protection,
    TripKind,
)
from instruments.emulation.transport import SessionFactory
from instruments.wire.psb10000 import (
    COIL_OUTPUT,
    COIL_REMOTE,
    COIL_UIR_MODE,
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
    PsbState,
    Regulation,
)
from instruments.wire.psb10000 import REG_ACTUAL as REG_ACTUAL_VOLTAGE

log = logging.getLogger(__name__)

SET_FACTOR = SET_CAP / FULL_SCALE
PROTECTION_FACTOR = PROTECTION_CAP / FULL_SCALE

COIL_ACK_ALARMS = 411
COIL_425 = 425
REG_DEVICE_TYPE = 1
REG_NOMINAL = {
    "voltage": REG_NOMINAL_VOLTAGE,
    "current": REG_NOMINAL_CURRENT,
    "power": REG_NOMINAL_POWER,
}
REG_NOMINAL_RESISTANCE = {"resistance_max": 127, "resistance_min": 129}
#: Nominal resistance range as a multiple of U/I (PSB 10060-60: 0.04-48 ohm; assumed).
RESISTANCE_MAX_FACTOR = 48.0
RESISTANCE_MIN_FACTOR = 0.04
REG_SERIAL = 151
STRING_REGISTERS = 20
REG_SETPOINTS = {
    "sink_power": REG_SINK_POWER,
    "sink_current": REG_SINK_CURRENT,
    "voltage": REG_VOLTAGE,
    "current": REG_CURRENT,
    "power": REG_POWER,
}
REG_ACTUAL = {
    "voltage": REG_ACTUAL_VOLTAGE,
    "current": REG_ACTUAL_VOLTAGE + 1,
    "power": REG_ACTUAL_VOLTAGE + 2,
}
REG_ACTUAL_RESISTANCE = 511
REG_PROTECTIONS = {
    "ovp": REG_OVP,
    "ocp": REG_OCP,
    "opp": REG_OPP,
    "sink_ocp": REG_SINK_OCP,
    "sink_opp": REG_SINK_OPP,
}
REG_ALARM_COUNTERS = 520
ALARM_COUNTERS = ("OV", "OC", "OP", "OT", "PF", "", "", "")
#: Unit ids a single-channel PSB answers (guide).
UNIT_IDS = (0, 1)
#: EA's ModBus exception codes: a setting while not in remote; the same with the front-panel
#: "local" lock on (not modelled).
NOT_IN_REMOTE = 0x07
DEVICE_IN_LOCAL = 0x17

BIT_OUTPUT = int(PsbState.OUTPUT_ON)
REGULATION_SHIFT = 9
BIT_REMOTE = int(PsbState.REMOTE)
BIT_SINK = int(PsbState.SINK)
BIT_ALARM = int(PsbState.ALARM)
TRIP_BITS = {
    TripKind.OVP: int(PsbState.OVP),
    TripKind.OCP: int(PsbState.OCP),
    TripKind.OTP: int(PsbState.OT),
}
#: Alarm counter of each plant trip kind.
TRIP_ALARMS = {TripKind.OVP: "OV", TripKind.OCP: "OC", TripKind.OTP: "OT"}
CV, CR, CC, CP = (int(r) for r in (Regulation.CV, Regulation.CR, Regulation.CC, Regulation.CP))

SETPOINTS = ("voltage", "current", "power", "sink_current", "sink_power")
PROTECTIONS = ("ovp", "ocp", "opp", "sink_ocp", "sink_opp")
UNITS = {
    "voltage": "V",
    "current": "A",
    "power": "W",
    "sink_current": "A",
    "sink_power": "W",
    "ovp": "V",
    "ocp": "A",
    "opp": "W",
    "sink_ocp": "A",
    "sink_opp": "W",
}
#: Relative tolerance for "the current sits at its limit" (regulation CC/CP).
AT_LIMIT = 1e-3
#: |current| below this fraction of nominal counts as neither sourcing nor sinking.
SINK_THRESHOLD = 1e-4


class NotInRemote(Exception):
    """A setting arrived while the instrument is not under remote control."""


@dataclass(frozen=True)
class Nominal:
    """Nominal values: 100 % of every set value (sink current may differ from source)."""

    voltage: float
    current: float
    sink_current: float
    power: float

    @classmethod
    def of(cls, ctx: ModelContext) -> Nominal:
        """From the instrument's rating (``hil/data/instrument_models.toml``)."""
        rating = ctx.instrument.rating
        return cls(
            voltage=rating.voltage_max,
            current=rating.current_source_max,
            sink_current=rating.current_sink_max or rating.current_source_max,
            power=rating.power_max,
        )

    def of_quantity(self, name: str) -> float:
        """The nominal value behind a set value or protection name."""
        if name in ("voltage", "ovp"):
            return self.voltage
        if name in ("current", "ocp"):
            return self.current
        if name in ("sink_current", "sink_ocp"):
            return self.sink_current
        return self.power

    @property
    def resistance_max(self) -> float:
        """Largest resistance set value (assumed: 48 x U/I, as the PSB 10060-60's)."""
        return RESISTANCE_MAX_FACTOR * self.voltage / self.current

    @property
    def resistance_min(self) -> float:
        """Smallest resistance set value (assumed: 0.04 x U/I, as the PSB 10060-60's)."""
        return RESISTANCE_MIN_FACTOR * self.voltage / self.current


def psb_port_spec(ctx: ModelContext) -> BidirectionalSpec:
    """The PSB's plant port: CV with source/sink limits, off, protections at 110 %."""
    nominal = Nominal.of(ctx)
    return BidirectionalSpec(
        name=ctx.key,
        node=ctx.node,
        line_ohm=ctx.line_ohm,
        sensors=ctx.sensors(),
        protection=Protection(
            ovp_v=nominal.voltage * PROTECTION_FACTOR,
            ocp_a=nominal.current * PROTECTION_FACTOR,
            ocp_sink_a=nominal.sink_current * PROTECTION_FACTOR,
        ),
        max_voltage_v=nominal.voltage * SET_FACTOR,
        max_source_a=nominal.current * SET_FACTOR,
        max_sink_a=nominal.sink_current * SET_FACTOR,
        mode=BidirectionalMode.CV,
    )


class PsbPhysics:
    """The PSB's settings and their mapping onto its plant port (shared by both protocols).

    Every setting but remote itself raises :class:`NotInRemote` unless remote is on; a value
    outside 0..102 % (set values) or 0..110 % (protections) raises ``ValueError``.
    """

    def __init__(
        self,
        handle: BidirectionalHandle,
        nominal: Nominal,
        measure: Callable[[], Measurement],
        name: str,
    ) -> None:
        self.handle = handle
        self.nominal = nominal
        self.name = name
        self._measure = measure
        self.remote = False
        self.resistance_mode = False
        self.coil_425 = False
        self.levels: dict[str, float] = {}
        self.alarm_counts = dict.fromkeys(ALARM_COUNTERS[:5], 0)
        self.reset()

    def reset(self) -> None:
        """Output off, set values 0, protections at 110 % (the state after ``*RST``)."""
        self.handle.set_output(False)
        self.levels = {name: 0.0 for name in SETPOINTS}
        for name in PROTECTIONS:
            self.levels[name] = self.maximum(name)
        self._apply_setpoints()
        for name in PROTECTIONS:
            self._apply_protection(name)

    # ---- limits --------------------------------------------------------------------
    def maximum(self, name: str) -> float:
        """Largest value a set value (102 %) or protection (110 %) accepts."""
        factor = PROTECTION_FACTOR if name in PROTECTIONS else SET_FACTOR
        return self.nominal.of_quantity(name) * factor

    def require_remote(self, what: str) -> None:
        """Raise :class:`NotInRemote` naming the setting unless remote control is on."""
        if not self.remote:
            raise NotInRemote(f"{self.name}: {what} refused, the instrument is not in remote")

    # ---- settings ------------------------------------------------------------------
    def set_remote(self, on: bool) -> None:
        """Take or leave remote control; leaving it switches the DC output off."""
        if self.remote and not on:
            self.handle.set_output(False)
        self.remote = bool(on)

    def leave_remote(self, reason: str) -> None:
        """Drop remote control (interface monitoring timed out): output off."""
        if self.remote or self.handle.output_on:
            log.warning("%s: leaving remote control, DC output off: %s", self.name, reason)
        self.remote = False
        self.handle.set_output(False)

    def set_output(self, on: bool) -> None:
        self.require_remote("DC output")
        self.handle.set_output(bool(on))

    def set_resistance_mode(self, on: bool) -> None:
        self.require_remote("U/I/R mode")
        self.resistance_mode = bool(on)

    def set_coil_425(self, on: bool) -> None:
        """Coil 425 (meaning not confirmed): stored only."""
        self.require_remote("coil 425")
        self.coil_425 = bool(on)

    def set_level(self, name: str, value: float) -> None:
        """A set value or protection level in physical units."""
        self.require_remote(name)
        top = self.maximum(name)
        if not (math.isfinite(value) and 0.0 <= value <= top * (1 + 1e-12)):
            raise ValueError(f"{self.name}: {name} {value!r} outside 0 … {top:g} {UNITS[name]}")
        self.levels[name] = min(float(value), top)
        if name in PROTECTIONS:
            self._apply_protection(name)
        else:
            self._apply_setpoints()

    def clear_alarms(self) -> None:
        """Acknowledge alarms: clear latched trips (the output stays off)."""
        self.handle.clear_trips()

    def count_trip(self, event: TripEvent) -> None:
        """A plant trip listener: count this port's trips in the alarm counters."""
        alarm = TRIP_ALARMS.get(event.kind)
        if event.port == self.handle.name and alarm is not None:
            self.alarm_counts[alarm] += 1

    # ---- mapping onto the plant ----------------------------------------------------
    def _power_limit(self, power: float) -> float:
        volts = self.levels["voltage"]
        return power / volts if volts > 0 else math.inf

    @property
    def source_limit(self) -> tuple[float, bool]:
        """Source current limit (A) and whether the power set value is what limits it."""
        amps = self.levels["current"]
        by_power = self._power_limit(self.levels["power"])
        return (by_power, True) if by_power < amps else (amps, False)

    @property
    def sink_limit(self) -> tuple[float, bool]:
        """Sink current limit (A, a magnitude) and whether the sink power limits it."""
        amps = self.levels["sink_current"]
        by_power = self._power_limit(self.levels["sink_power"])
        return (by_power, True) if by_power < amps else (amps, False)

    def _apply_setpoints(self) -> None:
        handle = self.handle
        handle.set_voltage(min(self.levels["voltage"], handle.spec.max_voltage_v))
        handle.set_current_limits(
            min(self.source_limit[0], handle.spec.max_source_a),
            min(self.sink_limit[0], handle.spec.max_sink_a),
        )

    def _apply_protection(self, name: str) -> None:
        """OVP and the two OCPs are plant trips; the OPPs are stored only."""
        if name == "ovp":
            self.handle.set_protection(TripKind.OVP, self.levels["ovp"])
        elif name == "ocp":
            self.handle.set_protection(TripKind.OCP, self.levels["ocp"])
        elif name == "sink_ocp":
            self.handle.set_sink_ocp(self.levels["sink_ocp"])

    # ---- reading -------------------------------------------------------------------
    @property
    def sinking(self) -> bool:
        """True while the port draws current from its node."""
        return self.handle.state().current < -SINK_THRESHOLD * self.nominal.current

    def regulation(self) -> int:
        """CV, CC or CP from where the current sits relative to its limits."""
        if not self.handle.output_on:
            return CV
        amps = self.handle.state().current
        limit, by_power = self.sink_limit if amps < 0 else self.source_limit
        if limit > 0 and abs(amps) >= limit * (1 - AT_LIMIT):
            return CP if by_power else CC
        return CV

    def state_word(self) -> int:
        """The device state (registers 505-506)."""
        word = self.regulation() << REGULATION_SHIFT
        if self.handle.output_on:
            word |= BIT_OUTPUT
        if self.remote:
            word |= BIT_REMOTE
        if self.sinking:
            word |= BIT_SINK
        trips = self.handle.trips
        if trips:
            word |= BIT_ALARM
        for kind in trips:
            word |= TRIP_BITS.get(kind, 0)
        return word

    def actual(self) -> tuple[float, float, float]:
        """Measured voltage, current and power (plant sign: negative while sinking)."""
        m = self._measure()
        return m.voltage, m.current, m.voltage * m.current

    def actual_resistance(self) -> float:
        """Measured U/|I| in ohms (0 with no current flowing), capped at the nominal maximum."""
        volts, amps, _ = self.actual()
        top = self.nominal.resistance_max
        if abs(amps) < SINK_THRESHOLD * self.nominal.current:
            return 0.0
        return min(abs(volts / amps), top)

    def describe(self) -> dict[str, Any]:
        """Protocol-level state for the control channel's ``status``."""
        return {
            "remote": self.remote,
            "output": self.handle.output_on,
            "resistance_mode": self.resistance_mode,
            "levels": dict(self.levels),
            "alarm_counts": dict(self.alarm_counts),
        }


def _ascii_words(text: str, count: int) -> list[int]:
    """``text`` as ``count`` registers, two ASCII characters each, first in the high byte."""
    raw = text.encode("ascii", "replace")[: 2 * count].ljust(2 * count, b"\0")
    return list(struct.unpack(f">{count}H", raw))


def _constant(value: float) -> Callable[[], float]:
    """A read function that always answers ``value`` (identity and nominal registers)."""
    return lambda: value


def _to_raw(value: float, nominal: float) -> int:
    """A physical value as a register word (0xCCCC = nominal), clamped to 16 bits."""
    if not math.isfinite(value):
        return 0
    return max(0, min(0xFFFF, round(abs(value) / nominal * FULL_SCALE)))


class Psb10000Model(InstrumentModel):
    """EA PSB 10000 on ModBus TCP (driver ``psb10000``): answers unit id 0 and 1 (and the
    bench file's ``device_id`` if it is another)."""

    driver: ClassVar[str] = "psb10000"
    wire: ClassVar[Wire] = Wire.MODBUS_TCP

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        super().__init__(ctx, plant)
        self.physics = PsbPhysics(
            plant.bidirectional(ctx.key), Nominal.of(ctx), self.measure, ctx.key
        )
        plant.add_trip_listener(self.physics.count_trip)
        self.device = ModbusDevice(int(ctx.setting("device_id", UNIT_IDS[0])), name=ctx.key)
        self._declare(self.device)
        self.bus = ModbusBus([self.device], name=ctx.key)
        for unit in UNIT_IDS:
            if unit != self.device.unit_id:
                self.bus.add_alias(unit, self.device)

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        return [psb_port_spec(ctx)]

    def session_factory(self) -> SessionFactory:
        return self.bus.tcp_session

    # ---- the register map ----------------------------------------------------------
    def _declare(self, device: ModbusDevice) -> None:
        physics = self.physics
        nominal = physics.nominal
        device.coil(COIL_REMOTE, "remote", lambda: physics.remote, physics.set_remote)
        device.coil(
            COIL_OUTPUT,
            "DC output",
            lambda: physics.handle.output_on,
            self._guard(physics.set_output),
        )
        device.coil(
            COIL_UIR_MODE,
            "U/I/R mode",
            lambda: physics.resistance_mode,
            self._guard(physics.set_resistance_mode),
        )
        device.coil(COIL_ACK_ALARMS, "acknowledge alarms", lambda: False, self._guard(self._ack))
        device.coil(
            COIL_425, "coil 425", lambda: physics.coil_425, self._guard(physics.set_coil_425)
        )
        self._strings(device, REG_DEVICE_TYPE, "device type", self.ctx.instrument.model)
        self._strings(device, REG_SERIAL, "serial number", self.ctx.serial_number())
        for name, address in REG_NOMINAL.items():
            value = nominal.of_quantity(name)
            device.holding(address, f"nominal {name}", _constant(value), encoding=Encoding.F32)
        for name, address in REG_NOMINAL_RESISTANCE.items():
            value = getattr(nominal, name)
            device.holding(address, f"nominal {name}", _constant(value), encoding=Encoding.F32)
        for name, address in {**REG_SETPOINTS, **REG_PROTECTIONS}.items():
            cap = PROTECTION_CAP if name in PROTECTIONS else SET_CAP
            device.holding(
                address,
                name,
                self._level_reader(name),
                self._level_writer(name),
                minimum=0,
                maximum=cap,
            )
        device.holding(REG_STATE, "device state", physics.state_word, encoding=Encoding.U32)
        for index, (name, address) in enumerate(REG_ACTUAL.items()):
            device.holding(address, f"actual {name}", self._actual_reader(index, name))
        device.holding(
            REG_ACTUAL_RESISTANCE,
            "actual resistance",
            lambda: _to_raw(physics.actual_resistance(), nominal.resistance_max),
        )
        for offset, alarm in enumerate(ALARM_COUNTERS):
            device.holding(
                REG_ALARM_COUNTERS + offset,
                f"alarm counter {alarm or 'reserved'}",
                self._counter_reader(alarm),
            )

    @staticmethod
    def _strings(device: ModbusDevice, address: int, name: str, text: str) -> None:
        for offset, word in enumerate(_ascii_words(text, STRING_REGISTERS)):
            device.holding(address + offset, f"{name} [{offset}]", _constant(word))

    def _guard(self, action: Callable[[bool], None]) -> Callable[[bool], None]:
        """A coil write that answers EA's exception 0x07 while remote is off."""

        def write(value: bool) -> None:
            try:
                action(value)
            except NotInRemote as refusal:
                raise ModbusError(NOT_IN_REMOTE, str(refusal)) from refusal

        return write

    def _counter_reader(self, alarm: str) -> Callable[[], int]:
        counts = self.physics.alarm_counts
        return lambda: min(counts.get(alarm, 0), 0xFFFF)

    def _ack(self, on: bool) -> None:
        if on:
            self.physics.clear_alarms()

    def _level_reader(self, name: str) -> Callable[[], int]:
        nominal = self.physics.nominal.of_quantity(name)
        return lambda: _to_raw(self.physics.levels[name], nominal)

    def _level_writer(self, name: str) -> Callable[[float], None]:
        nominal = self.physics.nominal.of_quantity(name)

        def write(raw: float) -> None:
            try:
                self.physics.set_level(name, raw * nominal / FULL_SCALE)
            except NotInRemote as refusal:
                raise ModbusError(NOT_IN_REMOTE, str(refusal)) from refusal

        return write

    def _actual_reader(self, index: int, name: str) -> Callable[[], int]:
        nominal = self.physics.nominal.of_quantity(name)
        return lambda: _to_raw(self.physics.actual()[index], nominal)

    def status(self) -> dict[str, Any]:
        return {**super().status(), **self.physics.describe()}
