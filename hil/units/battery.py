"""Battery emulators: the instruments that stand in for a converter unit's battery.

Sony's single-unit rig has no battery: a DC supply holds the converter's 48 V battery node
and an electronic load runs in **CV just above the supply's voltage**, so that it sinks
whatever the converter pushes into the node (charging) while the supply delivers whatever
the converter takes out (discharging). A bidirectional supply in CV does both alone.

A :class:`BatteryEmulator` is armed with the unit (protections from the battery window,
outputs left off), *energized* before the converter first leaves WAIT (outputs on at the
programmed levels; ``idle()`` leaves it energized, as a real battery stays connected), and
switched off by ``safe_off`` after the converter is in WAIT. Its ``flags`` report a trip
or an output that went off while it should be on (``supply.OVP``, ``load.OFF``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from hil.envelope import UnitEnvelope
from hil.errors import ConfigError
from instruments.roles import OutputStatus

from .base import (
    CURRENT_TRIP_FACTOR,
    VOLTAGE_TRIP_FACTOR,
    Part,
    SafeStep,
    as_bidirectional,
    as_load,
    as_source_supply,
)
from .bidirectional import protection_levels

log = logging.getLogger(__name__)

#: Battery-node voltage when the bench file does not give ``hold_voltage``.
NOMINAL_BATTERY_VOLTAGE = 48.0
#: The load's CV level above the supply's voltage when ``cv_voltage`` is not given.
LOAD_CV_OFFSET = 0.5

#: Called with a description just before a battery instrument is switched on; raises if
#: ``safe_off`` ran meanwhile.
Allowed = Callable[[str], None]


class BatteryEmulator(Protocol):
    """What a converter unit needs from the instruments that emulate its battery."""

    @property
    def parts(self) -> tuple[Part, ...]: ...

    @property
    def energized(self) -> bool: ...

    def arm(self) -> None:
        """Programme levels and protections from the battery window; outputs off."""
        ...

    def energize(self, allowed: Allowed) -> None:
        """Outputs on at the programmed levels (no-op when already on)."""
        ...

    def safe_off_steps(self) -> list[SafeStep]: ...

    def flags(self) -> frozenset[str]:
        """Trips, and outputs that are off while they should be on."""
        ...

    def forget(self) -> None:
        """The instruments' state is unknown: programme everything again next time."""
        ...


@dataclass(frozen=True)
class NodeLevels:
    """How the battery node is held: the voltage, the source current limit, and (for a
    supply + load pair) the load's CV level and its current limit."""

    hold_voltage: float
    current_limit: float
    cv_voltage: float | None = None
    cv_current_limit: float | None = None


def _battery_window(envelope: UnitEnvelope) -> tuple[float, float]:
    low, high = envelope.battery_voltage_min, envelope.battery_voltage_max
    if low is None or high is None:
        raise ConfigError(f"unit {envelope.unit_id}: a converter unit needs a battery window")
    return low, high


def node_levels(
    envelope: UnitEnvelope,
    settings: Mapping[str, object],
    source_current_rating: float,
    *,
    load_settings: Mapping[str, object] | None = None,
    load_current_rating: float | None = None,
) -> NodeLevels:
    """The battery node's levels from the bench file's settings, or defaults.

    Defaults: ``hold_voltage`` 48 V (clipped into the battery window); ``current_limit``
    the smaller of the source's rating and 1.1 x ``power_max`` / ``battery_voltage_min``;
    ``cv_voltage`` 0.5 V above the hold voltage; the load's CV current limit the smaller of
    its rating and 1.1 x ``power_max`` / ``battery_voltage_min``.
    """
    low, high = _battery_window(envelope)
    scope = f"unit {envelope.unit_id} battery node"
    need = CURRENT_TRIP_FACTOR * envelope.power_max / low
    hold = float(
        _number(settings.get("hold_voltage"), min(max(NOMINAL_BATTERY_VOLTAGE, low), high))
    )
    envelope.check_battery_voltage(hold)
    limit = float(_number(settings.get("current_limit"), min(source_current_rating, need)))
    if not 0 < limit <= source_current_rating:
        raise ConfigError(
            f"{scope}: current limit {limit:g} A must be > 0 and within the source's "
            f"{source_current_rating:g} A rating"
        )
    if load_settings is None:
        return NodeLevels(hold, limit)
    cv = float(_number(load_settings.get("cv_voltage"), hold + LOAD_CV_OFFSET))
    if cv <= hold:
        raise ConfigError(
            f"{scope}: the load's CV level {cv:g} V must be above the supply's {hold:g} V, or "
            "the load would sink the supply's current"
        )
    envelope.check_battery_voltage(cv)
    rating = load_current_rating if load_current_rating is not None else need
    return NodeLevels(hold, limit, cv, min(rating, need))


def _number(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"battery node setting {value!r} is not a number")
    return float(value)


