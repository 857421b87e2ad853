"""Safety envelopes: the limits that apply to each unit and to the bus.

The first safety layer: every set-point is checked here *before anything is sent* to an
instrument. A refused set-point raises ``EnvelopeError`` (``CapabilityError`` when the unit
cannot do it at all, e.g. a load asked to source) naming the unit, the value, the limit and
the envelope field, so that the message alone says what to change. Envelopes come from the
bench file (``hil.config.benchfile``) and are printed in the report (``as_dict``/``rows``).

Sign convention: a unit's bus current is positive when it pushes current into the bus
(sourcing, discharging) and negative when it draws from it (sinking, charging).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from hil.errors import CapabilityError, ConfigError, EnvelopeError

_REFUSED = "refused before anything was sent"


def _fmt(value: float, unit: str, *, signed: bool = False) -> str:
    return f"{value:+.6g} {unit}" if signed else f"{value:.6g} {unit}"


def _finite(scope: str, what: str, value: float, unit: str) -> float:
    """``value`` as a float if it is a finite number; ``EnvelopeError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError(f"{scope}: {what} {value!r} is not a number; {_REFUSED}")
    number = float(value)
    if not math.isfinite(number):
        raise EnvelopeError(f"{scope}: {what} {number} {unit} is not finite; {_REFUSED}")
    return number


