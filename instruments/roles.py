"""What a driver offers its unit's adapter, by function: small typed protocols.

The converter and BMS roles are APIS's DC/DC converter and battery interface: its modes
(``ConverterMode``: WAIT, CHARGE, DISCHARGE, VOLTAGE_REFERENCE), its limits word and
meters (the names APIS gives them, from the EZA-2500 it drives: commands 0x1C and 0x09)
and its battery permission (``battery_operation_status``).

The adapters in ``hil.units`` drive a *source supply*, a *load* or a *bidirectional supply*
through these protocols and never see a command string or a driver class; each driver
implements the protocol of its family's ``function`` (``instruments.families``) with its
own commands. Readings are in terminal convention: ``current`` is positive when the
instrument pushes current out of its terminals (sourcing), so a load reports a sunk current
as negative. Flags are short names of the instrument's latched conditions (``OVP``, ``OCP``,
``OTP`` …); ``tripped`` says that one of them switched the output off.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Protocol

from instruments.base import Instrument, Rating
from instruments.wire.apis_bms import operation_status
from instruments.wire.echonet import Connection as EvConnection
from instruments.wire.echonet import OperationMode as EvMode
from instruments.wire.eza2500 import Mode as ConverterMode

__all__ = [
    "Alarm",
    "AlarmStatus",
    "Allowed",
    "BidirectionalSupply",
    "Bms",
    "BmsReading",
    "Converter",
    "ConverterMode",
    "EvCharger",
    "EvConnection",
    "EvMode",
    "EvNotice",
    "EvReading",
    "Limits",
    "Load",
    "Meters",
    "Output",
    "OutputReading",
    "OutputStatus",
    "Permission",
    "ProtectionLevels",
    "Regulation",
    "SafeAction",
    "SourceSupply",
]

#: How the output regulates now; None where the instrument does not say.
Regulation = Literal["current", "voltage"]
#: One best-effort step of making an output safe: what it does (for the record) and how.
SafeAction = tuple[str, Callable[[], None]]
#: Called by a driver before each write that may switch an output on; raises to stop.
Allowed = Callable[[], None]


@dataclass(frozen=True)
class OutputReading:
    """One read of an output: measured voltage and current, state, regulation, flags."""

    voltage: float
    current: float
    on: bool
    regulation: Regulation | None
    tripped: bool
    flags: frozenset[str]


@dataclass(frozen=True)
class OutputStatus:
    """Whether the output is on, and its latched condition flags (one round trip)."""

    on: bool
    flags: frozenset[str]


@dataclass(frozen=True)
class ProtectionLevels:
    """Protection levels an adapter asks for; the driver clips each to what it can set.

    ``ocp_source`` / ``ocp_sink`` (A) are per direction (a driver with one OCP uses the
    larger), ``power`` (W) the power limit and ``opp`` (W) the power trip.
    """

    ovp: float
    ocp_source: float
    ocp_sink: float
    power: float
    opp: float


class Output(Instrument, Protocol):
    """What every adapted instrument offers: identity, lock, readings, safe actions."""

    @property
    def name(self) -> str: ...

    @property
    def rating(self) -> Rating: ...

    def locked(self) -> AbstractContextManager[object]:
        """Hold the driver's lock across several commands (re-entrant)."""
        ...

    def measure(self) -> OutputReading:
        """Voltage, current, state, regulation and flags, in as few round trips as it can."""
        ...

    def output_status(self) -> OutputStatus:
        """Output state and flags in one round trip."""
        ...

    def safe_off_actions(self) -> list[SafeAction]:
        """The steps that make the output safe, most important first."""
        ...


class SourceSupply(Output, Protocol):
    """A unidirectional supply: constant current up to a compliance voltage, or CV."""

    def check_source_protection(
        self, voltage_setting: float, ovp: float, undervoltage_limit: float
    ) -> tuple[float, float]:
        """The (OVP, under-voltage limit) it would set for these requests (no I/O);
        ``ConfigError`` if it cannot protect a supply set to ``voltage_setting``."""
        ...

    def arm_source(self, voltage_setting: float, ovp: float, undervoltage_limit: float) -> None:
        """Output off, current foldback off, voltage at the setting, OVP and UV limit."""
        ...

    def set_output(self, on: bool) -> None: ...

    def set_voltage(self, volts: float) -> None: ...

    def set_current(self, amps: float) -> None: ...


class Load(Output, Protocol):
    """An electronic load: sinks a constant current, or holds a voltage (CV)."""

    def set_input(self, on: bool) -> None: ...

    def select_constant_current(self) -> None:
        """Constant-current regulation (before a sink current is set)."""
        ...

    def set_sink_current(self, amps: float) -> None:
        """The sunk current's magnitude (A)."""
        ...

    def set_turn_on_voltage(self, volts: float) -> None:
        """The input voltage below which the load stops sinking."""
        ...

    def hold_voltage(self, volts: float, current_limit: float) -> None:
        """Constant voltage at ``volts``, sinking at most ``current_limit``."""
        ...


