"""A unidirectional DC supply on the bus: source only (role ``SourceSupply``).

How it maps the controller onto the supply's role (:mod:`instruments.roles`):

- ``set_current(a)``, ``a ≥ 0``: a current source with a *compliance voltage* ``Vc``: the
  current at ``a``, the voltage at ``Vc``, output on; while the bus voltage reference holds
  the bus below ``Vc`` the supply runs in CC and pushes ``a`` amps in. ``Vc`` is the top of
  the unit's voltage window (``envelope.voltage_max``) unless given. A negative ``a`` is a
  ``CapabilityError`` before anything is sent.
- ``hold_voltage(v, limit)``: current at ``limit``, voltage at ``v``, output on (no droop).
- ``idle()``: output off, then current 0.
- ``arm()``: ``arm_source`` with the voltage at ``Vc``, OVP asked at 1.05 x the window's top
  and the under-voltage limit at its bottom (the driver clips both to what its instrument
  allows, or refuses), then current 0: the unit is left idle.
- ``read()``: the driver's ``measure()``; the supply's current is already in bus convention.

The commands each family sends for these are in its driver's module docstring.
"""

from __future__ import annotations

import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from instruments.roles import OutputReading, SourceSupply

from .base import SAFE_OFF_TIMEOUT_S, VOLTAGE_TRIP_FACTOR, Part, SafeStep, UnitBase

log = logging.getLogger(__name__)


def source_protection(
    psu: SourceSupply, voltage_setting: float, voltage_min: float, voltage_max: float
) -> tuple[float, float, float]:
    """(setting, OVP request, UV limit request) for a supply whose node must stay inside
    ``voltage_min``-``voltage_max``: OVP at the trip factor above the window's top."""
    return voltage_setting, VOLTAGE_TRIP_FACTOR * voltage_max, voltage_min


def output_mode(reading: OutputReading, commanded: Mode) -> Mode:
    """The controller mode an output's reading shows (a trip wins, then off, then its
    regulation; an output that does not say keeps the commanded mode)."""
    if reading.tripped:
        return Mode.FAULT
    if not reading.on:
        return Mode.IDLE
    if reading.regulation == "current":
        return Mode.CURRENT
    if reading.regulation == "voltage":
        return Mode.VOLTAGE_REFERENCE
    return commanded


class SupplyUnit(UnitBase):
    """A source supply on the bus, as a source-only constant-current unit."""

    kind = "supply"

    def __init__(
        self,
        unit_id: str,
        psu: SourceSupply,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "supply",
        driver_name: str = "",
        compliance_voltage: float | None = None,
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        rating = psu.rating
        capabilities = Capabilities(
            can_source=True,
            can_sink=False,
            can_hold_voltage=True,
            source_current_max=rating.current,
            sink_current_max=0.0,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=False,
            hardware_watchdog=False,
        )
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name or type(psu).__name__.lower(), psu)],
            capabilities,
            safe_off_timeout=safe_off_timeout,
        )
        self.psu = psu
        self.compliance_voltage = envelope.check_voltage(
            envelope.voltage_max if compliance_voltage is None else compliance_voltage
        )

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        with self._sending() as generation, self.psu.locked():
            self._still_allowed(generation, f"set_current({amps:+g} A)")
            primed = self._primed and self._commanded is Mode.CURRENT
            self.psu.set_current(amps)
            if not primed:
                self.psu.set_voltage(self.compliance_voltage)
                self.psu.set_output(True)
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, _ = self._check_hold(volts, current_limit, droop, both_directions=False)
        with self._sending() as generation, self.psu.locked():
            self._still_allowed(generation, f"hold_voltage({volts:g} V)")
            primed = self._primed and self._commanded is Mode.VOLTAGE_REFERENCE
            self.psu.set_current(limit)
            self.psu.set_voltage(volts)
            if not primed:
                self.psu.set_output(True)
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending(), self.psu.locked():
            self.psu.set_output(False)
            self.psu.set_current(0.0)
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        env = self._envelope
        levels = source_protection(
            self.psu, self.compliance_voltage, env.voltage_min, env.voltage_max
        )
        self.psu.check_source_protection(*levels)
        with self._sending(), self.psu.locked():
            self.psu.arm_source(*levels)
            self.psu.set_current(0.0)
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        reading = self.psu.measure()
        return self._reading(
            t,
            bus_voltage=reading.voltage,
            bus_current=reading.current,
            mode=output_mode(reading, self._commanded),
            flags=reading.flags,
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]
        return [SafeStep(part, action, run) for action, run in self.psu.safe_off_actions()]
