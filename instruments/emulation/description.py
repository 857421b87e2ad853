"""What the emulator needs to know about a bench, as plain data and small protocols.

The emulator (``instruments.emulation``) sits below ``hil`` and never imports it: ``hil``'s
bench-file loader builds these dataclasses for the ``[emulation]`` table, and its
``BenchConfig`` / ``UnitConfig`` / ``InstrumentConfig`` satisfy the read-only protocols
below, so the emulator reads exactly the fields listed here and nothing else of ``hil``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from instruments.families import InstrumentRating

TimingMode = Literal["real", "none"]
TIMING_MODES: tuple[TimingMode, ...] = ("real", "none")

Permission = Literal["none", "charge", "discharge", "both"]
PERMISSIONS: tuple[Permission, ...] = ("none", "charge", "discharge", "both")
Weather = Literal["sunny", "cloudy", "rainy"]
WEATHERS: tuple[Weather, ...] = ("sunny", "cloudy", "rainy")
DAY_S = 86_400.0


@dataclass(frozen=True)
class SensorErrors:
    """Measurement errors of an emulated port: offsets (V, A), relative gain errors, noise
    (standard deviation, V and A) and quantisation steps (V, A; 0 = none)."""

    voltage_offset: float = 0.0
    voltage_gain: float = 0.0
    voltage_noise: float = 0.0
    voltage_step: float = 0.0
    current_offset: float = 0.0
    current_gain: float = 0.0
    current_noise: float = 0.0
    current_step: float = 0.0


@dataclass(frozen=True)
class HouseholdConfig:
    """A household on a unit's battery side: rooftop PV (``pv_peak_w``, clear-sky peak in W,
    and the day's ``weather``), a house load of ``load_wh_per_day``, the ``seed`` of its
    synthetic profiles, the SoC at or below which the load it cannot carry is bought from the
    utility (``reserve_soc``) and the SoC at or above which surplus PV is curtailed
    (``full_soc``)."""

    pv_peak_w: float
    weather: Weather
    load_wh_per_day: float
    seed: int
    reserve_soc: float = 0.10
    full_soc: float = 0.98


@dataclass(frozen=True)
class EmulatedPort:
    """Plant parameters of one unit's port in the emulator.

    Battery fields are set only for units with a battery; converter losses (W, standby /
    charging / discharging, as apis-emulator uses) only for converter units.
    """

    unit_id: str
    line_resistance: float = 0.0
    sensor: SensorErrors = field(default_factory=SensorErrors)
    battery_capacity: float | None = None
    soc: float | None = None
    battery_resistance: float | None = None
    permission: Permission | None = None
    loss_standby: float | None = None
    loss_charge: float | None = None
    loss_discharge: float | None = None
    household: HouseholdConfig | None = None
    #: This unit's instruments' timing (``"real"``/``"none"``); None: the bench's.
    timing: TimingMode | None = None


@dataclass(frozen=True)
class EmulationConfig:
    """The emulated twin: random seed, how serial instruments are exposed (``"tcp"``: a
    loopback socket, ``"pty"``: a pseudo-terminal), per-port plant parameters (every unit
    has one, with defaults when the file gives none), per-branch line resistance (Ω) and
    the time of day at plant time 0 (``start_of_day``, seconds after midnight). ``timing``:
    ``"real"`` (instruments take their models' processing and line times), ``"none"``
    (they answer at once) or None (real under a wall clock, none under a sim clock)."""

    seed: int
    serial_transport: Literal["tcp", "pty"]
    ports: Mapping[str, EmulatedPort]
    branch_line_resistance: Mapping[str, float]
    declared: bool = True
    start_of_day: float = 0.0
    timing: TimingMode | None = None


class BatteryWindow(Protocol):
    """A unit's battery-side voltage window (V), None where the bench file gives none."""

    @property
    def battery_voltage_min(self) -> float | None: ...

    @property
    def battery_voltage_max(self) -> float | None: ...


class InstrumentDescription(Protocol):
    """One instrument of a unit: its family (``driver``), model rating and settings."""

    @property
    def key(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def driver(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def node(self) -> Literal["bus", "battery"]: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...

    @property
    def rating(self) -> InstrumentRating: ...


class UnitDescription(Protocol):
    """One unit on the bus: its instruments, branch and battery window."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def branch(self) -> str | None: ...

    @property
    def instruments(self) -> Sequence[InstrumentDescription]: ...

    @property
    def envelope(self) -> BatteryWindow: ...


class BenchDescription(Protocol):
    """A bench to emulate: its name, the file it came from, its units and plant data."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def units(self) -> Sequence[UnitDescription]: ...

    @property
    def emulation(self) -> EmulationConfig: ...
