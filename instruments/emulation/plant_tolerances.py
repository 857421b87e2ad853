"""Numerical tolerances shared by the plant's step kernels (``docs/plant.md``, solver).

Several parts of one step use the same numbers: the converters' battery sides and the
households are both constant-power terminals checked against one relative tolerance, and the
battery limits and household thresholds sit one SoC band inside their nominal levels. All of
them are our own numerical choices, not instrument facts.
"""

from __future__ import annotations

INJECTION_RTOL = 1e-5
"""A constant-power terminal's current is settled when it moves less than this (relative)."""

SOC_BAND = 1e-7
"""SoC limits and household thresholds act this far inside their nominal level, so a battery
held at a limit stays on its side of it instead of chattering across."""

TINY = 1e-200
"""Added to divisors that may be zero (a rate, a conductance) to keep the division finite."""
