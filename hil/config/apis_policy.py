"""APIS policy numbers, as a bench file's ``[apis]`` table configures them.

Every number the exchange engine and the supervisor need from APIS's ``policy.json`` and
``hwConfig.json``, with APIS's defaults (see ``shared/reference/apis-control.md``). Names
are Pythonic; each field's comment gives the APIS key, so that a user who knows APIS
recognises it. Times are in seconds (APIS uses ms), SoC limits are fractions (APIS: %).
The bus numbers (operation voltage, window, balance allowance, sum of deal currents) are
given once, in the bench file's ``[bus]`` table, and copied here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hil.config.toml_source import Table
from hil.envelope import BusEnvelope

#: How ``[apis]`` reads a field: ``bus`` comes from ``[bus]`` (not settable here),
#: ``number`` a float within bounds, ``count`` an integer 0-100, ``amount`` a whole Wh;
#: ``other`` is checked by its own rule (a mode, a list, a fraction pair).
FieldKind = Literal["bus", "number", "count", "amount", "other"]


@dataclass(frozen=True)
class PolicyField:
    """How one policy number is declared: its APIS key, how ``[apis]`` reads it (kind and
    bounds), its unit and a note for the docs. The one declaration parsing, validation,
    :attr:`ApisPolicy.APIS_KEYS` and the ``[apis]`` table of ``docs/bench-file.md`` use."""

    apis_key: str
    kind: FieldKind = "number"
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    note: str = ""
    #: False where ``apis_key`` names no APIS key (a toolkit number): the docs show the note.
    apis: bool = True
    #: The APIS JSON file that carries ``apis_key`` (as a dotted path) and how its value
    #: reads there (:mod:`hil.config.deal_policy`); "" where no file is read.
    file: Literal["", "policy.json", "hwConfig.json"] = ""
    json: Literal["", "number", "whole", "percent", "mode", "members"] = ""

    def bounds(self) -> dict[str, Any]:
        """The bounds as :meth:`~hil.config.toml_source.Table.opt_number` and ``integer``
        take them."""
        if self.kind == "count":
            return {"minimum": 0, "maximum": 100}
        if self.kind == "amount":
            return {"minimum": 1, "maximum": 1_000_000}
        out: dict[str, Any] = {"minimum": self.minimum, "maximum": self.maximum}
        if self.min_open:
            out["min_open"] = True
        return out


def policy_field(default: Any = dataclasses.MISSING, **declared: Any) -> Any:
    """A dataclass field carrying its :class:`PolicyField` declaration in its metadata."""
    return dataclasses.field(default=default, metadata={"policy": PolicyField(**declared)})


def declared_fields(cls: type) -> dict[str, tuple[PolicyField, Any]]:
    """Each declared field of a policy dataclass: name → (declaration, default)."""
    return {
        f.name: (f.metadata["policy"], f.default)
        for f in dataclasses.fields(cls)
        if "policy" in f.metadata
    }


@dataclass(frozen=True)
class ApisPolicy:
    """The APIS policy of a bench (units: V, A, s, fractions); each field declared once."""

    operation_voltage: float = policy_field(
        apis_key="operationGridVoltageV", kind="bus", unit="V"
    )  # from [bus] nominal_voltage
    voltage_range_min: float = policy_field(
        apis_key="operationGridVoltageVRange.min", kind="bus", unit="V"
    )  # from [bus] voltage_min
    voltage_range_max: float = policy_field(
        apis_key="operationGridVoltageVRange.max", kind="bus", unit="V"
    )  # from [bus] voltage_max
    balance_allowance_per_unit: float = policy_field(
        apis_key="safety.sumOfDealingUnitGridCurrentAllowancePerUnitA", kind="bus", unit="A"
    )
    deal_current_sum_max: float = policy_field(
        apis_key="safety.sumOfDealGridCurrentMaxA", kind="bus", unit="A"
    )  # from [bus] exchange_current_sum_max
    voltage_separation: float = policy_field(
        10.0, apis_key="gridVoltageSeparationV", unit="V", minimum=0.0, min_open=True, maximum=100.0
    )
    voltage_allowance: float = policy_field(
        4.0, apis_key="gridVoltageAllowanceV", unit="V", minimum=0.0, min_open=True, maximum=100.0
    )
    uvlo_mask: float = policy_field(
        10.0, apis_key="gridUvloMaskV", unit="V", minimum=0.0, maximum=100.0
    )
    current_step: float = policy_field(
        1.0, apis_key="gridCurrentStepA", unit="A", minimum=0.0, min_open=True, maximum=100.0
    )
    current_allowance: float = policy_field(
        0.125, apis_key="gridCurrentAllowanceA", unit="A", minimum=0.0, min_open=True, maximum=10.0
    )  # hwConfig
    unit_current_capacity: float = policy_field(
        2.3, apis_key="gridCurrentCapacityA", unit="A", minimum=0.0, min_open=True, maximum=1000.0
    )  # hwConfig
    compensation_drift_allowance: float = policy_field(
        0.03,
        apis_key="gridMaster.currentCompensation.driftAllowanceA",
        unit="A",
        minimum=0.0,
        min_open=True,
        maximum=10.0,
    )
    compensation_trials: int = policy_field(
        3, apis_key="gridMaster.currentCompensation.limitOfTrials", kind="count"
    )
    checkpoint_wait: float = policy_field(
        0.1,
        apis_key="controller.dcdc.checkpoint.retryWaitMsec",
        unit="s",
        minimum=0.0,
        min_open=True,
        maximum=60.0,
    )
    checkpoint_retries: int = policy_field(
        3, apis_key="controller.dcdc.checkpoint.retryLimit", kind="count"
    )
    ramp_up_timeout: float = policy_field(
        180.0,
        apis_key="controller.dcdc.voltageReference.rampUp.first.timeoutMsec",
        unit="s",
        minimum=0.0,
        min_open=True,
        maximum=3600.0,
    )
    authorization_trials: int = policy_field(
        3,
        apis_key="controller.dcdc.voltageReference.authorization.numberOfTraials",
        kind="count",
    )
    deal_reset_limit: int = policy_field(3, apis_key="gridMaster.deal.resetLimit", kind="count")
    scram_vr_delay: float = policy_field(
        5.0,
        apis_key="controller.scramVoltageReferenceDelayMsec",
        unit="s",
        minimum=0.0,
        maximum=600.0,
    )
    error_sustaining: float = policy_field(
        30.0, apis_key="user.errorSustainingMsec", unit="s", minimum=0.0, maximum=3600.0
    )
    handover_droop: float = policy_field(
        0.039,
        apis_key="drg at voltage-reference hand-over",
        minimum=0.0,
        maximum=1.0,
        note="`drg` of the old voltage reference at hand-over",
        apis=False,
    )
    soc_force_stop_discharge: float = policy_field(
        0.20,
        apis_key="gridMaster.deal.forceStopCondition.dischargeUnitLowerLimitRsoc",
        minimum=0.0,
        maximum=1.0,
    )
    soc_force_stop_charge: float = policy_field(
        0.95,
        apis_key="gridMaster.deal.forceStopCondition.chargeUnitUpperLimitRsoc",
        minimum=0.0,
        maximum=1.0,
    )
    supervisor_period: float = policy_field(
        5.0,
        apis_key="gridMaster.mainLoopPeriodMsec",
        unit="s",
        minimum=0.0,
        min_open=True,
        maximum=600.0,
        note="(also how long an agent reuses unit data, `controller.dataAcquisitionPeriodMsec`)",
    )
    deal_current: float = policy_field(
        1.0,
        apis_key="mediator.deal.gridCurrentA",
        unit="A",
        minimum=0.0,
        min_open=True,
        maximum=1000.0,
        note="(≤ `unit_current_capacity`)",
    )
    deal_amount_min_wh: int = policy_field(
        50,
        apis_key="mediator.deal.amountMinWh",
        kind="amount",
        unit="Wh",
        note="(≤ `deal_amount_max_wh`)",
    )
    deal_amount_max_wh: int = policy_field(
        50, apis_key="mediator.deal.amountMaxWh", kind="amount", unit="Wh"
    )
    deal_amount_unit_wh: int = policy_field(
        50,
        apis_key="mediator.deal.amountUnitWh",
        kind="amount",
        unit="Wh",
        note="(≤ `deal_amount_max_wh`)",
    )
    negotiation_timeout: float = policy_field(
        2.0,
        apis_key="mediator.negotiationTimeoutMsec",
        unit="s",
        minimum=0.0,
        min_open=True,
        maximum=600.0,
    )
    house_keeping_period: float = policy_field(
        60.0,
        apis_key="user.houseKeepingPeriodMsec",
        unit="s",
        minimum=0.0,
        min_open=True,
        maximum=3600.0,
    )
    stale_periods: int = policy_field(
        0,
        apis_key="none (toolkit: frozen-meter check of the supervisor)",
        kind="count",
        note=(
            "none (0: off): the supervisor's frozen-meter check — a unit carrying current "
            "whose bus voltage and current read exactly the same for this many supervisor "
            "periods in a row trips the bench (`docs/exchanges.md`); turn it on where every "
            "meter is live (real meters, emulated ports with sensor noise)"
        ),
        apis=False,
    )

    #: Field → APIS key, for the report (from the declarations).
    APIS_KEYS: ClassVar[dict[str, str]]

    @property
    def activation_voltage_max(self) -> float:
        """The bus must be at most this before the first voltage reference starts (320 V)."""
        return self.voltage_range_min + 2 * self.voltage_separation

    @property
    def stop_voltage(self) -> float:
        """``dvg`` the voltage reference is lowered to before it goes to WAIT (310 V)."""
        return self.voltage_range_min + self.voltage_separation

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


ApisPolicy.APIS_KEYS = {name: d.apis_key for name, (d, _) in declared_fields(ApisPolicy).items()}


def apis_table_markdown() -> str:
    """The ``[apis]`` key table of ``docs/bench-file.md``, from the declarations."""
    lines = ["| key | default | APIS key |", "|---|---|---|"]
    for name, (d, default) in declared_fields(ApisPolicy).items():
        if d.kind not in ("number", "count", "amount"):
            continue
        shown = f"{default} {d.unit}".strip()
        where = f"`{d.apis_key}` {d.note}".strip() if d.apis else d.note
        lines.append(f"| `{name}` | {shown} | {where} |")
    return "\n".join(lines) + "\n"


DealRule = Literal["amount_min", "amount_unit", "deal_current"]


def deal_number_problem(
    amount_min_wh: int,
    amount_max_wh: int,
    amount_unit_wh: int,
    deal_current: float,
    unit_current_capacity: float,
) -> tuple[DealRule, float, float] | None:
    """The first deal-making rule the numbers break, as (rule, value, limit), or None.

    The rules (APIS would never make a deal otherwise): ``amount_min`` — the minimum
    amount ≤ the maximum; ``amount_unit`` — the amount unit ≤ the maximum (a deal floors to
    whole units); ``deal_current`` — the deal current ≤ ``gridCurrentCapacityA``. The
    ``[apis]`` reader and :class:`~hil.config.deal_policy.DealPolicy` word them each their way."""
    if amount_min_wh > amount_max_wh:
        return "amount_min", amount_min_wh, amount_max_wh
    if amount_unit_wh > amount_max_wh:
        return "amount_unit", amount_unit_wh, amount_max_wh
    if deal_current > unit_current_capacity:
        return "deal_current", deal_current, unit_current_capacity
    return None


def read_apis_policy(table: Table | None, bus: BusEnvelope, nominal_voltage: float) -> ApisPolicy:
    """Build the policy from ``[apis]`` (absent: all APIS defaults) and the bus numbers."""
    defaults = ApisPolicy(
        operation_voltage=nominal_voltage,
        voltage_range_min=bus.voltage_min,
        voltage_range_max=bus.voltage_max,
        balance_allowance_per_unit=bus.balance_allowance_per_unit,
        deal_current_sum_max=bus.exchange_current_sum_max,
    )
    if table is None:
        return defaults
    values: dict[str, Any] = {}
    for key, (declared, default) in declared_fields(ApisPolicy).items():
        if declared.kind == "number":
            values[key] = table.opt_number(key, default, **declared.bounds())
        elif declared.kind in ("count", "amount"):
            values[key] = table.integer(key, default, **declared.bounds())
    table.finish()
    policy = dataclasses.replace(defaults, **values)
    _check_deal_numbers(table, policy)
    if policy.soc_force_stop_discharge >= policy.soc_force_stop_charge:
        raise table.error(
            "soc_force_stop_discharge",
            f"{policy.soc_force_stop_discharge:g} is not below soc_force_stop_charge "
            f"{policy.soc_force_stop_charge:g}",
            "soc_force_stop_discharge < soc_force_stop_charge",
        )
    if policy.stop_voltage >= policy.operation_voltage:
        raise table.error(
            "voltage_separation",
            f"voltage_min + voltage_separation = {policy.stop_voltage:g} V is not below the "
            f"operation voltage {policy.operation_voltage:g} V",
            f"voltage_separation < {policy.operation_voltage - policy.voltage_range_min:g}",
        )
    return policy


def _check_deal_numbers(table: Table, policy: ApisPolicy) -> None:
    """The deal-making numbers must allow a deal at all (:func:`deal_number_problem`)."""
    problem = deal_number_problem(
        policy.deal_amount_min_wh,
        policy.deal_amount_max_wh,
        policy.deal_amount_unit_wh,
        policy.deal_current,
        policy.unit_current_capacity,
    )
    if problem is None:
        return
    rule, value, limit = problem
    if rule == "amount_min":
        raise table.error(
            "deal_amount_min_wh",
            f"{value:.0f} Wh is above deal_amount_max_wh {limit:.0f} Wh",
            "deal_amount_min_wh ≤ deal_amount_max_wh",
        )
    if rule == "amount_unit":
        raise table.error(
            "deal_amount_unit_wh",
            f"{value:.0f} Wh is above deal_amount_max_wh {limit:.0f} Wh, "
            "so every deal would floor to 0 Wh",
            "deal_amount_unit_wh ≤ deal_amount_max_wh",
        )
    raise table.error(
        "deal_current",
        f"{value:g} A is above unit_current_capacity {limit:g} A, so no unit could make a deal",
        f"deal_current ≤ {limit:g}",
    )
