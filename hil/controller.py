"""The constant-current controller: one interface for every unit on the bus.

A bench test says "unit A pushes 2 A onto the bus"; the same words drive a supply, a load,
a bidirectional supply or a DC/DC converter with its battery, through an adapter that
implements :class:`CurrentController`. Every current here follows the toolkit's sign
convention: **positive when the unit pushes current into the bus** (sourcing, discharging
its battery), negative when it draws from the bus (sinking, charging).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from hil.envelope import UnitEnvelope


class Mode(StrEnum):
    """What a unit is doing on the bus."""

    IDLE = "idle"  # output off or converter WAIT: no current
    CURRENT = "current"  # constant current, sourcing or sinking
    VOLTAGE_REFERENCE = "voltage_reference"  # holds the bus voltage
    FAULT = "fault"  # a latched protection or alarm keeps it off


@dataclass(frozen=True)
class Capabilities:
    """What a unit's hardware can do, from its instruments' ratings."""

    can_source: bool
    can_sink: bool
    can_hold_voltage: bool
    source_current_max: float  # A, magnitude
    sink_current_max: float  # A, magnitude
    voltage_max: float  # V, bus side
    power_max: float  # W
    has_battery: bool
    hardware_watchdog: bool  # the instrument itself goes safe when the host falls silent
    current_step: float = 0.0  # A, smallest set-point change it can make (0: continuous)


@dataclass(frozen=True)
class InstrumentIdentity:
    """One instrument of a unit, as the report's instrument table shows it."""

    unit: str
    instrument: str
    driver: str
    resource: str
    vendor: str
    model: str
    serial: str
    firmware: str


class Reading(NamedTuple):
    """One timestamped reading of a unit, in the toolkit's sign convention.

    ``bus_current`` is positive when the unit pushes current into the bus;
    ``battery_current`` positive when the battery discharges. ``setpoint`` is the signed
    current set-point in CURRENT mode and the voltage set-point as VOLTAGE_REFERENCE.
    ``flags`` name latched trips and alarms (``"OVP"``, ``"OCP"``, ``"OTP"``, ``"UVLO"``,
    ``"ALARM"``) and permission limits (``"NO_CHARGE"``, ``"NO_DISCHARGE"``).
    A named tuple (immutable, ``_replace`` for a changed copy): every unit read builds one,
    and a tuple is built three times faster than a frozen dataclass.
    """

    unit: str
    t: float
    bus_voltage: float
    bus_current: float
    mode: Mode
    setpoint: float | None = None
    flags: frozenset[str] = frozenset()
    battery_voltage: float | None = None
    battery_current: float | None = None
    soc: float | None = None
    temperature: float | None = None

    @property
    def bus_power(self) -> float:
        """Power pushed into the bus (W), positive when sourcing."""
        return self.bus_voltage * self.bus_current


@runtime_checkable
class CurrentController(Protocol):
    """One unit on the bus, whatever its instruments.

    Every method that sets something checks the unit's envelope and capabilities first
    and raises (``EnvelopeError``, ``CapabilityError``) before anything is sent.
    ``safe_off`` is the exception: best effort, idempotent, bounded in time, never raises.
    """

    @property
    def unit_id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def envelope(self) -> UnitEnvelope: ...

    def identify(self) -> list[InstrumentIdentity]:
        """Vendor, model, serial and firmware of each of the unit's instruments."""
        ...

    def arm(self) -> None:
        """Programme the instruments' own protections and watchdogs from the envelope."""
        ...

    def set_current(self, amps: float) -> None:
        """Constant current, signed (positive pushes into the bus)."""
        ...

    def hold_voltage(self, volts: float, current_limit: float, droop: float = 0.0) -> None:
        """Become the bus voltage reference at ``volts``, limited to ``current_limit`` A."""
        ...

    def idle(self) -> None:
        """No current, safe standby (output off or converter WAIT)."""
        ...

    def read(self) -> Reading:
        """Measure the unit now."""
        ...

    def safe_off(self) -> list[str]:
        """Make every output of the unit safe; return what could not be done (never raises)."""
        ...

    def clear_faults(self) -> None:
        """Clear the latched faults its instruments let a controller clear (a converter's
        alarms); call it only once the cause is gone, before ``arm``."""
        ...

    def reconnect(self) -> None:
        """Reopen every instrument's connection (after a dropped line)."""
        ...

    def close(self) -> None:
        """Release the instruments' connections (does not change their outputs)."""
        ...
