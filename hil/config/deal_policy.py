"""The policy numbers of APIS's deal making (``policy.json``'s mediator and user parts).

:class:`DealPolicy` holds what the agents and the negotiation need beyond the exchange
engine's :class:`~hil.config.apis_policy.ApisPolicy`: the deal current (``mediator.deal.
gridCurrentA``), deal amounts (``amountMinWh``, ``amountMaxWh``, ``amountUnitWh``), the
negotiation timeout, the house-keeping period, the capacity interlock
(``gridCurrentCapacityA`` / deal current), the SoC force-stop limits, the operation mode,
the members and each battery's nominal capacity. Times in seconds, SoC as fractions.

- :func:`read_policy_json` extracts these numbers from APIS's own ``policy.json`` (read
  unchanged, ``//`` comments included); everything else in the file is left to APIS.
- :meth:`DealPolicy.for_bench` takes the unit capacity and force-stop limits from a bench
  file's ``[apis]`` table and each unit's battery capacity from its ``[emulation]`` port,
  so the negotiation and the engine agree.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, cast

from hil.config.apis_json import KeyPath, json_key_path, read_apis_json
from hil.config.apis_policy import (
    DealRule,
    PolicyField,
    deal_number_problem,
    declared_fields,
    policy_field,
)
from hil.config.bench import BenchConfig
from hil.errors import ConfigError

OperationMode = Literal["autonomous", "heteronomous", "stop", "manual"]
OPERATION_MODES: tuple[OperationMode, ...] = ("autonomous", "heteronomous", "stop", "manual")

#: APIS hwConfig ``batteryNominalCapacityWh``.
DEFAULT_BATTERY_WH = 4800.0


#: How :meth:`DealPolicy.problem` checks a declared number: a number > 0 or a whole number
#: of Wh > 0 (the ``kind`` of its :class:`~hil.config.apis_policy.PolicyField`).
_POSITIVE = "number"
_WHOLE = "amount"
_POLICY: Final = "policy.json"
_HW: Final = "hwConfig.json"


@dataclass(frozen=True)
class DealPolicy:
    """APIS's deal-making numbers (units: A, Wh, s, fractions); each field declared once
    (APIS key, kind) with :func:`~hil.config.apis_policy.policy_field`."""

    deal_current: float = policy_field(
        1.0, apis_key="mediator.deal.gridCurrentA", unit="A", file=_POLICY, json="number"
    )
    amount_min_wh: int = policy_field(
        50, apis_key="mediator.deal.amountMinWh", kind=_WHOLE, unit="Wh", file=_POLICY, json="whole"
    )
    amount_max_wh: int = policy_field(
        50, apis_key="mediator.deal.amountMaxWh", kind=_WHOLE, unit="Wh", file=_POLICY, json="whole"
    )
    amount_unit_wh: int = policy_field(
        50,
        apis_key="mediator.deal.amountUnitWh",
        kind=_WHOLE,
        unit="Wh",
        file=_POLICY,
        json="whole",
    )
    negotiation_timeout: float = policy_field(
        2.0, apis_key="mediator.negotiationTimeoutMsec", unit="s", file=_POLICY, json="number"
    )
    house_keeping_period: float = policy_field(
        60.0, apis_key="user.houseKeepingPeriodMsec", unit="s", file=_POLICY, json="number"
    )
    data_acquisition_period: float = policy_field(
        5.0, apis_key="controller.dataAcquisitionPeriodMsec", unit="s", file=_POLICY, json="number"
    )
    unit_current_capacity: float = policy_field(
        2.3, apis_key="gridCurrentCapacityA", unit="A", file=_HW, json="number"
    )
    soc_force_stop_discharge: float = policy_field(
        0.20,
        apis_key="gridMaster.deal.forceStopCondition.dischargeUnitLowerLimitRsoc",
        kind="other",
        file=_POLICY,
        json="percent",
    )
    soc_force_stop_charge: float = policy_field(
        0.95,
        apis_key="gridMaster.deal.forceStopCondition.chargeUnitUpperLimitRsoc",
        kind="other",
        file=_POLICY,
        json="percent",
    )
    operation_mode: OperationMode = field(
        default="autonomous",
        metadata={
            "policy": PolicyField(apis_key="operationMode", kind="other", file=_POLICY, json="mode")
        },
    )
    #: Empty: every battery unit.
    member_unit_ids: tuple[str, ...] = policy_field(
        (), apis_key="memberUnitIds", kind="other", file=_POLICY, json="members"
    )
    battery_capacity_wh: float = policy_field(
        DEFAULT_BATTERY_WH, apis_key="batteryNominalCapacityWh", unit="Wh", file=_HW, json="number"
    )
    unit_battery_wh: Mapping[str, float] = field(default_factory=dict)  # per-unit override

    #: Field → APIS key, for reports and messages (from the declarations).
    APIS_KEYS: ClassVar[Mapping[str, str]]

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            key, text = problem
            raise ConfigError(f"deal policy: {key} ({self.APIS_KEYS.get(key, key)}): {text}")

    def problem(self) -> tuple[str, str] | None:
        """The first broken rule as (field, why), or None."""
        declared = declared_fields(DealPolicy)
        for name, (d, _) in declared.items():
            value = getattr(self, name)
            if d.kind == _POSITIVE and not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                return name, f"{value!r} must be a number > 0"
        for name, (d, _) in declared.items():
            value = getattr(self, name)
            if d.kind == _WHOLE and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                return name, f"{value!r} must be a whole number of Wh > 0"
        deal = deal_number_problem(
            self.amount_min_wh,
            self.amount_max_wh,
            self.amount_unit_wh,
            self.deal_current,
            self.unit_current_capacity,
        )
        if deal is not None:
            return _worded(*deal)
        if not 0 <= self.soc_force_stop_discharge < self.soc_force_stop_charge <= 1:
            return "soc_force_stop_discharge", (
                f"need 0 ≤ {self.soc_force_stop_discharge:g} < "
                f"soc_force_stop_charge {self.soc_force_stop_charge:g} ≤ 1"
            )
        if self.operation_mode not in OPERATION_MODES:
            return "operation_mode", (
                f"{self.operation_mode!r} is not one of {', '.join(OPERATION_MODES)}"
            )
        for uid, wh in self.unit_battery_wh.items():
            if not (math.isfinite(wh) and wh > 0):
                return "battery_capacity_wh", f"unit {uid}: {wh!r} must be > 0"
        return None

    @property
    def deal_interlock_capacity(self) -> int:
        """How many deals a unit may be in at once: ⌊gridCurrentCapacityA / deal current⌋."""
        return math.floor(self.unit_current_capacity / self.deal_current + 1e-9)

    def battery_wh(self, unit_id: str) -> float:
        """The nominal battery capacity of ``unit_id`` (Wh)."""
        return self.unit_battery_wh.get(unit_id, self.battery_capacity_wh)

    def replace(self, **changes: Any) -> DealPolicy:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_bench(cls, config: BenchConfig) -> DealPolicy:
        """The deal-making numbers of a bench file's ``[apis]`` table (``deal_current``,
        ``deal_amount_*_wh``, ``negotiation_timeout``, ``house_keeping_period``; unit data
        is reused for one ``supervisor_period``, APIS's data acquisition period), its
        ``[community]`` members, and :meth:`for_bench`'s capacity, limits and batteries."""
        apis = config.apis
        members = config.community.members if config.community is not None else ()
        return cls(
            deal_current=apis.deal_current,
            amount_min_wh=apis.deal_amount_min_wh,
            amount_max_wh=apis.deal_amount_max_wh,
            amount_unit_wh=apis.deal_amount_unit_wh,
            negotiation_timeout=apis.negotiation_timeout,
            house_keeping_period=apis.house_keeping_period,
            data_acquisition_period=apis.supervisor_period,
            member_unit_ids=members,
            unit_current_capacity=apis.unit_current_capacity,
        ).for_bench(config)

    def for_bench(self, config: BenchConfig) -> DealPolicy:
        """This policy with the bench's unit capacity, force-stop limits and batteries."""
        batteries = {
            uid: float(port.battery_capacity)
            for uid, port in config.emulation.ports.items()
            if port.battery_capacity is not None and config.unit(uid).has_battery
        }
        return dataclasses.replace(
            self,
            unit_current_capacity=config.apis.unit_current_capacity,
            soc_force_stop_discharge=config.apis.soc_force_stop_discharge,
            soc_force_stop_charge=config.apis.soc_force_stop_charge,
            unit_battery_wh=MappingProxyType({**batteries, **self.unit_battery_wh}),
        )

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["unit_battery_wh"] = dict(self.unit_battery_wh)
        out["member_unit_ids"] = list(self.member_unit_ids)
        out["deal_interlock_capacity"] = self.deal_interlock_capacity
        return out


