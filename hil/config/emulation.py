"""The emulated twin part of a bench file: the ``[emulation]`` table.

Plant parameters per port (battery capacity and state of charge, converter losses, line
resistance, sensor errors, an optional household of PV and load on the battery side), line
resistance per topology branch, the random seed, the time of day at which the plant starts
and how serial instruments are exposed. The same file describes the real bench; this part is
only read by the emulator (``hil emulate``). Every unit has a port, at defaults when the
file gives none: an APIS battery of 4800 Wh at SoC 0.5 and apis-emulator's converter losses.

The plain dataclasses it fills live in :mod:`instruments.emulation.description` (the
emulator reads them without importing ``hil``); they are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast

from hil.config.toml_source import Table
from instruments.emulation.description import (
    DAY_S,
    PERMISSIONS,
    TIMING_MODES,
    WEATHERS,
    EmulatedPort,
    EmulationConfig,
    HouseholdConfig,
    Permission,
    SensorErrors,
    TimingMode,
    Weather,
)

if TYPE_CHECKING:
    from hil.config.bench import Topology, UnitConfig

__all__ = [
    "DAY_S",
    "PERMISSIONS",
    "WEATHERS",
    "EmulatedPort",
    "EmulationConfig",
    "HouseholdConfig",
    "Permission",
    "SensorErrors",
    "Weather",
    "household_seed",
    "read_emulation",
]

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def household_seed(emulation_seed: int, unit_id: str) -> int:
    """The default seed of a unit's household: derived from the emulation seed and the unit
    id, so that every house differs and the same bench always gives the same day."""
    digest = hashlib.sha256(f"{emulation_seed}/{unit_id}/household".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def read_emulation(
    table: Table | None, units: tuple[UnitConfig, ...], topology: Topology | None
) -> EmulationConfig:
    """Read ``[emulation]`` (absent: every port at its defaults) for the loaded units."""
    by_id = {u.id: u for u in units}
    ports: dict[str, EmulatedPort] = {}
    branch_r: dict[str, float] = {}
    seed = 0
    start_of_day = 0.0
    timing: TimingMode | None = None
    transport: Literal["tcp", "pty"] = "tcp"
    if table is not None:
        seed = table.integer("seed", 0, minimum=0, maximum=2**63 - 1)
        start_of_day = _read_time_of_day(table, "start_of_day")
        transport = cast(
            Literal["tcp", "pty"],
            table.string("serial_transport", "tcp", choices=("tcp", "pty")),
        )
        timing = _read_timing(table)
        for unit_id, port_table in table.named_tables("ports"):
            unit = by_id.get(unit_id)
            if unit is None:
                raise port_table.error(None, f"no unit {unit_id!r} on this bench", ", ".join(by_id))
            ports[unit_id] = _read_port(port_table, unit, seed)
        for branch_id, branch_table in table.named_tables("branches"):
            if topology is None or branch_id not in topology.branches:
                known = "" if topology is None else ", ".join(topology.branches)
                raise branch_table.error(
                    None,
                    f"no branch {branch_id!r} in [topology]",
                    known or "branches defined under [topology.branches]",
                )
            branch_r[branch_id] = branch_table.req_number(
                "line_resistance", minimum=0.0, maximum=1e3
            )
            branch_table.finish()
        table.finish()
    for unit in units:
        if unit.id not in ports:
            ports[unit.id] = default_port(unit)
    if topology is not None:
        for branch_id in topology.branches:
            branch_r.setdefault(branch_id, 0.0)
    return EmulationConfig(
        seed=seed,
        serial_transport=transport,
        ports=MappingProxyType({u.id: ports[u.id] for u in units}),
        branch_line_resistance=MappingProxyType(branch_r),
        declared=table is not None,
        start_of_day=start_of_day,
        timing=timing,
    )


def _read_timing(table: Table) -> TimingMode | None:
    """``timing = "real" | "none"`` (absent: None, decided by the emulator's clock)."""
    if not table.has("timing"):
        return None
    return cast(TimingMode, table.string("timing", choices=TIMING_MODES))


def _read_time_of_day(table: Table, key: str) -> float:
    """``"HH:MM"``, ``"HH:MM:SS"`` or seconds after midnight (0 ≤ s < 86400); 0 if absent."""
    allowed = '"HH:MM" or "HH:MM:SS" (00:00 to 23:59:59), or seconds after midnight, 0 ≤ s < 86400'
    if not table.has(key):
        return 0.0
    value = table.data[key]
    if isinstance(value, str):
        match = _CLOCK.fullmatch(value.strip())
        if match is None:
            raise table.error(key, f"{value!r} is not a time of day", allowed)
        hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise table.error(key, f"{value!r} is not a time of day", allowed)
        return float(hours * 3600 + minutes * 60 + seconds)
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "boolean" if isinstance(value, bool) else type(value).__name__
        raise table.error(key, f"expected a time of day, got {kind} {value!r}", allowed)
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number < DAY_S):
        raise table.error(key, f"{value!r} s is not a time of day", allowed)
    return number


