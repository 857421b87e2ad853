"""Bidirectional (regenerative) supplies on the bus: ITECH IT6000C and EA PSB 10000.

Both source and sink and can hold the bus voltage; each is driven its own natural way.

**ITECH IT6000C** (SCPI; its current is signed, positive sourcing — already bus convention):

- ``set_current(a)``: CC priority with a signed current and a voltage window: ``FUNC CURR``,
  ``VOLT:LIM <window top>``, ``VOLT:LIM:NEG <window bottom>``, ``CURR <a>``, ``OUTP ON``
  (on a ramp, only ``CURR <a>``). Outside the window it stops pushing / drawing.
- ``hold_voltage(v, limit)``: CV priority: ``FUNC VOLT``, ``CURR:LIM limit``,
  ``CURR:LIM:NEG -limit``, ``VOLT v``, ``OUTP ON``.
- ``arm()``: ``SYST:REM``, ``OUTP OFF``, ``FUNC:MODE FIX``, OVP ``VOLT:PROT`` at 1.05 x the
  window top, OCP ``CURR:PROT`` at 1.1 x the larger current limit, power limits
  ``POW:LIM``/``POW:LIM:NEG`` at ``power_max``, OPP ``POW:PROT`` at 1.1 x ``power_max``, each
  protection switched on; every level capped at the supply's SCPI maximum (101 % of its
  rated voltage and current, 102 % of its power), which it would refuse above.
- ``read()``: one compound query ``MEAS:VOLT?;:MEAS:CURR?;:OUTP?;:FUNC?;:STAT:QUES:COND?``.
  Questionable bits (OpenBench's map, see :mod:`instruments.it6000c`) become flags: OVP,
  OCP (OCP+ or OCP-), OPP (OPP+ or OPP-), OTP, UVLO (UVP), INH (INHIBIT), REV, UCP and PROT
  (PROTECTION, where the emulator reports a watchdog expiry); any of them but REV and UCP
  makes the mode FAULT.

**EA PSB 10000** (ModBus; the driver signs the current negative in sink mode):
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
from collections.abc import Callable

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from instruments.base import Rating
from instruments.it6000c import IT6000C, FunctionMode, Priority, QuestionableStatus
from instruments.psb10000 import TRIPS, Psb10000, PsbState, Regulation
from instruments.scpi import parse_bool, parse_number

from .base import (
    CURRENT_TRIP_FACTOR,
    SAFE_OFF_TIMEOUT_S,
    VOLTAGE_TRIP_FACTOR,
    Part,
    SafeStep,
    UnitBase,
    query_fields,
)

log = logging.getLogger(__name__)

IT6000C_READ_QUERIES = ("MEAS:VOLT?", "MEAS:CURR?", "OUTP?", "FUNC?", "STAT:QUES:COND?")

_ITECH_FLAGS = {
    QuestionableStatus.OVP: "OVP",
    QuestionableStatus.OCP_POS: "OCP",
    QuestionableStatus.OCP_NEG: "OCP",
    QuestionableStatus.OPP_POS: "OPP",
    QuestionableStatus.OPP_NEG: "OPP",
    QuestionableStatus.OTP: "OTP",
    QuestionableStatus.UVP: "UVLO",
    QuestionableStatus.INHIBIT: "INH",
    QuestionableStatus.REVERSE: "REV",
    QuestionableStatus.UCP: "UCP",
    QuestionableStatus.PROTECTION: "PROT",
}
#: Questionable bits after which the output is off: the reading's mode is FAULT.
_ITECH_TRIPS = (
    QuestionableStatus.OVP
    | QuestionableStatus.OCP_POS
    | QuestionableStatus.OCP_NEG
    | QuestionableStatus.OPP_POS
    | QuestionableStatus.OPP_NEG
    | QuestionableStatus.OTP
    | QuestionableStatus.UVP
    | QuestionableStatus.INHIBIT
    | QuestionableStatus.PROTECTION
)

_PRIORITY_WORDS = {
    "VOLT": Priority.VOLTAGE,
    "VOLTAGE": Priority.VOLTAGE,
    "CURR": Priority.CURRENT,
    "CURRENT": Priority.CURRENT,
}

_PSB_FLAGS = {
    PsbState.OVP: "OVP",
    PsbState.OCP: "OCP",
    PsbState.OPP: "OPP",
    PsbState.OT: "OTP",
    PsbState.ALARM: "ALARM",
}


def _bidirectional_capabilities(rating: Rating) -> Capabilities:
    return Capabilities(
        can_source=True,
        can_sink=True,
        can_hold_voltage=True,
        source_current_max=rating.current,
        sink_current_max=rating.current,
        voltage_max=rating.voltage,
        power_max=rating.power,
        has_battery=False,
        hardware_watchdog=False,
    )


def it6000c_flags(status: QuestionableStatus, prefix: str = "") -> frozenset[str]:
    """Flag names of the IT6000C's questionable bits (``OVP``, ``OCP``, ``PROT``, ...)."""
    return frozenset(prefix + name for bit, name in _ITECH_FLAGS.items() if bit in status)


