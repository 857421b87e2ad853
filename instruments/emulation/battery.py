"""Battery chemistry for the plant: the open-circuit voltage as a function of state of charge.

The plant models a battery as an EMF equal to ``OCV(SoC)`` behind an internal resistance;
its stored energy is ``SoC x capacity`` and changes by ``-OCV x i x dt`` (``i`` positive when
the battery pushes current into its node). This module only holds the OCV table; the
integration lives in :mod:`instruments.emulation.plant`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from instruments.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OcvCurve:
    """Open-circuit voltage against state of charge, linearly interpolated.

    ``points`` are ``(soc, volts)`` pairs with SoC strictly increasing from exactly 0 to
    exactly 1 and voltages non-decreasing (a rising OCV keeps the cell model monotone). The
    battery that uses a curve validates it (so the error names the battery).
    """

    points: tuple[tuple[float, float], ...]

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` naming ``where`` if the table is impossible."""
        pts = self.points
        if len(pts) < 2:
            raise ConfigError(f"{where}: ocv needs at least two (soc, volts) points, got {pts!r}")
        for k, (soc, volts) in enumerate(pts):
            if not (math.isfinite(soc) and math.isfinite(volts)):
                raise ConfigError(f"{where}: ocv point {k} = {(soc, volts)!r} is not finite")
            if volts <= 0:
                raise ConfigError(f"{where}: ocv point {k} has volts {volts!r}; must be > 0")
        socs = [p[0] for p in pts]
        if socs[0] != 0.0 or socs[-1] != 1.0:
            raise ConfigError(f"{where}: ocv SoC must run from 0 to 1, got {socs[0]}..{socs[-1]}")
        for k in range(1, len(pts)):
            if socs[k] <= socs[k - 1]:
                raise ConfigError(f"{where}: ocv SoC must strictly increase (point {k})")
            if pts[k][1] < pts[k - 1][1]:
                raise ConfigError(f"{where}: ocv volts must not decrease with SoC (point {k})")

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[float]]) -> OcvCurve:
        """Build from any sequence of ``(soc, volts)`` pairs (e.g. a TOML array)."""
        return cls(tuple((float(s), float(v)) for s, v in pairs))

    @classmethod
    def constant(cls, volts: float) -> OcvCurve:
        """A flat curve (useful for analytic checks)."""
        return cls(((0.0, volts), (1.0, volts)))

    @property
    def socs(self) -> FloatArray:
        """The SoC breakpoints as an array."""
        return np.array([p[0] for p in self.points], dtype=np.float64)

    @property
    def volts(self) -> FloatArray:
        """The voltages at the breakpoints as an array."""
        return np.array([p[1] for p in self.points], dtype=np.float64)

    def __call__(self, soc: float) -> float:
        """OCV at one state of charge (clamped to the table's ends)."""
        return float(np.interp(soc, self.socs, self.volts))


DEFAULT_OCV = OcvCurve(
    (
        (0.00, 44.0),
        (0.05, 46.4),
        (0.10, 47.5),
        (0.20, 48.5),
        (0.30, 49.2),
        (0.40, 49.8),
        (0.50, 50.4),
        (0.60, 51.0),
        (0.70, 51.7),
        (0.80, 52.4),
        (0.90, 53.2),
        (1.00, 54.0),
    )
)
"""A plausible 48 V-class lithium-ion pack (about 44 V empty, 54 V full)."""
