"""A DC/DC converter unit (role ``Converter``) and its battery side.

The battery side is a battery whose BMS (role ``Bms``) reports state of charge and
interchange permission, and/or a battery emulator (Sony's rig: a supply + a load in CV, or
one bidirectional supply, see :mod:`hil.units.battery`).

How it maps the controller onto the converter (APIS's modes and order of commands; the
frames each step sends are in the converter driver's docstring):

- ``set_current(a)``: ``a > 0`` → DISCHARGE with ``dig = a``; ``a < 0`` → CHARGE with
  ``dig = |a|``; ``a = 0`` → WAIT (and ``dig = 0``). A mode change goes through the driver's
  ``apply`` (from WAIT: voltage, limits, then mode; otherwise mode first; the mode is read
  back); a ramp step in the same mode rewrites only the limits word (one frame).
- ``hold_voltage(v, limit, droop)``: VOLTAGE_REFERENCE with ``dvg = v``, ``drg = droop``,
  ``dig = limit``.
- Before anything is sent: the envelope and the unit's capabilities, the converter's own
  ranges (``field_range``), and — with a BMS — the battery's permission (a direction it does
  not allow is a ``CapabilityError`` naming the permission) and its SoC window
  (``EnvelopeError``).
- The battery emulator, if any, is switched on before the converter first leaves WAIT, and
  the converter waits (bench clock, at most ``NODE_RISE_TIMEOUT_S``) until its own meter
  reads the battery node inside the battery window: a converter started on a node that is
  still rising trips on battery under-voltage.
- ``idle()``: WAIT (the battery emulator stays on, as a battery would).
- ``arm()``: WAIT, the battery emulator armed (off), then the limits word from the
  envelope: ``ugv``/``ogv`` the bus window widened by 5 %, ``ubv``/``obv`` the battery window,
  ``cib`` 1.1 x ``power_max`` / ``battery_voltage_min`` (within the converter's rating), and
  ``dig = 0``. No communication watchdog is used (APIS uses none).
- ``read()``: meters, mode and status; the BMS (one read) and the battery emulator's
  status. APIS signs ``ig`` positive while charging, so ``bus_current = -ig``; ``ib`` is
  taken to have the same sign as ``ig`` (positive while the battery charges), so
  ``battery_current = -ib`` (positive while it discharges).
"""

from __future__ import annotations

import dataclasses
import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from hil.errors import CapabilityError, ConfigError, InstrumentError
from instruments.base import check_setpoint
from instruments.roles import Alarm, Bms, Converter, ConverterMode, Limits, Permission

from .base import (
    CURRENT_TRIP_FACTOR,
    SAFE_OFF_TIMEOUT_S,
    VOLTAGE_TRIP_FACTOR,
    Part,
    SafeStep,
    UnitBase,
)
from .battery import BatteryEmulator

log = logging.getLogger(__name__)

_REFUSED = "refused before anything was sent to the converter"
#: Bench seconds a battery emulator may take to bring the battery node up, and the poll.
NODE_RISE_TIMEOUT_S = 2.0
NODE_POLL_S = 0.02

_MODES = {
    ConverterMode.WAIT: Mode.IDLE,
    ConverterMode.CHARGE: Mode.CURRENT,
    ConverterMode.DISCHARGE: Mode.CURRENT,
    ConverterMode.VOLTAGE_REFERENCE: Mode.VOLTAGE_REFERENCE,
}


