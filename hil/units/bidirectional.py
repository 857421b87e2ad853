"""Bidirectional (regenerative) supplies on the bus (role ``BidirectionalSupply``).

They source and sink and can hold the bus voltage. One adapter drives them all through the
role: it checks the envelope, asks for protection levels (OVP 1.05 x the window top, OCP
1.1 x each direction's limit — a direction whose limit is 0 takes the other's —, power
limits at ``power_max``, OPP 1.1 x ``power_max``; each driver clips them to what its
instrument accepts) and leaves each driver to drive its instrument its own natural way:
``drive_current`` (signed, within the voltage window), ``drive_voltage``, ``stop``. The
commands and registers each family uses are in its driver's module docstring.
"""

from __future__ import annotations

import logging

from hil.clock import Clock
from hil.controller import Capabilities, Mode, Reading
from hil.envelope import UnitEnvelope
from instruments.base import Rating
from instruments.roles import BidirectionalSupply, ProtectionLevels

from .base import (
    CURRENT_TRIP_FACTOR,
    SAFE_OFF_TIMEOUT_S,
    VOLTAGE_TRIP_FACTOR,
    Part,
    SafeStep,
    UnitBase,
)
from .supply import output_mode

log = logging.getLogger(__name__)


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


def protection_levels(
    voltage_max: float, source_max: float, sink_max: float, power_max: float
) -> ProtectionLevels:
    """The levels asked of a bidirectional supply whose node stays below ``voltage_max``
    and whose currents stay within ``source_max`` / ``sink_max`` (0: the other's)."""
    source, sink = source_max or sink_max, sink_max or source_max
    return ProtectionLevels(
        ovp=VOLTAGE_TRIP_FACTOR * voltage_max,
        ocp_source=CURRENT_TRIP_FACTOR * source,
        ocp_sink=CURRENT_TRIP_FACTOR * sink,
        power=power_max,
        opp=CURRENT_TRIP_FACTOR * power_max,
    )


class BidirectionalUnit(UnitBase):
    """A bidirectional supply on the bus: both directions, voltage reference."""

    kind = "bidirectional supply"

    def __init__(
        self,
        unit_id: str,
        supply: BidirectionalSupply,
        envelope: UnitEnvelope,
        clock: Clock,
        *,
        name: str = "bidirectional",
        driver_name: str = "",
        safe_off_timeout: float = SAFE_OFF_TIMEOUT_S,
    ) -> None:
        super().__init__(
            unit_id,
            envelope,
            clock,
            [Part(unit_id, name, driver_name or type(supply).__name__.lower(), supply)],
            _bidirectional_capabilities(supply.rating),
            safe_off_timeout=safe_off_timeout,
        )
        self.supply = supply

    def _forget(self) -> None:
        super()._forget()
        self.supply.forget()

    def set_current(self, amps: float) -> None:
        amps = self._check_current(amps)
        env = self._envelope
        what = f"set_current({amps:+g} A)"
        with self._sending() as generation:
            primed = self._primed and self._commanded is Mode.CURRENT
            self.supply.drive_current(
                amps,
                env.voltage_min,
                env.voltage_max,
                primed=primed,
                allowed=lambda: self._still_allowed(generation, what),
            )
            self._commit(Mode.CURRENT, amps)

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        volts, limit, _ = self._check_hold(volts, current_limit, droop, both_directions=True)
        what = f"hold_voltage({volts:g} V)"
        with self._sending() as generation:
            primed = self._primed and self._commanded is Mode.VOLTAGE_REFERENCE
            self.supply.drive_voltage(
                volts,
                limit,
                primed=primed,
                allowed=lambda: self._still_allowed(generation, what),
            )
            self._commit(Mode.VOLTAGE_REFERENCE, volts)

    def idle(self) -> None:
        with self._sending():
            self.supply.stop()
            self._commit(Mode.IDLE, None)

    def arm(self) -> None:
        env = self._envelope
        levels = protection_levels(
            env.voltage_max, env.current_source_max, env.current_sink_max, env.power_max
        )
        with self._sending():
            self.supply.arm_bidirectional(levels)
            self._commit(Mode.IDLE, None)
        log.info("unit %s: armed %s", self._unit_id, self._parts[0].label)

    def read(self) -> Reading:
        t = self._clock.now()
        reading = self.supply.measure()
        return self._reading(
            t,
            bus_voltage=reading.voltage,
            bus_current=reading.current,
            mode=output_mode(reading, self._commanded),
            flags=reading.flags,
        )

    def _safe_off_steps(self) -> list[SafeStep]:
        part = self._parts[0]
        return [SafeStep(part, action, run) for action, run in self.supply.safe_off_actions()]