def _status_flags(part: Part, status: OutputStatus, energized: bool) -> set[str]:
    """``<name>.<flag>`` for each flag, and ``<name>.OFF`` if it should be on but is not."""
    found = {f"{part.name}.{flag}" for flag in status.flags}
    if energized and not status.on:
        found.add(f"{part.name}.OFF")
    return found


class SupplyLoadBattery:
    """A source supply holding the node in CV and a load in CV just above it."""

    def __init__(
        self,
        envelope: UnitEnvelope,
        supply: Part,
        load: Part,
        levels: NodeLevels,
    ) -> None:
        psu = as_source_supply(supply)
        sink = as_load(load)
        if levels.cv_voltage is None or levels.cv_current_limit is None:
            raise ConfigError(f"unit {envelope.unit_id}: the battery load needs a CV level")
        self._envelope = envelope
        self._supply_part = supply
        self._load_part = load
        self.psu = psu
        self.load = sink
        self.levels = levels
        self._cv = levels.cv_voltage
        self._cv_limit = levels.cv_current_limit
        self._energized = False
        self._primed = False

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self._supply_part, self._load_part)

    @property
    def energized(self) -> bool:
        return self._energized

    def forget(self) -> None:
        self._primed = False
        self._energized = False

    def _program_supply(self) -> None:
        self.psu.set_voltage(self.levels.hold_voltage)
        self.psu.set_current(self.levels.current_limit)

    def arm(self) -> None:
        low, high = _battery_window(self._envelope)
        hold = self.levels.hold_voltage
        try:
            with self.psu.locked():
                self.psu.arm_source(hold, VOLTAGE_TRIP_FACTOR * high, low)
                self.psu.set_current(self.levels.current_limit)
            with self.load.locked():
                self.load.set_input(False)
                self.load.hold_voltage(self._cv, self._cv_limit)
        except BaseException:
            self.forget()
            raise
        self._energized = False
        self._primed = True

    def energize(self, allowed: Allowed) -> None:
        if self._energized:
            return
        try:
            with self.psu.locked():
                allowed(f"switching on {self._supply_part.label}")
                if not self._primed:
                    self._program_supply()
                self.psu.set_output(True)
            with self.load.locked():
                allowed(f"switching on {self._load_part.label}")
                if not self._primed:
                    self.load.hold_voltage(self._cv, self._cv_limit)
                self.load.set_input(True)
        except BaseException:
            self.forget()
            raise
        self._energized = True
        self._primed = True
        log.info("battery node of unit %s energized", self._envelope.unit_id)

    def safe_off_steps(self) -> list[SafeStep]:
        """Each output off: the first safe action of the supply and of the load."""
        supply_action, supply_off = self.psu.safe_off_actions()[0]
        load_action, load_off = self.load.safe_off_actions()[0]
        return [
            SafeStep(self._supply_part, supply_action, supply_off),
            SafeStep(self._load_part, load_action, load_off),
        ]

    def flags(self) -> frozenset[str]:
        found = _status_flags(self._supply_part, self.psu.output_status(), self._energized)
        found |= _status_flags(self._load_part, self.load.output_status(), self._energized)
        return frozenset(found)


class BidirectionalBattery:
    """One bidirectional supply holding the node in CV."""

    def __init__(self, envelope: UnitEnvelope, part: Part, levels: NodeLevels) -> None:
        self._envelope = envelope
        self._part = part
        self.driver = as_bidirectional(part)
        self.levels = levels
        self._energized = False

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self._part,)

    @property
    def energized(self) -> bool:
        return self._energized

    def forget(self) -> None:
        self._energized = False

    def arm(self) -> None:
        _, high = _battery_window(self._envelope)
        limit, power = self.levels.current_limit, self._envelope.power_max
        try:
            self.driver.arm_bidirectional(protection_levels(high, limit, limit, power))
        except BaseException:
            self.forget()
            raise
        self._energized = False

    def energize(self, allowed: Allowed) -> None:
        if self._energized:
            return
        hold, limit = self.levels.hold_voltage, self.levels.current_limit
        what = f"switching on {self._part.label}"
        try:
            self.driver.forget()
            self.driver.drive_voltage(hold, limit, primed=False, allowed=lambda: allowed(what))
        except BaseException:
            self.forget()
            raise
        self._energized = True
        log.info("battery node of unit %s energized", self._envelope.unit_id)

    def safe_off_steps(self) -> list[SafeStep]:
        """The output off: the supply's first safe action."""
        action, run = self.driver.safe_off_actions()[0]
        return [SafeStep(self._part, action, run)]

    def flags(self) -> frozenset[str]:
        return frozenset(_status_flags(self._part, self.driver.output_status(), self._energized))


__all__ = [
    "BatteryEmulator",
    "BidirectionalBattery",
    "NodeLevels",
    "SupplyLoadBattery",
    "node_levels",
]