def default_port(unit: UnitConfig) -> EmulatedPort:
    """A port at the defaults: APIS battery (4800 Wh, SoC 0.5) and apis-emulator losses."""
    battery = unit.has_battery
    converter = unit.kind == "converter"
    return EmulatedPort(
        unit_id=unit.id,
        battery_capacity=4800.0 if battery else None,
        soc=0.5 if battery else None,
        battery_resistance=0.05 if battery else None,
        permission="both" if battery else None,
        loss_standby=4.5 if converter else None,
        loss_charge=71.0 if converter else None,
        loss_discharge=55.0 if converter else None,
    )


def _read_port(table: Table, unit: UnitConfig, emulation_seed: int) -> EmulatedPort:
    default = default_port(unit)
    line_r = table.opt_number("line_resistance", 0.0, minimum=0.0, maximum=1e3)
    sensor = _read_sensor(table.table("sensor"))
    household = None
    if unit.has_battery:
        house_table = table.table("household")
        if house_table is not None:
            household = _read_household(house_table, unit, emulation_seed)
    else:
        table.forbid(
            "household",
            f"unit {unit.id} has no battery (no BMS); a household sits on a battery",
        )
    battery_keys = ("battery_capacity", "soc", "battery_resistance", "permission")
    loss_keys = ("loss_standby", "loss_charge", "loss_discharge")
    values: dict[str, Any] = {}
    if unit.has_battery:
        values["battery_capacity"] = table.opt_number(
            "battery_capacity", 4800.0, minimum=0.0, min_open=True, maximum=1e7
        )
        values["soc"] = table.opt_number("soc", 0.5, minimum=0.0, maximum=1.0)
        values["battery_resistance"] = table.opt_number(
            "battery_resistance", 0.05, minimum=0.0, maximum=100.0
        )
        values["permission"] = table.string("permission", "both", choices=PERMISSIONS)
    else:
        for key in battery_keys:
            table.forbid(key, f"unit {unit.id} has no battery (no BMS)")
    if unit.kind == "converter":
        for key in loss_keys:
            values[key] = table.opt_number(key, getattr(default, key), minimum=0.0, maximum=1e4)
    else:
        for key in loss_keys:
            table.forbid(key, f"unit {unit.id} is not a converter (kind {unit.kind})")
    values["timing"] = _read_timing(table)
    table.finish()
    return dataclasses.replace(
        default, line_resistance=line_r, sensor=sensor, household=household, **values
    )


def _read_household(table: Table, unit: UnitConfig, emulation_seed: int) -> HouseholdConfig:
    pv_peak = table.req_number("pv_peak_w", minimum=0.0, maximum=1e5)
    weather = cast(Weather, table.string("weather", choices=WEATHERS))
    load = table.req_number("load_wh_per_day", minimum=0.0, maximum=1e6)
    seed = table.integer(
        "seed", household_seed(emulation_seed, unit.id), minimum=0, maximum=2**63 - 1
    )
    reserve = table.opt_number(
        "reserve_soc", 0.10, minimum=0.0, min_open=True, maximum=1.0, max_open=True
    )
    full = table.opt_number(
        "full_soc", 0.98, minimum=0.0, min_open=True, maximum=1.0, max_open=True
    )
    if full <= reserve:
        key = "full_soc" if table.has("full_soc") else "reserve_soc"
        raise table.error(
            key,
            f"full_soc {full:g} must be above reserve_soc {reserve:g}",
            "0 < reserve_soc < full_soc < 1",
        )
    table.finish()
    return HouseholdConfig(
        pv_peak_w=pv_peak,
        weather=weather,
        load_wh_per_day=load,
        seed=seed,
        reserve_soc=reserve,
        full_soc=full,
    )


def _read_sensor(table: Table | None) -> SensorErrors:
    if table is None:
        return SensorErrors()
    values = {
        "voltage_offset": table.opt_number("voltage_offset", 0.0, minimum=-100.0, maximum=100.0),
        "voltage_gain": table.opt_number("voltage_gain", 0.0, minimum=-0.5, maximum=0.5),
        "voltage_noise": table.opt_number("voltage_noise", 0.0, minimum=0.0, maximum=100.0),
        "voltage_step": table.opt_number("voltage_step", 0.0, minimum=0.0, maximum=100.0),
        "current_offset": table.opt_number("current_offset", 0.0, minimum=-100.0, maximum=100.0),
        "current_gain": table.opt_number("current_gain", 0.0, minimum=-0.5, maximum=0.5),
        "current_noise": table.opt_number("current_noise", 0.0, minimum=0.0, maximum=100.0),
        "current_step": table.opt_number("current_step", 0.0, minimum=0.0, maximum=100.0),
    }
    table.finish()
    return SensorErrors(**values)
