"""An electronic load on the bus: sink only (role ``Load``).

How it maps the controller onto the load's role (the load's sunk current is negative in
bus convention; its driver already reports it so):

- ``set_current(a)``, ``a ≤ 0``: constant current (selected only when the load is not
  already in CC), sink current ``|a|``, input on. A positive ``a`` is a ``CapabilityError``
  before anything is sent.
- ``hold_voltage``: refused (``CapabilityError``). A load in CV can only clamp the bus from
  above; it cannot bring a dead bus up, so it is not offered as a voltage reference. (Sony's
  battery emulator uses the CV mode on the battery node, see :mod:`hil.units.battery`.)
- ``idle()``: input off, then sink current 0.
- ``arm()``: input off, constant current, sink current 0 and the turn-on voltage at the
  bottom of the unit's voltage window, so the load stops sinking if the bus sags out of it.
- ``read()``: the driver's ``measure()``; a latched protection makes the mode FAULT.

The commands each family sends for these are in its driver's module docstring.
"""

from __future__ import annotations

import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from instruments.roles import Load

from .base import SAFE_OFF_TIMEOUT_S, Part, SafeStep, UnitBase
from .supply import output_mode

log = logging.getLogger(__name__)


class LoadUnit(UnitBase):
    """An electronic load on the bus, as a sink-only constant-current unit."""

    kind = "load"

    def __init__(
        self,
        unit_id: str,
        load: Load,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "load",
        driver_name: str = "",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        rating = load.rating
        capabilities = Capabilities(
            can_source=False,
            can_sink=True,
            can_hold_voltage=False,
            source_current_max=0.0,
            sink_current_max=rating.current,
            voltage_max=rating.voltage,
            power_max=rating.power,
            has_battery=False,
            hardware_watchdog=False,
        )
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name or type(load).__name__.lower(), load)],
            capabilities,
            safe_off_timeout=safe_off_timeout,
        )
        self.load = load

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        with self._sending() as generation, self.load.locked():
            self._still_allowed(generation, f"set_current({amps:+g} A)")
            primed = self._primed and self._commanded is Mode.CURRENT
            if not primed:
                self.load.select_constant_current()
            self.load.set_sink_current(abs(amps))
            if not primed:
                self.load.set_input(True)
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        """Always refused (``CapabilityError``): see the module docstring."""
        self._check_hold(volts, current_limit, droop, both_directions=False)

    def idle(self) -> None:
        with self._sending(), self.load.locked():
            self.load.set_input(False)
            self.load.set_sink_current(0.0)
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        with self._sending(), self.load.locked():
            self.load.set_input(False)
            self.load.select_constant_current()
            self.load.set_sink_current(0.0)
            self.load.set_turn_on_voltage(self._envelope.voltage_min)
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        reading = self.load.measure()
        return self._reading(
            t,
            bus_voltage=reading.voltage,
            bus_current=reading.current,
            mode=output_mode(reading, self._commanded),
            flags=reading.flags,
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]
        return [SafeStep(part, action, run) for action, run in self.load.safe_off_actions()]
