"""Tolerant access to the fields of a record line, shared by the report model's parts.

A record may come from a crashed run or an older writer: these helpers turn a field into
text, a finite number, a mapping, a list or a float array, treating a value of the wrong
type as absent instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def text(value: Any, default: str = "") -> str:
    """A field as display text; None and containers of nothing become ``default``."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def number(value: Any) -> float | None:
    """A finite number, or None for anything else (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def mapping(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def sequence(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def floats(value: Any) -> FloatArray:
    """A list of numbers as a float array; anything not a number becomes NaN."""
    items = sequence(value)
    out = np.full(len(items), np.nan)
    for i, item in enumerate(items):
        x = number(item)
        if x is not None:
            out[i] = x
    return out
