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
from typing import Any, ClassVar

from hil.envelope import BusEnvelope
from hil.toml_source import Table


@dataclass(frozen=True)
class ApisPolicy:
    """The APIS policy of a bench (units: V, A, s, fractions)."""

    operation_voltage: float  # operationGridVoltageV (from [bus] nominal_voltage)
    voltage_range_min: float  # operationGridVoltageVRange.min (from [bus] voltage_min)
    voltage_range_max: float  # operationGridVoltageVRange.max (from [bus] voltage_max)
    balance_allowance_per_unit: float  # safety.sumOfDealingUnitGridCurrentAllowancePerUnitA
    deal_current_sum_max: float  # safety.sumOfDealGridCurrentMaxA ([bus] exchange_current_sum_max)
    voltage_separation: float = 10.0  # gridVoltageSeparationV
    voltage_allowance: float = 4.0  # gridVoltageAllowanceV
    uvlo_mask: float = 10.0  # gridUvloMaskV
    current_step: float = 1.0  # gridCurrentStepA
    current_allowance: float = 0.125  # gridCurrentAllowanceA (hwConfig)
    unit_current_capacity: float = 2.3  # gridCurrentCapacityA (hwConfig)
    compensation_drift_allowance: float = 0.03  # gridMaster.currentCompensation.driftAllowanceA
    compensation_trials: int = 3  # gridMaster.currentCompensation.limitOfTrials
    checkpoint_wait: float = 0.1  # controller.dcdc.checkpoint.retryWaitMsec
    checkpoint_retries: int = 3  # controller.dcdc.checkpoint.retryLimit
    ramp_up_timeout: float = 180.0  # controller.dcdc.voltageReference.rampUp.first.timeoutMsec
    authorization_trials: int = 3  # controller.dcdc.voltageReference.authorization.numberOfTraials
    deal_reset_limit: int = 3  # gridMaster.deal.resetLimit
    scram_vr_delay: float = 5.0  # controller.scramVoltageReferenceDelayMsec
    error_sustaining: float = 30.0  # user.errorSustainingMsec
    handover_droop: float = 0.039  # drg given to the old voltage reference at hand-over
    soc_force_stop_discharge: float = 0.20  # gridMaster.deal.forceStopCondition
    #                                         .dischargeUnitLowerLimitRsoc
    soc_force_stop_charge: float = 0.95  # ….chargeUnitUpperLimitRsoc
    supervisor_period: float = 5.0  # gridMaster.mainLoopPeriodMsec / dataAcquisitionPeriodMsec
    deal_current: float = 1.0  # mediator.deal.gridCurrentA
    deal_amount_min_wh: int = 50  # mediator.deal.amountMinWh
    deal_amount_max_wh: int = 50  # mediator.deal.amountMaxWh
    deal_amount_unit_wh: int = 50  # mediator.deal.amountUnitWh
    negotiation_timeout: float = 2.0  # mediator.negotiationTimeoutMsec
    house_keeping_period: float = 60.0  # user.houseKeepingPeriodMsec
    stale_periods: int = 0  # not APIS: periods a meter may repeat itself exactly; 0: off

    #: Field → APIS key, for the report.
    APIS_KEYS: ClassVar[dict[str, str]] = {
        "operation_voltage": "operationGridVoltageV",
        "voltage_range_min": "operationGridVoltageVRange.min",
        "voltage_range_max": "operationGridVoltageVRange.max",
        "balance_allowance_per_unit": "safety.sumOfDealingUnitGridCurrentAllowancePerUnitA",
        "deal_current_sum_max": "safety.sumOfDealGridCurrentMaxA",
        "voltage_separation": "gridVoltageSeparationV",
        "voltage_allowance": "gridVoltageAllowanceV",
        "uvlo_mask": "gridUvloMaskV",
        "current_step": "gridCurrentStepA",
        "current_allowance": "gridCurrentAllowanceA",
        "unit_current_capacity": "gridCurrentCapacityA",
        "compensation_drift_allowance": "gridMaster.currentCompensation.driftAllowanceA",
        "compensation_trials": "gridMaster.currentCompensation.limitOfTrials",
        "checkpoint_wait": "controller.dcdc.checkpoint.retryWaitMsec",
        "checkpoint_retries": "controller.dcdc.checkpoint.retryLimit",
        "ramp_up_timeout": "controller.dcdc.voltageReference.rampUp.first.timeoutMsec",
        "authorization_trials": "controller.dcdc.voltageReference.authorization.numberOfTraials",
        "deal_reset_limit": "gridMaster.deal.resetLimit",
        "scram_vr_delay": "controller.scramVoltageReferenceDelayMsec",
        "error_sustaining": "user.errorSustainingMsec",
        "handover_droop": "drg at voltage-reference hand-over",
        "soc_force_stop_discharge": (
            "gridMaster.deal.forceStopCondition.dischargeUnitLowerLimitRsoc"
        ),
        "soc_force_stop_charge": "gridMaster.deal.forceStopCondition.chargeUnitUpperLimitRsoc",
        "supervisor_period": "gridMaster.mainLoopPeriodMsec",
        "deal_current": "mediator.deal.gridCurrentA",
        "deal_amount_min_wh": "mediator.deal.amountMinWh",
        "deal_amount_max_wh": "mediator.deal.amountMaxWh",
        "deal_amount_unit_wh": "mediator.deal.amountUnitWh",
        "negotiation_timeout": "mediator.negotiationTimeoutMsec",
        "house_keeping_period": "user.houseKeepingPeriodMsec",
        "stale_periods": "none (toolkit: frozen-meter check of the supervisor)",
    }

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