def it6000c_status(supply: IT6000C) -> tuple[bool, QuestionableStatus]:
    """Output state and questionable bits in one round trip."""
    queries = ("OUTP?", "STAT:QUES:COND?")
    state, status = query_fields(supply, queries)
    where = {"resource": supply.resource, "command": ";:".join(queries)}
    on = parse_bool(state, **where)
    return on, QuestionableStatus(int(parse_number(status, **where)))


def it6000c_arm(supply: IT6000C, voltage_max: float, current_max: float, power_max: float) -> None:
    """Remote, output off, fixed mode, and OVP/OCP/power limits/OPP switched on."""
    volts_top, amps_top, watts_top = supply.protection_maxima()
    ovp = min(VOLTAGE_TRIP_FACTOR * voltage_max, volts_top)
    ocp = min(CURRENT_TRIP_FACTOR * current_max, amps_top)
    watts = min(power_max, supply.rating.power)
    opp = min(CURRENT_TRIP_FACTOR * power_max, watts_top)
    with supply.locked():
        supply.remote()
        supply.output = False
        supply.function_mode = FunctionMode.FIXED
        supply.ovp = ovp
        supply.ovp_enabled = True
        supply.ocp = ocp
        supply.ocp_enabled = True
        supply.power_limit = watts
        supply.power_limit_negative = -watts
        supply.opp = opp
        supply.opp_enabled = True


def psb_arm(
    psb: Psb10000,
    voltage_max: float,
    current_max: float,
    power_max: float,
    *,
    sink_current_max: float | None = None,
) -> None:
    """Remote, output off, U/I/P mode, power set values, OVP, source and sink OCP/OPP, currents 0.

    The PSB has separate protections per direction: source OCP/OPP (registers 553/556) from
    ``current_max``, sink OCP/OPP (569/570) from ``sink_current_max`` (default: the same).
    """
    rating = psb.rating
    watts = min(power_max, rating.power)
    sink_amps = current_max if sink_current_max is None else sink_current_max
    opp = min(CURRENT_TRIP_FACTOR * power_max, 1.1 * rating.power)
    psb.set_remote(True)
    psb.set_output(False)
    psb.set_resistance_mode(False)
    psb.set_power(watts)
    psb.set_sink_power(watts)
    psb.set_ovp(min(VOLTAGE_TRIP_FACTOR * voltage_max, 1.1 * rating.voltage))
    psb.set_ocp(min(CURRENT_TRIP_FACTOR * current_max, 1.1 * rating.current))
    psb.set_opp(opp)
    psb.set_sink_ocp(min(CURRENT_TRIP_FACTOR * sink_amps, 1.1 * rating.current))
    psb.set_sink_opp(opp)
    psb.set_current(0.0)
    psb.set_sink_current(0.0)


def psb_flags(state: PsbState, prefix: str = "") -> frozenset[str]:
    """Flag names of the PSB's device state (``OVP``, ``OCP``, ``OPP``, ``OTP``, ``ALARM``)."""
    return frozenset(prefix + name for bit, name in _PSB_FLAGS.items() if bit in state)


class BidirectionalUnit(UnitBase):
    """Common part of the bidirectional supplies: both directions, voltage reference."""

    kind = "bidirectional supply"

    def _current_max(self) -> float:
        return max(self._envelope.current_source_max, self._envelope.current_sink_max)


