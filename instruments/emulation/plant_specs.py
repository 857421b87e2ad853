"""Configuration of the simulated plant: nodes, ports, ratings; validated on construction.

Every spec is a frozen dataclass. Impossible values (negative capacity, SoC outside 0..1, a
current limit below zero, NaN anywhere) raise :class:`hil.errors.ConfigError` naming the
port (or node) and the field. Initial set-points live in the specs too, so a plant can be
built already running (handy for tests and for bench files).

Sign convention (the whole plant): a port's current is positive when it pushes current INTO
its node (a supply sourcing, a battery discharging, a converter discharging onto the bus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import ClassVar

from instruments.emulation.battery import DEFAULT_OCV, OcvCurve
from instruments.emulation.household import HouseholdProfile
from instruments.emulation.sensors import Sensors
from instruments.errors import ConfigError

STIFF_OHM = 1e-3
"""Default output resistance of an 'ideal' voltage-controlled stage (1 mOhm)."""


class ConverterMode(StrEnum):
    """The four APIS operating modes of a DC/DC converter (EZA-2500 codes in ``code``)."""

    WAIT = "WAIT"
    VOLTAGE_REFERENCE = "VOLTAGE_REFERENCE"
    CHARGE = "CHARGE"
    DISCHARGE = "DISCHARGE"

    @property
    def code(self) -> int:
        """The EZA-2500 mode word APIS writes for this mode."""
        return _MODE_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> ConverterMode:
        """The mode for an EZA-2500 mode word; :class:`ConfigError` if unknown."""
        for mode, value in _MODE_CODES.items():
            if value == code:
                return mode
        raise ConfigError(f"unknown converter mode code 0x{code:04X}")


_MODE_CODES = {
    ConverterMode.WAIT: 0x0000,
    ConverterMode.VOLTAGE_REFERENCE: 0x0014,
    ConverterMode.CHARGE: 0x0041,
    ConverterMode.DISCHARGE: 0x0002,
}


class TripKind(StrEnum):
    """Latched protection trips."""

    OVP = "OVP"
    """Over-voltage: terminal voltage above the level (a battery: SoC reached its maximum)."""
    OCP = "OCP"
    """Over-current: |current| above the level."""
    UVLO = "UVLO"
    """Under-voltage lock-out: terminal voltage below the level while the port is active
    (a battery: SoC reached its minimum while discharging)."""
    OTP = "OTP"
    """Over-temperature: temperature above the level."""


class LoadMode(StrEnum):
    """Electronic load regulation modes."""

    CC = "CC"
    CV = "CV"


class BidirectionalMode(StrEnum):
    """Bidirectional supply regulation modes."""

    CV = "CV"
    CC = "CC"


def check_number(
    where: str,
    field: str,
    value: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as float or raise :class:`ConfigError` naming ``where`` and ``field``.

    ``minimum`` is inclusive unless ``strict``; ``maximum`` is inclusive.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {field} = {value!r} is not a number")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ConfigError(f"{where}: {field} = {value!r} is not a finite number")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        rel = ">" if strict else ">="
        raise ConfigError(f"{where}: {field} = {value!r}; must be {rel} {minimum}")
    if maximum is not None and v > maximum:
        raise ConfigError(f"{where}: {field} = {value!r}; must be <= {maximum}")
    return v


@dataclass(frozen=True)
class Protection:
    """Trip levels of one terminal; ``None`` disables that trip.

    ``ocp_a`` applies to current pushed into the node (sourcing) and, unless
    ``ocp_sink_a`` is given, also to current drawn from it; ``ocp_sink_a`` is a separate
    sink-direction level (EA PSB 10000: sink OCP register 569 beside source OCP 553).
    """

    ovp_v: float | None = None
    ocp_a: float | None = None
    uvlo_v: float | None = None
    otp_c: float | None = None
    ocp_sink_a: float | None = None

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` for NaN or negative levels."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                lowest = None if f.name == "otp_c" else 0.0
                check_number(where, f"{f.name}", value, minimum=lowest)

    def level(self, kind: TripKind) -> float | None:
        """The level of ``kind`` (``None`` when disabled)."""
        value: float | None = getattr(self, _PROTECTION_FIELDS[kind])
        return value

    def with_level(self, kind: TripKind, level: float | None) -> Protection:
        """A copy with ``kind`` set to ``level``."""
        return replace(self, **{_PROTECTION_FIELDS[kind]: level})


_PROTECTION_FIELDS = {
    TripKind.OVP: "ovp_v",
    TripKind.OCP: "ocp_a",
    TripKind.UVLO: "uvlo_v",
    TripKind.OTP: "otp_c",
}


@dataclass(frozen=True)
class ThermalSpec:
    """First-order thermal model: ``T -> ambient + kelvin_per_watt x heat`` with ``tau``.

    Heat is the converter loss for converters, ``I^2 R`` for batteries, the absorbed power
    for loads and sinks, and ``|P| (1 - efficiency) / efficiency`` for sources.
    """

    ambient_c: float = 25.0
    time_constant_s: float = 300.0
    kelvin_per_watt: float = 0.05
    efficiency: float = 0.9

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` if impossible."""
        check_number(where, "thermal.ambient_c", self.ambient_c, minimum=-273.15)
        check_number(where, "thermal.time_constant_s", self.time_constant_s, minimum=0, strict=True)
        check_number(where, "thermal.kelvin_per_watt", self.kelvin_per_watt, minimum=0)
        check_number(where, "thermal.efficiency", self.efficiency, minimum=0, strict=True)
        check_number(where, "thermal.efficiency", self.efficiency, maximum=1)