#: (key, bounds) of every number ``[apis]`` may set; ints are counts.
_NUMBERS: dict[str, dict[str, Any]] = {
    "voltage_separation": {"minimum": 0.0, "min_open": True, "maximum": 100.0},
    "voltage_allowance": {"minimum": 0.0, "min_open": True, "maximum": 100.0},
    "uvlo_mask": {"minimum": 0.0, "maximum": 100.0},
    "current_step": {"minimum": 0.0, "min_open": True, "maximum": 100.0},
    "current_allowance": {"minimum": 0.0, "min_open": True, "maximum": 10.0},
    "unit_current_capacity": {"minimum": 0.0, "min_open": True, "maximum": 1000.0},
    "compensation_drift_allowance": {"minimum": 0.0, "min_open": True, "maximum": 10.0},
    "checkpoint_wait": {"minimum": 0.0, "min_open": True, "maximum": 60.0},
    "ramp_up_timeout": {"minimum": 0.0, "min_open": True, "maximum": 3600.0},
    "scram_vr_delay": {"minimum": 0.0, "maximum": 600.0},
    "error_sustaining": {"minimum": 0.0, "maximum": 3600.0},
    "handover_droop": {"minimum": 0.0, "maximum": 1.0},
    "soc_force_stop_discharge": {"minimum": 0.0, "maximum": 1.0},
    "soc_force_stop_charge": {"minimum": 0.0, "maximum": 1.0},
    "supervisor_period": {"minimum": 0.0, "min_open": True, "maximum": 600.0},
    "deal_current": {"minimum": 0.0, "min_open": True, "maximum": 1000.0},
    "negotiation_timeout": {"minimum": 0.0, "min_open": True, "maximum": 600.0},
    "house_keeping_period": {"minimum": 0.0, "min_open": True, "maximum": 3600.0},
}
_COUNTS = (
    "compensation_trials",
    "checkpoint_retries",
    "authorization_trials",
    "deal_reset_limit",
    "stale_periods",
)
_AMOUNTS = ("deal_amount_min_wh", "deal_amount_max_wh", "deal_amount_unit_wh")


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
    for key, bounds in _NUMBERS.items():
        values[key] = table.opt_number(key, getattr(defaults, key), **bounds)
    for key in _COUNTS:
        values[key] = table.integer(key, getattr(defaults, key), minimum=0, maximum=100)
    for key in _AMOUNTS:
        values[key] = table.integer(key, getattr(defaults, key), minimum=1, maximum=1_000_000)
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
    """The deal-making numbers must allow a deal at all (APIS would never make one)."""
    if policy.deal_amount_min_wh > policy.deal_amount_max_wh:
        raise table.error(
            "deal_amount_min_wh",
            f"{policy.deal_amount_min_wh} Wh is above deal_amount_max_wh "
            f"{policy.deal_amount_max_wh} Wh",
            "deal_amount_min_wh ≤ deal_amount_max_wh",
        )
    if policy.deal_amount_unit_wh > policy.deal_amount_max_wh:
        raise table.error(
            "deal_amount_unit_wh",
            f"{policy.deal_amount_unit_wh} Wh is above deal_amount_max_wh "
            f"{policy.deal_amount_max_wh} Wh, so every deal would floor to 0 Wh",
            "deal_amount_unit_wh ≤ deal_amount_max_wh",
        )
    if policy.deal_current > policy.unit_current_capacity:
        raise table.error(
            "deal_current",
            f"{policy.deal_current:g} A is above unit_current_capacity "
            f"{policy.unit_current_capacity:g} A, so no unit could make a deal",
            f"deal_current ≤ {policy.unit_current_capacity:g}",
        )
