"""What a driver offers its unit's adapter, by function: small typed protocols.

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
from typing import Literal, Protocol

from instruments.base import Instrument, Rating

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