@dataclass(frozen=True)
class UnitEnvelope:
    """Limits of one unit. Voltages in V, currents in A, power in W, slew in A/s, SoC 0-1.

    ``soc_min``/``soc_max`` apply only to units with a battery, ``battery_voltage_*`` only to
    converter units (their battery-side node); both are None otherwise.
    """

    unit_id: str
    voltage_min: float
    voltage_max: float
    current_source_max: float
    current_sink_max: float
    power_max: float
    slew_max: float
    soc_min: float | None = None
    soc_max: float | None = None
    battery_voltage_min: float | None = None
    battery_voltage_max: float | None = None
    can_source: bool = True
    can_sink: bool = True

    #: Fields a bench file (or ``merged``) may set; the rest describe the unit itself.
    LIMIT_FIELDS: ClassVar[tuple[str, ...]] = (
        "voltage_min",
        "voltage_max",
        "current_source_max",
        "current_sink_max",
        "power_max",
        "slew_max",
        "soc_min",
        "soc_max",
        "battery_voltage_min",
        "battery_voltage_max",
    )

    def __post_init__(self) -> None:
        scope = f"envelope of unit {self.unit_id}"
        for name in self.LIMIT_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{scope}: {name} = {value!r} is not a number")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{scope}: {name} = {value} must be finite and ≥ 0")
            object.__setattr__(self, name, float(value))
        for low, high in (
            ("voltage_min", "voltage_max"),
            ("soc_min", "soc_max"),
            ("battery_voltage_min", "battery_voltage_max"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if (lo is None) != (hi is None):
                raise ConfigError(f"{scope}: {low} and {high} must be given together")
            if lo is not None and lo >= hi:
                raise ConfigError(f"{scope}: {low} = {lo:g} must be below {high} = {hi:g}")
        if self.soc_max is not None and self.soc_max > 1:
            raise ConfigError(f"{scope}: soc_max = {self.soc_max:g} must be ≤ 1 (a fraction)")
        if self.power_max <= 0 or self.slew_max <= 0:
            raise ConfigError(f"{scope}: power_max and slew_max must be > 0")
        if not self.can_source and self.current_source_max > 0:
            raise ConfigError(f"{scope}: the unit cannot source, so current_source_max must be 0")
        if not self.can_sink and self.current_sink_max > 0:
            raise ConfigError(f"{scope}: the unit cannot sink, so current_sink_max must be 0")

    @property
    def has_soc_window(self) -> bool:
        return self.soc_min is not None

    def merged(self, overrides: Mapping[str, float | None]) -> UnitEnvelope:
        """A copy with the given limit fields replaced (per-unit overrides); re-validated."""
        unknown = sorted(set(overrides) - set(self.LIMIT_FIELDS))
        if unknown:
            raise ConfigError(
                f"envelope of unit {self.unit_id}: unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.LIMIT_FIELDS)}"
            )
        changes: dict[str, Any] = dict(overrides)
        return dataclasses.replace(self, **changes)

    # -- checks --------------------------------------------------------------------------
    def _scope(self) -> str:
        return f"unit {self.unit_id}"

    def check_current(self, amps: float, *, at_voltage: float | None = None) -> float:
        """Refuse a signed current set-point outside the envelope; returns it as a float.

        With ``at_voltage`` the power ``|amps| x at_voltage`` is checked as well.
        """
        scope = self._scope()
        amps = _finite(scope, "current set-point", amps, "A")
        if amps > 0:
            if not self.can_source:
                raise CapabilityError(
                    f"{scope}: current set-point {_fmt(amps, 'A', signed=True)} asks the unit "
                    f"to source, but it can only sink; {_REFUSED}"
                )
            if amps > self.current_source_max:
                raise EnvelopeError(
                    f"{scope}: current set-point {_fmt(amps, 'A', signed=True)} exceeds the "
                    f"source limit {_fmt(self.current_source_max, 'A')} "
                    f"(envelope current_source_max); {_REFUSED}"
                )
        elif amps < 0:
            if not self.can_sink:
                raise CapabilityError(
                    f"{scope}: current set-point {_fmt(amps, 'A', signed=True)} asks the unit "
                    f"to sink, but it can only source; {_REFUSED}"
                )
            if -amps > self.current_sink_max:
                raise EnvelopeError(
                    f"{scope}: current set-point {_fmt(amps, 'A', signed=True)} exceeds the "
                    f"sink limit {_fmt(self.current_sink_max, 'A')} "
                    f"(envelope current_sink_max); {_REFUSED}"
                )
        if at_voltage is not None:
            volts = _finite(scope, "bus voltage", at_voltage, "V")
            self.check_power(abs(amps) * abs(volts))
        return amps

    def check_voltage(self, volts: float) -> float:
        """Refuse a bus voltage set-point (voltage reference) outside the unit's window."""
        scope = self._scope()
        volts = _finite(scope, "voltage set-point", volts, "V")
        if volts < self.voltage_min:
            raise EnvelopeError(
                f"{scope}: voltage set-point {_fmt(volts, 'V')} is below the limit "
                f"{_fmt(self.voltage_min, 'V')} (envelope voltage_min); {_REFUSED}"
            )
        if volts > self.voltage_max:
            raise EnvelopeError(
                f"{scope}: voltage set-point {_fmt(volts, 'V')} is above the limit "
                f"{_fmt(self.voltage_max, 'V')} (envelope voltage_max); {_REFUSED}"
            )
        return volts

    def check_power(self, watts: float) -> float:
        """Refuse a power (either direction) above ``power_max``."""
        scope = self._scope()
        watts = _finite(scope, "power", watts, "W")
        if abs(watts) > self.power_max:
            raise EnvelopeError(
                f"{scope}: power {_fmt(abs(watts), 'W')} exceeds the limit "
                f"{_fmt(self.power_max, 'W')} (envelope power_max); {_REFUSED}"
            )
        return watts

    def check_battery_voltage(self, volts: float) -> float:
        """Refuse a battery-side voltage (e.g. a battery emulator's level) outside its window."""
        scope = self._scope()
        volts = _finite(scope, "battery-side voltage", volts, "V")
        if self.battery_voltage_min is None or self.battery_voltage_max is None:
            raise CapabilityError(f"{scope}: the unit has no battery side; {_REFUSED}")
        if not self.battery_voltage_min <= volts <= self.battery_voltage_max:
            raise EnvelopeError(
                f"{scope}: battery-side voltage {_fmt(volts, 'V')} is outside "
                f"{self.battery_voltage_min:g}-{self.battery_voltage_max:g} V "
                f"(envelope battery_voltage_min/max); {_REFUSED}"
            )
        return volts

    def check_soc(self, soc: float, amps: float = 0.0) -> float:
        """Refuse discharging (``amps`` > 0) below ``soc_min`` or charging above ``soc_max``.

        Units without a battery have no SoC window and pass.
        """
        scope = self._scope()
        soc = _finite(scope, "state of charge", soc, "")
        amps = _finite(scope, "current set-point", amps, "A")
        if not 0.0 <= soc <= 1.0:
            raise EnvelopeError(
                f"{scope}: state of charge {soc:g} is not a fraction in 0-1; {_REFUSED}"
            )
        if self.soc_min is None or self.soc_max is None:
            return soc
        if amps > 0 and soc < self.soc_min:
            raise EnvelopeError(
                f"{scope}: discharging at state of charge {soc:.4g} is below the limit "
                f"{self.soc_min:.4g} (envelope soc_min); {_REFUSED}"
            )
        if amps < 0 and soc > self.soc_max:
            raise EnvelopeError(
                f"{scope}: charging at state of charge {soc:.4g} is above the limit "
                f"{self.soc_max:.4g} (envelope soc_max); {_REFUSED}"
            )
        return soc

    def min_ramp_time(self, from_amps: float, to_amps: float) -> float:
        """The shortest time (s) in which the current may move from one value to another."""
        scope = self._scope()
        start = _finite(scope, "current", from_amps, "A")
        end = _finite(scope, "current", to_amps, "A")
        return abs(end - start) / self.slew_max

    def check_slew(self, from_amps: float, to_amps: float, seconds: float) -> None:
        """Refuse a current change faster than ``slew_max`` A/s."""
        scope = self._scope()
        seconds = _finite(scope, "ramp time", seconds, "s")
        needed = self.min_ramp_time(from_amps, to_amps)
        if needed == 0:
            return
        if seconds <= 0 or needed > seconds:
            rate = math.inf if seconds <= 0 else abs(to_amps - from_amps) / seconds
            raise EnvelopeError(
                f"{scope}: current change {_fmt(from_amps, 'A', signed=True)} → "
                f"{_fmt(to_amps, 'A', signed=True)} in {seconds:g} s is {rate:.6g} A/s, above "
                f"the limit {_fmt(self.slew_max, 'A/s')} (envelope slew_max); {_REFUSED}"
            )

    # -- report --------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("unit_id", *self.LIMIT_FIELDS)} | {
            "can_source": self.can_source,
            "can_sink": self.can_sink,
        }


@dataclass(frozen=True)
class BusEnvelope:
    """Limits of the bus: voltage window (V), balance allowance per unit in an exchange
    (A), maximum sum of exchange currents (A) and branch capacities (A, by branch id)."""

    voltage_min: float
    voltage_max: float
    balance_allowance_per_unit: float
    exchange_current_sum_max: float
    branch_capacity: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("voltage_min", "voltage_max", "balance_allowance_per_unit"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"bus envelope: {name} = {value} must be finite and ≥ 0")
        if not 0 < self.voltage_min < self.voltage_max:
            raise ConfigError(
                f"bus envelope: voltage window {self.voltage_min:g}-{self.voltage_max:g} V "
                "must satisfy 0 < voltage_min < voltage_max"
            )
        if not math.isfinite(self.exchange_current_sum_max) or self.exchange_current_sum_max <= 0:
            raise ConfigError("bus envelope: exchange_current_sum_max must be finite and > 0")
        for branch, amps in self.branch_capacity.items():
            if not math.isfinite(amps) or amps <= 0:
                raise ConfigError(f"bus envelope: capacity of branch {branch} must be > 0")
        object.__setattr__(self, "branch_capacity", MappingProxyType(dict(self.branch_capacity)))

    def check_voltage(self, volts: float) -> float:
        volts = _finite("bus", "voltage", volts, "V")
        if not self.voltage_min <= volts <= self.voltage_max:
            raise EnvelopeError(
                f"bus: voltage {_fmt(volts, 'V')} is outside the window "
                f"{self.voltage_min:g}-{self.voltage_max:g} V (bus envelope voltage_min/max)"
            )
        return volts

    def check_exchange_sum(self, total_amps: float) -> float:
        """Refuse a set of exchanges whose currents (magnitudes) sum above the maximum."""
        total = _finite("bus", "sum of exchange currents", total_amps, "A")
        if abs(total) > self.exchange_current_sum_max:
            raise EnvelopeError(
                f"bus: sum of exchange currents {_fmt(abs(total), 'A')} exceeds the limit "
                f"{_fmt(self.exchange_current_sum_max, 'A')} "
                f"(bus envelope exchange_current_sum_max); {_REFUSED}"
            )
        return total

    def balance_limit(self, n_units: int) -> float:
        """The allowed |Σ currents| when ``n_units`` units take part in exchanges."""
        if n_units < 0:
            raise ValueError(f"number of units must be ≥ 0, got {n_units}")
        return self.balance_allowance_per_unit * n_units

    def check_balance(self, residual_amps: float, n_units: int) -> float:
        """Refuse a balance residual |Σ currents| above the allowance x units."""
        residual = _finite("bus", "balance residual", residual_amps, "A")
        limit = self.balance_limit(n_units)
        if abs(residual) > limit:
            raise EnvelopeError(
                f"bus: balance residual {_fmt(residual, 'A', signed=True)} exceeds "
                f"{_fmt(limit, 'A')} ({n_units} units x "
                f"{self.balance_allowance_per_unit:g} A, bus envelope "
                "balance_allowance_per_unit)"
            )
        return residual

    def check_branch(self, branch: str, amps: float) -> float:
        """Refuse a branch current (magnitude) above the branch's capacity."""
        if branch not in self.branch_capacity:
            known = ", ".join(sorted(self.branch_capacity)) or "none configured"
            raise EnvelopeError(f"bus: unknown branch {branch!r}; allowed: {known}")
        amps = _finite(f"branch {branch}", "current", amps, "A")
        limit = self.branch_capacity[branch]
        if abs(amps) > limit:
            raise EnvelopeError(
                f"branch {branch}: current {_fmt(abs(amps), 'A')} exceeds its capacity "
                f"{_fmt(limit, 'A')} (topology capacity); {_REFUSED}"
            )
        return amps

    def as_dict(self) -> dict[str, Any]:
        return {
            "voltage_min": self.voltage_min,
            "voltage_max": self.voltage_max,
            "balance_allowance_per_unit": self.balance_allowance_per_unit,
            "exchange_current_sum_max": self.exchange_current_sum_max,
            "branch_capacity": dict(self.branch_capacity),
        }


@dataclass(frozen=True)
class Envelope:
    """The bus envelope and every unit's envelope; checks take the unit id."""

    bus: BusEnvelope
    units: Mapping[str, UnitEnvelope]

    def __post_init__(self) -> None:
        for unit_id, unit in self.units.items():
            if unit.unit_id != unit_id:
                raise ConfigError(f"envelope keyed {unit_id!r} belongs to unit {unit.unit_id!r}")
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))

    def unit(self, unit_id: str) -> UnitEnvelope:
        try:
            return self.units[unit_id]
        except KeyError:
            known = ", ".join(self.units) or "none"
            raise EnvelopeError(f"unknown unit {unit_id!r}; allowed: {known}") from None

    def merged(self, unit_id: str, overrides: Mapping[str, float | None]) -> Envelope:
        """A copy with one unit's envelope overridden."""
        units = dict(self.units)
        units[unit_id] = self.unit(unit_id).merged(overrides)
        return Envelope(self.bus, units)

    def check_current(self, unit_id: str, amps: float, *, at_voltage: float | None = None) -> float:
        return self.unit(unit_id).check_current(amps, at_voltage=at_voltage)

    def check_voltage(self, unit_id: str, volts: float) -> float:
        """A voltage-reference set-point: inside the unit's window and the bus window."""
        volts = self.unit(unit_id).check_voltage(volts)
        return self.bus.check_voltage(volts)

    def check_power(self, unit_id: str, watts: float) -> float:
        return self.unit(unit_id).check_power(watts)

    def check_soc(self, unit_id: str, soc: float, amps: float = 0.0) -> float:
        return self.unit(unit_id).check_soc(soc, amps)

    def check_slew(self, unit_id: str, from_amps: float, to_amps: float, seconds: float) -> None:
        self.unit(unit_id).check_slew(from_amps, to_amps, seconds)

    def check_bus_voltage(self, volts: float) -> float:
        return self.bus.check_voltage(volts)

    def check_exchange_sum(self, total_amps: float) -> float:
        return self.bus.check_exchange_sum(total_amps)

    def check_balance(self, residual_amps: float, n_units: int) -> float:
        return self.bus.check_balance(residual_amps, n_units)

    def check_branch(self, branch: str, amps: float) -> float:
        return self.bus.check_branch(branch, amps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bus": self.bus.as_dict(),
            "units": {unit_id: env.as_dict() for unit_id, env in self.units.items()},
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """(scope, limit, value with unit) rows for the report's envelope table."""
        units = {
            "voltage_min": "V",
            "voltage_max": "V",
            "current_source_max": "A",
            "current_sink_max": "A",
            "power_max": "W",
            "slew_max": "A/s",
            "soc_min": "",
            "soc_max": "",
            "battery_voltage_min": "V",
            "battery_voltage_max": "V",
            "balance_allowance_per_unit": "A",
            "exchange_current_sum_max": "A",
        }
        rows: list[tuple[str, str, str]] = []
        for name, value in self.bus.as_dict().items():
            if name == "branch_capacity":
                rows.extend(
                    (f"branch {b}", "capacity", f"{a:g} A") for b, a in sorted(value.items())
                )
            else:
                rows.append(("bus", name, f"{value:g} {units[name]}".strip()))
        for unit_id, env in self.units.items():
            for name in UnitEnvelope.LIMIT_FIELDS:
                value = getattr(env, name)
                if value is not None:
                    rows.append((f"unit {unit_id}", name, f"{value:g} {units[name]}".strip()))
        return rows
