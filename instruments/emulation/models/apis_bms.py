"""Emulated APIS battery BMS: Modbus RTU input registers 30030 (SoC) and 30031 (permission).

The model owns the unit's battery (a plant battery port on the unit's battery node) and answers
function 4 at the *literal* wire addresses 30030 (relative SoC in 0.1 % steps, 0-1000) and
30031 (interchange permission: 0 none, 1 charge only, 2 discharge only, 3 both). Every other
address answers exception 2 (there are no holding registers, coils or discrete inputs, so any
write does too); frames for another unit id are ignored, as on an RS-485 line.

Confirmed from the public APIS sources (SonyCSL/apis-dcdc_batt_comm, as summarised in the
project reference and the driver ``instruments/apis_bms.py``): registers, scaling, 9600 baud,
unit 1. APIS's own controller (``essx_type_oes._battery_watchdog``, option
``force_dcdc_waiting``) puts the converter to WAIT when the permission says "none": that is
the controller's job, so the BMS only reports it.

Modelling choices (assumed): the battery's BMS cut-off is at relative SoC 0 and 1 (RSOC is
relative to the usable window); a battery whose contactor is open (a latched trip, e.g. the
SoC cut-off or an injected ``trip``) reports permission 0; the ``permission`` fault
(``{"value": 0..3}``) overrides the permission until ``clear``; ``set`` of ``soc`` (0..1)
moves the plant battery's state of charge and ``set`` of ``permission`` (0..3 or ``none``,
``charge``, ``discharge``, ``both``) changes the configured permission. An ``offset`` fault on
quantity ``soc`` skews the SoC register. The BMS has no communication watchdog.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from hil.bench_emulation import PERMISSIONS
from hil.errors import ConfigError
from instruments.emulation.modbus import ModbusBus, ModbusDevice
from instruments.emulation.models.base import InstrumentModel, ModelContext, Wire
from instruments.emulation.plant import BatteryHandle, Plant
from instruments.emulation.plant_specs import AnyPortSpec, BatterySpec
from instruments.emulation.transport import SessionFactory

log = logging.getLogger(__name__)

SOC_REGISTER = 30030
PERMISSION_REGISTER = 30031
SOC_STEPS = 1000
DEFAULT_UNIT_ID = 1
DEFAULT_CAPACITY_WH = 4800.0
DEFAULT_SOC = 0.5
DEFAULT_RESISTANCE_OHM = 0.05
BMS_SOC_MIN = 0.0
BMS_SOC_MAX = 1.0
PERMISSION_BOTH = 3


def battery_spec(ctx: ModelContext) -> BatterySpec:
    """The battery behind the BMS, on the unit's battery node, from ``[emulation.ports]``."""
    port = ctx.port
    return BatterySpec(
        name=ctx.key,
        node=ctx.battery_node,
        capacity_wh=DEFAULT_CAPACITY_WH if port.battery_capacity is None else port.battery_capacity,
        soc=DEFAULT_SOC if port.soc is None else port.soc,
        r_internal_ohm=(
            DEFAULT_RESISTANCE_OHM if port.battery_resistance is None else port.battery_resistance
        ),
        soc_min=BMS_SOC_MIN,
        soc_max=BMS_SOC_MAX,
    )


def permission_code(key: str, value: Any) -> int:
    """A permission as 0..3 from an int or a name (``none`` … ``both``); ConfigError otherwise."""
    if isinstance(value, str) and value in PERMISSIONS:
        return PERMISSIONS.index(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        names = ", ".join(PERMISSIONS)
        raise ConfigError(f"{key}: permission {value!r} must be 0..3 or one of {names}")
    return value


class ApisBmsModel(InstrumentModel):
    """One emulated APIS BMS (driver ``apis_bms``); unit id from setting ``device_id`` (1)."""

    driver: ClassVar[str] = "apis_bms"
    wire: ClassVar[Wire] = Wire.MODBUS_RTU
    extra_faults: ClassVar[tuple[str, ...]] = ("permission",)

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        super().__init__(ctx, plant)
        self.battery: BatteryHandle = plant.battery(ctx.key)
        configured = ctx.port.permission
        self.permission = permission_code(ctx.key, configured or "both")
        self.permission_fault: int | None = None
        unit_id = int(ctx.setting("device_id", DEFAULT_UNIT_ID))
        device = ModbusDevice(unit_id, name=ctx.key)
        device.input(SOC_REGISTER, "relative SoC", self._soc_word)
        device.input(PERMISSION_REGISTER, "interchange permission", self._permission_word)
        self.device = device
        self.bus = ModbusBus([device], name=ctx.key)

    @classmethod
    def port_specs(cls, ctx: ModelContext) -> list[AnyPortSpec]:
        return [battery_spec(ctx)]

    def session_factory(self) -> SessionFactory:
        return self.bus.rtu_session

    # ---- registers -----------------------------------------------------------------
    def _soc_word(self) -> int:
        soc = self.measure().soc
        if soc is None or not math.isfinite(soc):
            raise ValueError(f"{self.key}: battery SoC unreadable ({soc!r})")
        return round(min(1.0, max(0.0, soc)) * SOC_STEPS)

    def _permission_word(self) -> int:
        return self.effective_permission

    @property
    def effective_permission(self) -> int:
        """What register 30031 says: the fault if one holds, 0 while the contactor is open."""
        if not self.battery.output_on:
            return 0
        if self.permission_fault is not None:
            return self.permission_fault
        return self.permission

    # ---- control channel -----------------------------------------------------------
    def fault(self, kind: str, params: Mapping[str, Any]) -> None:
        if kind == "permission":
            if "value" not in params:
                raise ConfigError(f"{self.key}: fault 'permission' needs 'value' (0..3)")
            self.permission_fault = permission_code(self.key, params["value"])
            log.info("%s: permission forced to %d", self.key, self.permission_fault)
            return
        super().fault(kind, params)

    def clear_faults(self) -> None:
        super().clear_faults()
        self.permission_fault = None

    def set_value(self, field: str, value: Any) -> bool:
        if field == "soc":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.key}: soc {value!r} must be a number 0..1")
            self.battery.soc = float(value)
            return True
        if field == "permission":
            self.permission = permission_code(self.key, value)
            return True
        return False

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "soc": self.battery.soc,
            "permission": self.effective_permission,
            "permission_fault": self.permission_fault,
        }
