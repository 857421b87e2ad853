"""A bench-file unit as read, before its envelope is settled, and its envelope limits.

The bench-file loader (:mod:`hil.config.benchfile`) reads every unit into a :class:`UnitDraft`
first: the units' envelopes depend on the bus, the APIS policy and ``[default_envelope]``,
and a draft keeps the key path of everything it holds, so that a later check can still
point at the line that set it. :func:`read_envelope_table` reads ``[default_envelope]``
and ``[units.envelope]`` into :class:`Limit` values that remember where they came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hil.config.bench import InstrumentConfig, Kind
from hil.config.toml_source import KeyPath, Table
from hil.envelope import UnitEnvelope

#: The envelope keys a bench file may set, in the order of :class:`UnitEnvelope`.
ENVELOPE_KEYS = UnitEnvelope.LIMIT_FIELDS


@dataclass
class Limit:
    """An envelope value and where it came from (for error messages)."""

    value: float | None
    origin: KeyPath | None  # the key that set it, or None when derived
    why: str = ""  # how a derived value was computed


@dataclass
class UnitDraft:
    """One ``[[units]]`` table as read: its instruments and envelope overrides, located."""

    table_path: KeyPath
    id: str
    kind: Kind
    description: str
    instruments: list[InstrumentConfig]
    instrument_paths: dict[str, KeyPath]
    branch: str | None
    branch_path: KeyPath
    large_capacity: bool
    overrides: dict[str, Limit]

    @property
    def has_battery(self) -> bool:
        return any(i.function == "bms" for i in self.instruments)


def optional_of(limits: Mapping[str, Limit], key: str) -> float | None:
    """The value of limit ``key``, or None when it is not set."""
    limit = limits.get(key)
    return None if limit is None else limit.value


def value_of(limits: Mapping[str, Limit], key: str) -> float:
    """The value of limit ``key``, which must be set."""
    value = optional_of(limits, key)
    assert value is not None, key
    return value


def read_envelope_table(table: Table | None) -> dict[str, Limit]:
    """Envelope limits given in ``[default_envelope]`` or ``[units.envelope]``."""
    if table is None:
        return {}
    limits: dict[str, Limit] = {}
    for key in ENVELOPE_KEYS:
        if key.startswith("soc_"):
            value = table.number(key, None, minimum=0.0, maximum=1.0)
        elif key in ("power_max", "slew_max"):
            value = table.number(key, None, minimum=0.0, min_open=True, maximum=1e7)
        else:
            value = table.number(key, None, minimum=0.0, maximum=1e5)
        if value is not None:
            limits[key] = Limit(value, table.key_path(key))
    table.finish()
    for low, high in (
        ("voltage_min", "voltage_max"),
        ("soc_min", "soc_max"),
        ("battery_voltage_min", "battery_voltage_max"),
    ):
        lo, hi = limits.get(low), limits.get(high)
        if lo and hi and lo.value is not None and hi.value is not None and lo.value >= hi.value:
            raise table.error(
                low, f"{lo.value:g} is not below {high} = {hi.value:g}", f"{low} < {high}"
            )
    return limits