class It6000cUnit(BidirectionalUnit):
    """An ITECH IT6000C on the bus."""

    def __init__(
        self,
        unit_id: str,
        supply: IT6000C,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "bidirectional",
        driver_name: str = "it6000c",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name, supply)],
            _bidirectional_capabilities(supply.rating),
            safe_off_timeout=safe_off_timeout,
        )
        self.supply = supply

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        env = self._envelope
        with self._sending() as generation, self.supply.locked():
            self._still_allowed(generation, f"set_current({amps:+g} A)")
            primed = self._primed and self._commanded is Mode.CURRENT
            if not primed:
                self.supply.priority = Priority.CURRENT
                self.supply.voltage_limit = env.voltage_max
                self.supply.voltage_limit_negative = env.voltage_min
            self.supply.current = amps
            if not primed:
                self.supply.output = True
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, _ = self._check_hold(volts, current_limit, droop, both_directions=True)
        with self._sending() as generation, self.supply.locked():
            self._still_allowed(generation, f"hold_voltage({volts:g} V)")
            self.supply.hold_voltage(volts, limit, limit)
            if not (self._primed and self._commanded is Mode.VOLTAGE_REFERENCE):
                self.supply.output = True
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending(), self.supply.locked():
            self.supply.output = False
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        env = self._envelope
        with self._sending():
            it6000c_arm(self.supply, env.voltage_max, self._current_max(), env.power_max)
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        fields = query_fields(self.supply, IT6000C_READ_QUERIES)
        where = {"resource": self.supply.resource, "command": ";:".join(IT6000C_READ_QUERIES)}
        volts = parse_number(fields[0], **where)
        amps = parse_number(fields[1], **where)
        on = parse_bool(fields[2], **where)
        priority = _PRIORITY_WORDS.get(fields[3].strip().strip('"').upper())
        status = QuestionableStatus(int(parse_number(fields[4], **where)))
        if status & _ITECH_TRIPS:
            mode = Mode.FAULT
        elif not on:
            mode = Mode.IDLE
        elif priority is Priority.VOLTAGE:
            mode = Mode.VOLTAGE_REFERENCE
        elif priority is Priority.CURRENT:
            mode = Mode.CURRENT
        else:
            mode = self._commanded
        return self._reading(
            t, bus_voltage=volts, bus_current=amps, mode=mode, flags=it6000c_flags(status)
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        def output_off() -> None:
            self.supply.output = False

        return [SafeStep(self._parts[0], "OUTP OFF", output_off)]


class Psb10000Unit(BidirectionalUnit):
    """An EA PSB 10000 on the bus, over ModBus TCP."""

    def __init__(
        self,
        unit_id: str,
        psb: Psb10000,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "bidirectional",
        driver_name: str = "psb10000",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name, psb)],
            _bidirectional_capabilities(psb.rating),
            safe_off_timeout=safe_off_timeout,
        )
        self.psb = psb
        self._levels: dict[str, float] = {}
        self._output_on = False

    def _forget(self) -> None:
        super()._forget()
        self._levels = {}
        self._output_on = False

    def _level(self, generation: int, what: str, key: str, value: float, force: bool) -> None:
        """Write one set value unless it is already there (``force`` writes anyway)."""
        if not force and self._levels.get(key) == value:
            return
        self._still_allowed(generation, what)
        setter: Callable[[float], None] = {
            "U": self.psb.set_voltage,
            "I": self.psb.set_current,
            "sink I": self.psb.set_sink_current,
        }[key]
        setter(value)
        self._levels[key] = value

    def _output(self, generation: int, what: str) -> None:
        if not self._output_on:
            self._still_allowed(generation, what)
            self.psb.set_output(True)
            self._output_on = True

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        env = self._envelope
        what = f"set_current({amps:+g} A)"
        with self._sending() as gen:
            if amps >= 0:
                self._level(gen, what, "sink I", 0.0, force=False)
                self._level(gen, what, "U", env.voltage_max, force=False)
                self._level(gen, what, "I", amps, force=True)
            else:
                self._level(gen, what, "I", 0.0, force=False)
                self._level(gen, what, "U", env.voltage_min, force=False)
                self._level(gen, what, "sink I", -amps, force=True)
            self._output(gen, what)
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, _ = self._check_hold(volts, current_limit, droop, both_directions=True)
        what = f"hold_voltage({volts:g} V)"
        with self._sending() as gen:
            self._level(gen, what, "I", limit, force=False)
            self._level(gen, what, "sink I", limit, force=False)
            self._level(gen, what, "U", volts, force=True)
            self._output(gen, what)
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending():
            self.psb.set_output(False)
            self.psb.set_current(0.0)
            self.psb.set_sink_current(0.0)
            self._output_on = False
            self._levels.update({"I": 0.0, "sink I": 0.0})
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        env = self._envelope
        with self._sending():
            source, sink = env.current_source_max, env.current_sink_max
            psb_arm(
                self.psb,
                env.voltage_max,
                source or sink,
                env.power_max,
                sink_current_max=sink or source,
            )
            self._output_on = False
            self._levels = {"I": 0.0, "sink I": 0.0}
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        reading = self.psb.read()
        state = reading.state
        if state & (TRIPS | PsbState.ALARM):
            mode = Mode.FAULT
        elif not reading.output_on:
            mode = Mode.IDLE
        elif state.regulation is Regulation.CV:
            mode = Mode.VOLTAGE_REFERENCE
        else:
            mode = Mode.CURRENT
        return self._reading(
            t,
            bus_voltage=reading.voltage,
            bus_current=reading.current,
            mode=mode,
            flags=psb_flags(state),
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]

        def output_off() -> None:
            self.psb.set_output(False)

        def currents_zero() -> None:
            self.psb.set_current(0.0)
            self.psb.set_sink_current(0.0)

        return [
            SafeStep(part, "output OFF (coil 405)", output_off),
            SafeStep(part, "I = 0, sink I = 0", currents_zero),
        ]