DealPolicy.APIS_KEYS = MappingProxyType(
    {name: d.apis_key for name, (d, _) in declared_fields(DealPolicy).items()}
)


def _worded(rule: DealRule, value: float, limit: float) -> tuple[str, str]:
    """A broken :func:`~hil.config.apis_policy.deal_number_problem` rule as (field, why)."""
    if rule == "amount_min":
        return "amount_min_wh", f"{value:.0f} Wh is above amount_max_wh {limit:.0f} Wh"
    if rule == "amount_unit":
        return "amount_unit_wh", (
            f"{value:.0f} Wh is above amount_max_wh {limit:.0f} Wh, "
            "so every deal would floor to 0 Wh"
        )
    return "deal_current", (
        f"{value:g} A is above the unit capacity {limit:g} A, so no unit could make a deal"
    )


# =========================================================================================
# policy.json
# =========================================================================================


def _shown(value: Any) -> str:
    """A JSON value as the file wrote it, cut short (for error messages)."""
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "an object"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


class _PolicyJson:
    """Pulls typed numbers out of a parsed ``policy.json``; errors name the key path."""

    def __init__(self, data: Any, source: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a policy must be a JSON object")
        self.data = data
        self.source = source

    def get(self, path: KeyPath) -> Any:
        """The value at ``path``, or None if a key on the way is absent. A section on the
        way that is not an object (``"mediator": -1``) and a JSON ``null`` are refused:
        APIS would not read them as "use the default", so neither do we."""
        node: Any = self.data
        for depth, part in enumerate(path):
            if not isinstance(node, dict):
                raise self.fail(path[:depth], f"must be an object (a section), not {_shown(node)}")
            if part not in node:
                return None
            node = node[part]
        if node is None:
            raise self.fail(path, "is null; leave the key out to keep the default")
        return node

    def fail(self, path: KeyPath, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {json_key_path(path)}: {problem}")

    def number(self, path: KeyPath, default: float, scale: float = 1.0) -> float:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, not {value!r}")
        if not value > 0:
            raise self.fail(path, f"{value!r} must be > 0")
        return float(value) * scale

    def whole(self, path: KeyPath, default: int) -> int:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a whole number of Wh, not {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise self.fail(path, f"{value!r} is not a whole number of Wh")
        if value <= 0:
            raise self.fail(path, f"{value!r} must be > 0")
        return int(value)

    def percent(self, path: KeyPath, default: float) -> float:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise self.fail(path, f"{value!r} must be a percentage 0-100")
        return float(value) / 100.0

    def mode(self, path: KeyPath, default: OperationMode) -> OperationMode:
        value = self.get(path)
        if value is None:
            return default
        if value not in OPERATION_MODES:
            raise self.fail(path, f"{value!r} is not one of {', '.join(OPERATION_MODES)}")
        return cast(OperationMode, value)

    def members(self, path: KeyPath) -> tuple[str, ...]:
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(path, "must be an array of unit ids")
        if len(set(value)) != len(value):
            raise self.fail(path, "names a unit more than once")
        return tuple(value)


def _read_declared(data: Any, source: str, base: DealPolicy, file: str) -> DealPolicy:
    """``base`` with every field declared in ``file`` read from ``data``: its APIS key as a
    key path, read as its declaration says (``…Msec`` keys are ms, stored as s)."""
    p = _PolicyJson(data, source)
    values: dict[str, Any] = {}
    for name, (d, _) in declared_fields(DealPolicy).items():
        if d.file != file:
            continue
        path, current = tuple(d.apis_key.split(".")), getattr(base, name)
        if d.json == "number":
            values[name] = p.number(path, current, 1e-3 if path[-1].endswith("Msec") else 1.0)
        elif d.json == "whole":
            values[name] = p.whole(path, current)
        elif d.json == "percent":
            values[name] = p.percent(path, current)
        elif d.json == "mode":
            values[name] = p.mode(path, current)
        elif d.json == "members":
            values[name] = p.members(path) or current
    try:
        return dataclasses.replace(base, **values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_policy_json(
    data: Any, source: str = "<policy>", base: DealPolicy | None = None
) -> DealPolicy:
    """The deal-making numbers of a parsed APIS ``policy.json``; absent keys keep ``base``'s
    (APIS's defaults). ``ConfigError`` names the key path of a bad value."""
    return _read_declared(data, source, base or DealPolicy(), _POLICY)


def read_policy_json(path: str | Path, base: DealPolicy | None = None) -> DealPolicy:
    """Read APIS's ``policy.json`` (comments allowed) into a :class:`DealPolicy`."""
    return parse_policy_json(read_apis_json(path), str(path), base)


def parse_hw_config_json(
    data: Any, source: str = "<hwConfig>", base: DealPolicy | None = None
) -> DealPolicy:
    """``base`` with the unit capacity (``gridCurrentCapacityA``) and battery capacity
    (``batteryNominalCapacityWh``) of a parsed APIS ``hwConfig.json``."""
    return _read_declared(data, source, base or DealPolicy(), _HW)


def read_hw_config_json(path: str | Path, base: DealPolicy | None = None) -> DealPolicy:
    """Read APIS's ``hwConfig.json`` (comments allowed) into ``base``."""
    return parse_hw_config_json(read_apis_json(path), str(path), base)