class ConverterUnit(UnitBase):
    """A DC/DC converter on the bus with a BMS battery and/or a battery emulator."""

    kind = "converter"

    def __init__(
        self,
        unit_id: str,
        converter: Converter,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        bms: Bms | None = None,
        battery: BatteryEmulator | None = None,
        name: str = "converter",
        driver_name: str = "",
        bms_name: str = "battery",
        bms_driver_name: str = "",
        battery_current_max: float | None = None,
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        if envelope.battery_voltage_min is None or envelope.battery_voltage_max is None:
            raise ConfigError(f"unit {unit_id}: a converter unit needs a battery voltage window")
        parts = [Part(unit_id, name, driver_name or type(converter).__name__.lower(), converter)]
        if bms is not None:
            bms_driver = bms_driver_name or type(bms).__name__.lower()
            parts.append(Part(unit_id, bms_name, bms_driver, bms))
        if battery is not None:
            parts.extend(battery.parts)
        rating = converter.rating
        capabilities = Capabilities(
            can_source=envelope.can_source,
            can_sink=envelope.can_sink,
            can_hold_voltage=True,
            source_current_max=rating.current if envelope.can_source else 0.0,
            sink_current_max=rating.current if envelope.can_sink else 0.0,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=bms is not None,
            hardware_watchdog=False,
        )
        super().__init__(
            unit_id, envelope, clock, parts, capabilities, safe_off_timeout=safe_off_timeout
        )
        self.converter = converter
        self.bms = bms
        self.battery = battery
        self._cib_max = min(
            battery_current_max
            if battery_current_max is not None
            else converter.battery_current_rating,
            converter.field_range("cib")[1],
        )
        self._limits: Limits | None = None
        self._converter_mode: ConverterMode | None = None

    def _supports_droop(self) -> bool:
        return True

    def _forget(self) -> None:
        super()._forget()
        self._limits = None
        self._converter_mode = None
        if self.battery is not None:
            self.battery.forget()

    # -- checks ------------------------------------------------------------------------
    def _check_converter(self, field: str, value: float, unit: str, rated: float) -> float:
        """The converter's own range for ``field`` (APIS's accepted range and rating)."""
        low, high = self.converter.field_range(field)
        return check_setpoint(self.converter.name, field, value, low, min(high, rated), unit)

    def _check_battery(self, amps: float, what: str) -> None:
        """Permission and SoC from the BMS (one read); ``amps`` 0 means voltage reference."""
        if self.bms is None:
            return
        state = self.bms.read()
        permission = state.permission
        scope = f"unit {self._unit_id}"
        source = f"battery permission {permission.name} (BMS register 30031)"
        if amps > 0 and not permission.may_discharge:
            raise CapabilityError(
                f"{scope}: {what} would discharge, but the {source} does not allow it; {_REFUSED}"
            )
        if amps < 0 and not permission.may_charge:
            raise CapabilityError(
                f"{scope}: {what} would charge, but the {source} does not allow it; {_REFUSED}"
            )
        if amps == 0 and permission is Permission.NONE:
            raise CapabilityError(
                f"{scope}: {what} needs the battery, but the {source} allows no "
                f"interchange; {_REFUSED}"
            )
        self._envelope.check_soc(state.soc_percent / 100.0, amps)

    def _arm_limits(self) -> Limits:
        env = self._envelope
        low, high = env.battery_voltage_min, env.battery_voltage_max
        assert low is not None and high is not None
        ugv_low, _ = self.converter.field_range("ugv")
        _, ogv_high = self.converter.field_range("ogv")
        ubv_low, _ = self.converter.field_range("ubv")
        _, obv_high = self.converter.field_range("obv")
        limits = Limits(
            cib=min(self._cib_max, CURRENT_TRIP_FACTOR * env.power_max / low),
            dig=0.0,
            ubv=max(ubv_low, low),
            ugv=max(ugv_low, env.voltage_min / VOLTAGE_TRIP_FACTOR),
            obv=min(obv_high, high),
            ogv=min(ogv_high, VOLTAGE_TRIP_FACTOR * env.voltage_max),
        )
        for field, unit in (("cib", "A"), ("ubv", "V"), ("ugv", "V"), ("obv", "V"), ("ogv", "V")):
            self._check_converter(field, getattr(limits, field), unit, float("inf"))
        return limits

    # -- set-points ----------------------------------------------------------------------
    def _energize(self, generation: int, what: str) -> None:
        if self.battery is not None:
            rising = not self.battery.energized
            self.battery.energize(
                lambda doing: self._still_allowed(generation, f"{what} ({doing})")
            )
            if rising:
                self._await_battery_node(what)

    def _await_battery_node(self, what: str) -> None:
        """Wait until the converter reads the battery node inside the battery window."""
        low = self._envelope.battery_voltage_min or 0.0
        deadline = self._clock.now() + NODE_RISE_TIMEOUT_S
        while (vb := self.converter.meters().vb) < low:
            if self._clock.now() >= deadline:
                raise InstrumentError(
                    f"{self._scope()}: the battery node reads {vb:.4g} V "
                    f"{NODE_RISE_TIMEOUT_S:g} s after its battery emulator was switched on, "
                    f"below {low:g} V; {what} was not sent"
                )
            self._clock.sleep(NODE_POLL_S)

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        dig = self._check_converter("dig", abs(amps), "A", self.converter.rating.current)
        mode = (
            ConverterMode.DISCHARGE
            if amps > 0
            else ConverterMode.CHARGE
            if amps < 0
            else ConverterMode.WAIT
        )
        what = f"set_current({amps:+g} A)"
        with self._sending() as generation:
            if amps != 0:
                self._check_battery(amps, what)
                self._energize(generation, what)
            self._still_allowed(generation, what)
            same_mode = (
                self._primed and self._converter_mode is mode and mode is not ConverterMode.WAIT
            )
            if same_mode and self._limits is not None:
                self._limits = self.converter.set_limits(dataclasses.replace(self._limits, dig=dig))
            elif same_mode:
                self._limits = self.converter.set_grid_current(dig)
            else:
                self.converter.apply(mode=mode, dig=dig)
                if self._limits is not None:
                    self._limits = dataclasses.replace(self._limits, dig=dig)
            self._converter_mode = mode
            if mode is ConverterMode.WAIT:
                self._commit(Mode.IDLE, None)
            else:
                self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, droop = self._check_hold(volts, current_limit, droop, both_directions=True)
        rating = self.converter.rating
        self._check_converter("dvg", volts, "V", rating.voltage)
        self._check_converter("drg", droop, "", float("inf"))
        self._check_converter("dig", limit, "A", rating.current)
        what = f"hold_voltage({volts:g} V, {limit:g} A)"
        with self._sending() as generation:
            self._check_battery(0.0, what)
            self._energize(generation, what)
            self._still_allowed(generation, what)
            if self._primed and self._converter_mode is ConverterMode.VOLTAGE_REFERENCE:
                self.converter.apply(dvg=volts, drg=droop, dig=limit)
            else:
                self.converter.apply(
                    mode=ConverterMode.VOLTAGE_REFERENCE, dvg=volts, drg=droop, dig=limit
                )
            if self._limits is not None:
                self._limits = dataclasses.replace(self._limits, dig=limit)
            self._converter_mode = ConverterMode.VOLTAGE_REFERENCE
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending():
            self.converter.set_mode(ConverterMode.WAIT)
            self._converter_mode = ConverterMode.WAIT
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        limits = self._arm_limits()
        with self._sending():
            self.converter.set_mode(ConverterMode.WAIT)
            self._converter_mode = ConverterMode.WAIT
            if self.battery is not None:
                self.battery.arm()
            self._limits = self.converter.set_limits(limits)
            self._commit(Mode.IDLE, None)
        log.info(
            "unit %s: armed %s (cib %.4g A, ubv %.4g V, obv %.4g V, ugv %.4g V, ogv %.4g V)",
            self._unit_id,
            self._parts[0].label,
            limits.cib,
            limits.ubv,
            limits.obv,
            limits.ugv,
            limits.ogv,
        )

    # -- reading -------------------------------------------------------------------------
    def read(self) -> Reading:
        t = self._clock.now()
        meters = self.converter.meters()
        converter_mode = self.converter.mode()
        status = self.converter.status()
        flags: set[str] = set()
        if status.alarm is not Alarm.NONE:
            flags.add("ALARM")
        if status.alarm is Alarm.HEAVY:
            flags.add("HEAVY_ALARM")
        soc = None
        if self.bms is not None:
            state = self.bms.read()
            soc = state.soc_percent / 100.0
            if not state.permission.may_charge:
                flags.add("NO_CHARGE")
            if not state.permission.may_discharge:
                flags.add("NO_DISCHARGE")
        if self.battery is not None:
            flags |= self.battery.flags()
        mode = Mode.FAULT if status.alarm is Alarm.HEAVY else _MODES[converter_mode]
        return self._reading(
            t,
            bus_voltage=meters.vg,
            bus_current=-meters.ig + 0.0,
            mode=mode,
            flags=frozenset(flags),
            battery_voltage=meters.vb,
            battery_current=-meters.ib + 0.0,
            soc=soc,
            temperature=meters.tmp,
        )

    def clear_faults(self) -> None:
        """Clear the converter's latched alarms (its alarm-clear command)."""
        with self._sending():
            self.converter.clear_alarms()

    def _safe_off_steps(self) -> list[SafeStep]:
        def wait() -> None:
            self.converter.set_mode(ConverterMode.WAIT)

        steps = [SafeStep(self._parts[0], "WAIT", wait)]
        if self.battery is not None:
            steps.extend(self.battery.safe_off_steps())
        return steps