@dataclass(frozen=True)
class ConverterLosses:
    """Converter loss ``= fixed(mode) + fraction(direction) x |grid power|`` in watts.

    Defaults are the APIS emulator's figures: 4.5 W standby (WAIT), 71 W charging, 55 W
    discharging (and in VOLTAGE_REFERENCE, as the APIS emulator does). A fixed plus a
    proportional part gives an efficiency that rises with load; see :meth:`from_efficiency`.
    """

    standby_w: float = 4.5
    charge_w: float = 71.0
    discharge_w: float = 55.0
    charge_fraction: float = 0.0
    discharge_fraction: float = 0.0

    @classmethod
    def from_efficiency(
        cls, charge: float, discharge: float, *, standby_w: float = 4.5, fixed_w: float = 0.0
    ) -> ConverterLosses:
        """Losses of a converter with constant efficiencies (0 < eta <= 1) plus ``fixed_w``.

        Discharging, the battery supplies ``P_grid / eta``; charging, it receives
        ``|P_grid| x eta``.
        """
        for name, eta in (("charge", charge), ("discharge", discharge)):
            check_number("converter losses", f"{name} efficiency", eta, minimum=0, strict=True)
            check_number("converter losses", f"{name} efficiency", eta, maximum=1)
        return cls(
            standby_w=standby_w,
            charge_w=fixed_w,
            discharge_w=fixed_w,
            charge_fraction=1.0 - charge,
            discharge_fraction=1.0 / discharge - 1.0,
        )

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` if any figure is negative or NaN."""
        for f in fields(self):
            check_number(where, f"losses.{f.name}", getattr(self, f.name), minimum=0)

    def coefficients(self, mode: ConverterMode) -> tuple[float, float]:
        """``(fixed W, fraction of |grid power|)`` in ``mode``."""
        if mode is ConverterMode.WAIT:
            return self.standby_w, 0.0
        if mode is ConverterMode.CHARGE:
            return self.charge_w, self.charge_fraction
        return self.discharge_w, self.discharge_fraction


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """An electrical node: the shared bus or a battery-side node.

    ``capacitance_f`` (> 0) makes the node's voltage continuous, so a bus nobody holds
    decays through ``bleed_ohm`` (``None`` = no bleed resistor) toward 0 V. The node starts
    at ``voltage_v``, or (``None``) at the operating point of the plant's initial settings
    (a battery node at its battery's voltage, a bus nobody holds at 0 V).
    """

    name: str
    capacitance_f: float = 1e-3
    bleed_ohm: float | None = 10_000.0
    voltage_v: float | None = None

    def __post_init__(self) -> None:
        where = f"node {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"node name {self.name!r} must be a non-empty string")
        check_number(where, "capacitance_f", self.capacitance_f, minimum=0, strict=True)
        if self.bleed_ohm is not None:
            check_number(where, "bleed_ohm", self.bleed_ohm, minimum=0, strict=True)
        if self.voltage_v is not None:
            check_number(where, "voltage_v", self.voltage_v)


@dataclass(frozen=True, kw_only=True)
class PortSpec:
    """What every port has: where it attaches, slew, line resistance, trips, sensors, heat.

    ``slew_a_per_s`` limits how fast its current clamps move, ``slew_v_per_s`` how fast its
    voltage set-point moves (``inf`` = instantly). ``line_ohm`` is the cable between the
    port and its node (branch topology), so terminal voltages differ slightly between ports.
    """

    kind: ClassVar[str] = "port"

    name: str
    node: str
    slew_a_per_s: float = math.inf
    slew_v_per_s: float = math.inf
    line_ohm: float = 0.0
    protection: Protection = Protection()
    sensors: Sensors = field(default_factory=Sensors)
    thermal: ThermalSpec = ThermalSpec()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"port name {self.name!r} must be a non-empty string")
        if not isinstance(self.node, str) or not self.node:
            raise ConfigError(f"{self.where}: node {self.node!r} must be a non-empty string")
        w = self.where
        check_number(w, "slew_a_per_s", self.slew_a_per_s, minimum=0, strict=True, allow_inf=True)
        check_number(w, "slew_v_per_s", self.slew_v_per_s, minimum=0, strict=True, allow_inf=True)
        check_number(w, "line_ohm", self.line_ohm, minimum=0)
        self.protection.validate(f"{w}: protection")
        self.sensors.validate(w)
        self.thermal.validate(w)
        self._validate_kind()

    @property
    def where(self) -> str:
        """How error messages name this port."""
        return f"port {self.name!r} ({self.kind})"

    def _validate_kind(self) -> None:
        """Kind-specific checks (ratings and initial set-points)."""

    def _check_output_ohm(self, value: float) -> None:
        check_number(self.where, "output_ohm", value, minimum=0, strict=True)


@dataclass(frozen=True, kw_only=True)
class CurrentSourceSpec(PortSpec):
    """Constant-current source: pushes ``current_a`` until its terminal reaches compliance."""

    kind: ClassVar[str] = "current_source"

    max_current_a: float
    compliance_v: float
    current_a: float = 0.0
    output_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_current_a", self.max_current_a, minimum=0)
        check_number(w, "compliance_v", self.compliance_v, minimum=0)
        check_number(w, "current_a", self.current_a, minimum=0, maximum=self.max_current_a)
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class CurrentSinkSpec(PortSpec):
    """Constant-current sink: draws ``current_a`` while its terminal is above ``min_voltage_v``."""

    kind: ClassVar[str] = "current_sink"

    max_current_a: float
    min_voltage_v: float = 0.0
    current_a: float = 0.0
    output_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_current_a", self.max_current_a, minimum=0)
        check_number(w, "min_voltage_v", self.min_voltage_v, minimum=0)
        check_number(w, "current_a", self.current_a, minimum=0, maximum=self.max_current_a)
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class VoltageReferenceSpec(PortSpec):
    """Voltage reference: CV at ``voltage_v`` with a symmetric current limit and droop."""

    kind: ClassVar[str] = "voltage_reference"

    max_voltage_v: float
    max_current_a: float
    voltage_v: float = 0.0
    current_limit_a: float | None = None
    droop_ohm: float = 0.0
    output_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_voltage_v", self.max_voltage_v, minimum=0)
        check_number(w, "max_current_a", self.max_current_a, minimum=0)
        check_number(w, "voltage_v", self.voltage_v, minimum=0, maximum=self.max_voltage_v)
        if self.current_limit_a is not None:
            check_number(
                w, "current_limit_a", self.current_limit_a, minimum=0, maximum=self.max_current_a
            )
        check_number(w, "droop_ohm", self.droop_ohm, minimum=0)
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class SupplySpec(PortSpec):
    """Programmable supply with CV/CC crossover.

    Sources up to ``current_a``; holds ``voltage_v`` when the bus would rise above it.
    """

    kind: ClassVar[str] = "supply"

    max_voltage_v: float
    max_current_a: float
    voltage_v: float = 0.0
    current_a: float = 0.0
    output_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_voltage_v", self.max_voltage_v, minimum=0)
        check_number(w, "max_current_a", self.max_current_a, minimum=0)
        check_number(w, "voltage_v", self.voltage_v, minimum=0, maximum=self.max_voltage_v)
        check_number(w, "current_a", self.current_a, minimum=0, maximum=self.max_current_a)
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class LoadSpec(PortSpec):
    """Electronic load.

    CC: draws ``level`` amps while its terminal is above ``von_v``. CV: sinks whatever holds
    its terminal at ``level`` volts (up to ``max_current_a``).
    """

    kind: ClassVar[str] = "load"

    max_current_a: float
    max_voltage_v: float
    mode: LoadMode = LoadMode.CC
    level: float = 0.0
    von_v: float = 0.0
    input_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_current_a", self.max_current_a, minimum=0)
        check_number(w, "max_voltage_v", self.max_voltage_v, minimum=0)
        if not isinstance(self.mode, LoadMode):
            raise ConfigError(f"{w}: mode = {self.mode!r}; must be one of CC, CV")
        top = self.max_current_a if self.mode is LoadMode.CC else self.max_voltage_v
        check_number(w, "level", self.level, minimum=0, maximum=top)
        check_number(w, "von_v", self.von_v, minimum=0, maximum=self.max_voltage_v)
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class BidirectionalSpec(PortSpec):
    """Bidirectional supply (source and sink).

    CV: holds ``voltage_v`` sourcing up to ``source_limit_a`` and sinking up to
    ``sink_limit_a``. CC: pushes the signed ``current_a``; sourcing stops at ``high_voltage_v``,
    sinking stops at ``low_voltage_v``. This is also the plant's bidirectional constant-current
    port.
    """

    kind: ClassVar[str] = "bidirectional"

    max_voltage_v: float
    max_source_a: float
    max_sink_a: float
    mode: BidirectionalMode = BidirectionalMode.CV
    voltage_v: float = 0.0
    source_limit_a: float = 0.0
    sink_limit_a: float = 0.0
    current_a: float = 0.0
    low_voltage_v: float = 0.0
    high_voltage_v: float | None = None
    output_on: bool = False
    output_ohm: float = STIFF_OHM

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "max_voltage_v", self.max_voltage_v, minimum=0)
        check_number(w, "max_source_a", self.max_source_a, minimum=0)
        check_number(w, "max_sink_a", self.max_sink_a, minimum=0)
        if not isinstance(self.mode, BidirectionalMode):
            raise ConfigError(f"{w}: mode = {self.mode!r}; must be one of CV, CC")
        check_number(w, "voltage_v", self.voltage_v, minimum=0, maximum=self.max_voltage_v)
        check_number(w, "source_limit_a", self.source_limit_a, minimum=0, maximum=self.max_source_a)
        check_number(w, "sink_limit_a", self.sink_limit_a, minimum=0, maximum=self.max_sink_a)
        check_number(w, "current_a", self.current_a, minimum=-self.max_sink_a)
        check_number(w, "current_a", self.current_a, maximum=self.max_source_a)
        check_number(w, "low_voltage_v", self.low_voltage_v, minimum=0)
        if self.high_voltage_v is not None:
            check_number(
                w, "high_voltage_v", self.high_voltage_v, minimum=0, maximum=self.max_voltage_v
            )
        self._check_output_ohm(self.output_ohm)


@dataclass(frozen=True, kw_only=True)
class ConverterSpec(PortSpec):
    """Bidirectional DC/DC converter (EZA-2500 class) joining ``battery_node`` to ``node``.

    Bus side, by mode: WAIT no current; VOLTAGE_REFERENCE holds ``voltage_v`` with droop,
    current limited to ``grid_current_a``; DISCHARGE pushes ``grid_current_a`` onto the bus
    until it reaches ``grid_high_v``; CHARGE draws ``grid_current_a`` until the bus falls to
    ``grid_low_v``. Battery side: draws ``grid power + loss`` (constant power; below
    ``min_battery_v`` the draw falls linearly to zero, so a dead battery node cannot blow up).
    ``protection`` applies to the bus side (and OTP to the converter),
    ``battery_protection`` to the battery side. Built in: the battery side trips UVLO below
    ``min_battery_v`` while the converter runs, and OVP above ``max_battery_v`` always.
    """

    kind: ClassVar[str] = "converter"

    battery_node: str
    max_grid_current_a: float = 7.8125
    max_grid_voltage_v: float = 450.0
    losses: ConverterLosses = ConverterLosses()
    battery_protection: Protection = Protection()
    min_battery_v: float = 20.0
    max_battery_v: float = 60.0
    output_ohm: float = STIFF_OHM
    mode: ConverterMode = ConverterMode.WAIT
    voltage_v: float = 350.0
    droop_ohm: float = 0.0
    grid_current_a: float = 0.0
    grid_low_v: float = 0.0
    grid_high_v: float | None = None

    def _validate_kind(self) -> None:
        w = self.where
        if not isinstance(self.battery_node, str) or not self.battery_node:
            raise ConfigError(f"{w}: battery_node {self.battery_node!r} must be a node name")
        if self.battery_node == self.node:
            raise ConfigError(f"{w}: battery_node and node are both {self.node!r}")
        check_number(w, "max_grid_current_a", self.max_grid_current_a, minimum=0)
        check_number(w, "max_grid_voltage_v", self.max_grid_voltage_v, minimum=0, strict=True)
        self.losses.validate(w)
        self.battery_protection.validate(f"{w}: battery_protection")
        check_number(w, "min_battery_v", self.min_battery_v, minimum=0, strict=True)
        check_number(w, "max_battery_v", self.max_battery_v, minimum=self.min_battery_v)
        self._check_output_ohm(self.output_ohm)
        if not isinstance(self.mode, ConverterMode):
            raise ConfigError(f"{w}: mode = {self.mode!r}; must be a ConverterMode")
        vmax = self.max_grid_voltage_v
        check_number(w, "voltage_v", self.voltage_v, minimum=0, maximum=vmax)
        check_number(w, "droop_ohm", self.droop_ohm, minimum=0)
        check_number(
            w, "grid_current_a", self.grid_current_a, minimum=0, maximum=self.max_grid_current_a
        )
        check_number(w, "grid_low_v", self.grid_low_v, minimum=0, maximum=vmax)
        if self.grid_high_v is not None:
            check_number(w, "grid_high_v", self.grid_high_v, minimum=0, maximum=vmax)


@dataclass(frozen=True, kw_only=True)
class HouseholdSpec:
    """A household (rooftop PV and house load) on a battery's node.

    Its net power ``PV - load`` flows into the battery node as a constant-power terminal.
    At or below ``reserve_soc`` the battery carries no more of the load (the rest is bought
    from the utility); at or above ``full_soc`` it takes no more PV (the rest is curtailed).
    ``soc_min < reserve_soc < full_soc < soc_max`` of the battery is required, so a household
    never takes its battery to the BMS cut-off.
    """

    profile: HouseholdProfile
    reserve_soc: float = 0.10
    full_soc: float = 0.98

    def validate(self, where: str, soc_min: float, soc_max: float) -> None:
        """Raise :class:`ConfigError` naming ``where`` if impossible for a battery's SoC window."""
        if not isinstance(self.profile, HouseholdProfile):
            raise ConfigError(
                f"{where}: household.profile must be a HouseholdProfile, "
                f"got {type(self.profile).__name__}"
            )
        check_number(where, "household.reserve_soc", self.reserve_soc, minimum=0, maximum=1)
        check_number(where, "household.full_soc", self.full_soc, minimum=0, maximum=1)
        if not soc_min < self.reserve_soc < self.full_soc < soc_max:
            raise ConfigError(
                f"{where}: household reserve_soc {self.reserve_soc} and full_soc "
                f"{self.full_soc} must satisfy soc_min {soc_min} < reserve_soc < full_soc < "
                f"soc_max {soc_max}"
            )


@dataclass(frozen=True, kw_only=True)
class BatterySpec(PortSpec):
    """Battery: EMF ``ocv(SoC)`` behind ``r_internal_ohm``; energy ``SoC x capacity_wh``.

    Its BMS disconnects it (a latched trip) when SoC reaches ``soc_min`` while discharging
    (UVLO) or ``soc_max`` while charging (OVP); ``connected`` is its contactor. An optional
    ``household`` (PV and load) sits on its node.
    """

    kind: ClassVar[str] = "battery"

    capacity_wh: float
    soc: float
    r_internal_ohm: float = 0.05
    ocv: OcvCurve = DEFAULT_OCV
    soc_min: float = 0.0
    soc_max: float = 1.0
    connected: bool = True
    household: HouseholdSpec | None = None

    def _validate_kind(self) -> None:
        w = self.where
        check_number(w, "capacity_wh", self.capacity_wh, minimum=0, strict=True)
        check_number(w, "soc", self.soc, minimum=0, maximum=1)
        check_number(w, "r_internal_ohm", self.r_internal_ohm, minimum=0, strict=True)
        check_number(w, "soc_min", self.soc_min, minimum=0, maximum=1)
        check_number(w, "soc_max", self.soc_max, minimum=0, maximum=1)
        if self.soc_min >= self.soc_max:
            raise ConfigError(f"{w}: soc_min {self.soc_min} must be below soc_max {self.soc_max}")
        if not isinstance(self.ocv, OcvCurve):
            raise ConfigError(f"{w}: ocv must be an OcvCurve, got {type(self.ocv).__name__}")
        self.ocv.validate(f"{w}")
        if self.household is not None:
            if not isinstance(self.household, HouseholdSpec):
                raise ConfigError(
                    f"{w}: household must be a HouseholdSpec, got {type(self.household).__name__}"
                )
            self.household.validate(w, self.soc_min, self.soc_max)


AnyPortSpec = (
    CurrentSourceSpec
    | CurrentSinkSpec
    | VoltageReferenceSpec
    | SupplySpec
    | LoadSpec
    | BidirectionalSpec
    | ConverterSpec
    | BatterySpec
)
"""Every concrete port kind."""
