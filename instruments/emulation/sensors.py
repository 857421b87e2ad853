"""Measurement model of the plant's instruments: what a meter reports for a true value.

``measured = quantise(true x (1 + gain_error) + offset + runtime_offset + noise)`` where the
noise is Gaussian from the plant's single seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from instruments.errors import ConfigError

QUANTITIES = (
    "voltage",
    "current",
    "temperature",
    "battery_voltage",
    "battery_current",
    "soc",
)
"""Every measured quantity a port can have (converters use the ``battery_*`` ones)."""


@dataclass(frozen=True)
class SensorSpec:
    """Error model of one measured quantity.

    ``offset`` in the quantity's unit, ``gain_error`` relative (0.001 = reads 0.1 % high),
    ``noise_sd`` the standard deviation of Gaussian noise, ``resolution`` the quantisation
    step (0 = none).
    """

    offset: float = 0.0
    gain_error: float = 0.0
    noise_sd: float = 0.0
    resolution: float = 0.0
    # Derived once, for :meth:`apply` (every instrument query goes through it).
    _scale: float = field(init=False, repr=False, compare=False)
    _noisy: bool = field(init=False, repr=False, compare=False)
    _stepped: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_scale", 1.0 + self.gain_error)
        object.__setattr__(self, "_noisy", self.noise_sd > 0)
        object.__setattr__(self, "_stepped", self.resolution > 0)

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` (port and quantity) if impossible."""
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise ConfigError(f"{where}.{f.name} = {value!r} is not a finite number")
        if self.noise_sd < 0:
            raise ConfigError(f"{where}.noise_sd = {self.noise_sd!r}; must be >= 0")
        if self.resolution < 0:
            raise ConfigError(f"{where}.resolution = {self.resolution!r}; must be >= 0")
        if self.gain_error <= -1:
            raise ConfigError(f"{where}.gain_error = {self.gain_error!r}; must be > -1")

    def apply(self, true_value: float, rng: np.random.Generator, extra_offset: float) -> float:
        """The reading of ``true_value``; draws one normal sample only if there is noise."""
        value = true_value * self._scale + self.offset + extra_offset
        if self._noisy:
            value += float(rng.normal(0.0, self.noise_sd))
        if self._stepped:
            value = round(value / self.resolution) * self.resolution
        return value


@dataclass(frozen=True)
class Sensors:
    """The error model of every quantity a port measures (ideal by default)."""

    voltage: SensorSpec = SensorSpec()
    current: SensorSpec = SensorSpec()
    temperature: SensorSpec = SensorSpec()
    battery_voltage: SensorSpec = SensorSpec()
    battery_current: SensorSpec = SensorSpec()
    soc: SensorSpec = SensorSpec()

    def validate(self, where: str) -> None:
        """Validate every sensor, naming ``where.sensors.<quantity>``."""
        for name in QUANTITIES:
            getattr(self, name).validate(f"{where}: sensors.{name}")

    def spec(self, quantity: str) -> SensorSpec:
        """The model of ``quantity`` (one of :data:`QUANTITIES`)."""
        if quantity not in QUANTITIES:
            raise ConfigError(f"unknown measured quantity {quantity!r}; one of {QUANTITIES}")
        spec: SensorSpec = getattr(self, quantity)
        return spec