class BidirectionalSupply(Output, Protocol):
    """A regenerative supply: sources and sinks a constant current, or holds a voltage."""

    def arm_bidirectional(self, levels: ProtectionLevels) -> None:
        """Remote, output off, protections and power limits from ``levels`` (clipped)."""
        ...

    def drive_current(
        self, amps: float, voltage_min: float, voltage_max: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """Constant ``amps`` (signed, + sourcing) within the voltage window, output on.

        ``primed``: the supply is already in current mode with the window set (only the
        level changes).
        """
        ...

    def drive_voltage(
        self, volts: float, current_limit: float, *, primed: bool, allowed: Allowed
    ) -> None:
        """Hold ``volts`` with ``current_limit`` in both directions, output on."""
        ...

    def stop(self) -> None:
        """Output off (and, where the supply keeps them, its current levels at zero)."""
        ...

    def forget(self) -> None:
        """Its state is unknown now: the next drive writes every level."""
        ...


class Alarm(IntEnum):
    """A converter's alarm level (EZA-2500: ``cst`` bits 2-3)."""

    NONE = 0
    LIGHT = 1
    HEAVY = 2


@dataclass(frozen=True)
class Meters:
    """Command 0x09 (signed; ``ig`` positive while charging, APIS convention)."""

    vg: float
    ig: float
    vb: float
    ib: float
    wg: float
    wb: float
    ic: float
    tmp: float


@dataclass(frozen=True)
class Limits:
    """Command 0x1C: battery current limit, grid current, and the four voltage limits."""

    cib: float
    dig: float
    ubv: float
    ugv: float
    obv: float
    ogv: float


class Permission(IntEnum):
    """APIS's ``battery_operation_status``: which interchange directions the battery allows.

    The APIS battery's status register yields only NONE (bit 0 set) or BOTH (bit 0 clear)
    (``battery_emulator/__init__.py`` ``check_battery``); the one-direction values are APIS's
    API values, kept so that the adapters can speak of any battery.
    """

    NONE = 0
    CHARGE_ONLY = 1
    DISCHARGE_ONLY = 2
    BOTH = 3

    @classmethod
    def from_status(cls, status: int) -> Permission:
        """The operation status for a status-register word (bit 0 set: NONE, clear: BOTH)."""
        return cls(operation_status(status))

    @property
    def may_charge(self) -> bool:
        return self in (Permission.CHARGE_ONLY, Permission.BOTH)

    @property
    def may_discharge(self) -> bool:
        return self in (Permission.DISCHARGE_ONLY, Permission.BOTH)


@dataclass(frozen=True)
class BmsReading:
    """State of charge in percent, the interchange permission and the raw status word."""

    soc_percent: float
    permission: Permission
    status: int = 0


class AlarmStatus(Protocol):
    """A converter status that tells its alarm level."""

    @property
    def alarm(self) -> Alarm: ...


class Converter(Instrument, Protocol):
    """A DC/DC converter between the bus and a battery, driven as APIS drives it."""

    @property
    def name(self) -> str: ...

    @property
    def rating(self) -> Rating: ...

    @property
    def battery_current_rating(self) -> float:
        """Full scale of the battery current limit ``cib`` (A)."""
        ...

    def field_range(self, name: str) -> tuple[float, float]:
        """The accepted range of a set-point field (``dig``, ``dvg``, ``cib``, ``ogv`` …)."""
        ...

    def mode(self) -> ConverterMode: ...

    def set_mode(self, mode: ConverterMode) -> None: ...

    def status(self) -> AlarmStatus: ...

    def meters(self) -> Meters: ...

    def set_limits(self, limits: Limits) -> Limits: ...

    def set_grid_current(self, dig: float) -> Limits: ...

    def apply(
        self,
        *,
        mode: ConverterMode | None = None,
        dvg: float | None = None,
        drg: float | None = None,
        dig: float | None = None,
    ) -> None:
        """Change any of mode, ``dvg``, ``drg``, ``dig`` in APIS's order."""
        ...

    def clear_alarms(self) -> None: ...


class Bms(Instrument, Protocol):
    """A battery management system: state of charge and interchange permission."""

    def read(self) -> BmsReading: ...


@dataclass(frozen=True)
class EvReading:
    """One read of an EV charger/discharger (V2H), in terminal convention.

    ``voltage``/``current``/``power`` are its DC-bus port's, ``current`` positive while the
    car discharges into the bus; ``connection`` is None until a connection check was made.
    """

    voltage: float
    current: float
    power: float
    soc_percent: float
    remaining_wh: float
    mode: EvMode
    connection: EvConnection | None
    on: bool


@dataclass(frozen=True)
class EvNotice:
    """A change the unit announced by itself (ECHONET Lite INF): property, value, when
    (seconds on the driver's monotonic clock)."""

    t: float
    epc: int
    name: str
    value: str


class EvCharger(Instrument, Protocol):
    """A V2H charger/discharger: charges or discharges a car at a designated current."""

    @property
    def name(self) -> str: ...

    @property
    def rating(self) -> Rating: ...

    def current_range(self, charge: bool) -> tuple[float, float]:
        """The (minimum, maximum) current the unit accepts when charging / discharging."""
        ...

    def power_on(self) -> None:
        """Operation status on (the unit then accepts modes)."""
        ...

    def confirm_connection(self) -> EvConnection:
        """Ask the unit to check the car's connection, then read the result."""
        ...

    def measure(self) -> EvReading: ...

    def start(self, amps: float, *, charge: bool, amount_wh: int = 0) -> None:
        """Charge (``charge``) or discharge at ``amps`` (magnitude); a non-zero
        ``amount_wh`` makes the unit stop by itself after that much energy."""
        ...

    def set_level(self, amps: float, *, charge: bool) -> None:
        """A new designated current while the unit already runs in that direction."""
        ...

    def standby(self) -> None:
        """Stop charging or discharging (operation mode standby)."""
        ...

    def notices(self) -> list[EvNotice]:
        """The announcements received since the last call (oldest first)."""
        ...

    def safe_off_actions(self) -> list[SafeAction]:
        """The steps that make the unit safe, most important first."""
        ...
