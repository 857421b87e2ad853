"""Emulated APIS battery BMS: Modbus RTU input registers 30001-30031 (wire 0-30).

The model owns the unit's battery (a plant battery port on the unit's battery node) and answers
function 4 over the register block of the APIS battery (numbers and sources in
:mod:`instruments.wire.apis_bms`, from SonyCSL/apis-dcdc_batt_comm ``drivers/essx_server.py``,
``drivers/essx/essx_modbus.py`` and ``drivers/battery_emulator/__init__.py``), on the wire at
number - 30001:

- wire 0-2 (30001-30003): protocol version, ASCII ``0x3031 0x3030 0x3030``;
- wire 9-18 (30010-30019): vendor name, ASCII, NUL-padded: ``"HE"``, the two characters
  APIS's self-test checks (the rest of the real name is unknown);
- wire 29 (30030): relative SoC in 0.1 % steps (0-1000);
- wire 30 (30031): status, bit 0 set = interchange NOT allowed, clear = allowed;
- every other register of the block (wire 3-8, 19-28) answers 0 (assumed), so APIS's
  self-test read of wire 0 with count 31 succeeds.

Settings ``soc_register`` / ``status_register`` (register numbers, as in APIS's
``dcdc_batt_comm.yml``; defaults 30030/30031) move SoC and status, as they move the driver's
reads; they are then answered besides the block.

Addresses beyond the block answer exception 2 (there are no holding registers, coils or
discrete inputs, so any write does too); frames for another unit id are ignored, as on an
RS-485 line. APIS's own controller (``essx_type_oes._battery_watchdog``, option
``force_dcdc_waiting``) puts the converter to WAIT when the battery says "not allowed": that
is the controller's job, so the BMS only reports it.

Modelling choices (assumed): the battery's BMS cut-off is at relative SoC 0 and 1 (RSOC is
relative to the usable window); a battery whose contactor is open (a latched trip, e.g. the
SoC cut-off or an injected ``trip``) reports "not allowed"; the ``permission`` fault sets
status bit 0 until ``clear`` (its optional ``value`` must say "not allowed": 0 or ``none``);
``set`` of ``soc`` (0..1) moves the plant battery's state of charge and ``set`` of
``permission`` (``both``/3 allowed, ``none``/0 not allowed) changes the configured state. The
status register has no per-direction bits, so ``charge`` and ``discharge`` (1, 2) are
refused, in the bench file too. An ``offset`` fault on quantity ``soc`` skews the SoC
register. The BMS has no communication watchdog.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from instruments.emulation.description import PERMISSIONS
from instruments.emulation.modbus import ModbusBus, ModbusDevice
from instruments.emulation.models.base import InstrumentModel, ModelContext, Wire
from instruments.emulation.plant import BatteryHandle, Plant
from instruments.emulation.plant_specs import AnyPortSpec, BatterySpec
from instruments.emulation.transport import SessionFactory
from instruments.errors import ConfigError
from instruments.wire.apis_bms import (
    BLOCK_WORDS,
    OPERATION_STATUS_ALLOWED,
    OPERATION_STATUS_NOT_ALLOWED,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_NUMBER,
    SOC_MAX_RAW,
    SOC_NUMBER,
    STATUS_NOT_ALLOWED,
    STATUS_NUMBER,
    VENDOR_NAME_NUMBER,
    VENDOR_NAME_WORDS,
    ascii_words,
    wire_address,
)

log = logging.getLogger(__name__)

DEFAULT_UNIT_ID = 1
VENDOR_NAME = "HE"
DEFAULT_CAPACITY_WH = 4800.0
DEFAULT_SOC = 0.5
DEFAULT_RESISTANCE_OHM = 0.05
BMS_SOC_MIN = 0.0
BMS_SOC_MAX = 1.0


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


def allowed_from(key: str, value: Any) -> bool:
    """Whether ``value`` (``both``/3 or ``none``/0) allows interchange; ConfigError otherwise.

    The APIS battery's status register holds one bit, so a one-direction permission
    (``charge``, ``discharge``, 1, 2) cannot be expressed and is refused.
    """
    code = PERMISSIONS.index(value) if isinstance(value, str) and value in PERMISSIONS else value
    if code == OPERATION_STATUS_ALLOWED and not isinstance(code, bool):
        return True
    if code == OPERATION_STATUS_NOT_ALLOWED and not isinstance(code, bool):
        return False
    raise ConfigError(
        f"{key}: permission {value!r} must be 'both' (3, allowed) or 'none' (0, not allowed): "
        "the APIS battery's status register 30031 has only bit 0 (set = not allowed), "
        "per apis-dcdc_batt_comm drivers/battery_emulator/__init__.py"
    )


class ApisBmsModel(InstrumentModel):
    """One emulated APIS BMS (driver ``apis_bms``); unit id from setting ``device_id`` (1)."""

    driver: ClassVar[str] = "apis_bms"
    wire: ClassVar[Wire] = Wire.MODBUS_RTU
    extra_faults: ClassVar[tuple[str, ...]] = ("permission",)
    #: 8N1 as APIS opens the line (driver ``apis_bms``), and the 3.5 characters of silence
    #: that delimit an RTU frame ("MODBUS over Serial Line" V1.02, section 2.5.1.1).
    line_gap_chars: ClassVar[float] = 3.5

    def __init__(self, ctx: ModelContext, plant: Plant) -> None:
        super().__init__(ctx, plant)
        self.battery: BatteryHandle = plant.battery(ctx.key)
        self.allowed = allowed_from(ctx.key, ctx.port.permission or "both")
        self.withdrawn = False
        unit_id = int(ctx.setting("device_id", DEFAULT_UNIT_ID))
        self.device = ModbusDevice(unit_id, name=ctx.key)
        self._declare(ctx)
        self.bus = ModbusBus([self.device], name=ctx.key)

    def _declare(self, ctx: ModelContext) -> None:
        """Every register of the block 30001-30031 (wire 0-30), SoC and status where set."""
        soc_wire = self._wire(ctx, "soc_register", SOC_NUMBER)
        status_wire = self._wire(ctx, "status_register", STATUS_NUMBER)
        fixed: dict[int, tuple[str, int]] = {}
        version_wire = wire_address(PROTOCOL_VERSION_NUMBER)
        for i, word in enumerate(PROTOCOL_VERSION):
            fixed[version_wire + i] = (f"protocol version {i + 1}", word)
        vendor_wire = wire_address(VENDOR_NAME_NUMBER)
        for i, word in enumerate(ascii_words(VENDOR_NAME, VENDOR_NAME_WORDS)):
            fixed[vendor_wire + i] = (f"vendor name {i + 1}", word)
        if soc_wire == status_wire or {soc_wire, status_wire} & fixed.keys():
            raise ConfigError(
                f"{ctx.key}: soc_register {soc_wire + 30001} and status_register "
                f"{status_wire + 30001} must differ and lie outside 30001-30003 and 30010-30019"
            )
        for address in sorted({*range(BLOCK_WORDS), soc_wire, status_wire}):
            if address == soc_wire:
                self.device.input(address, "relative SoC", self._soc_word)
            elif address == status_wire:
                self.device.input(address, "status", self._status_word)
            else:
                name, word = fixed.get(address, (f"reserved {address + 30001}", 0))
                self.device.input(address, name, functools.partial(int, word))

    @staticmethod
    def _wire(ctx: ModelContext, name: str, default: int) -> int:
        number = ctx.setting(name, default)
        try:
            return wire_address(int(number), what=name)
        except ValueError as exc:
            raise ConfigError(f"{ctx.key}: {exc}") from None

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
        return round(min(1.0, max(0.0, soc)) * SOC_MAX_RAW)

    def _status_word(self) -> int:
        return 0 if self.interchange_allowed else STATUS_NOT_ALLOWED

    @property
    def interchange_allowed(self) -> bool:
        """What status bit 0 says (inverted): not while the fault holds or the contactor is open."""
        return self.battery.output_on and not self.withdrawn and self.allowed

    @property
    def operation_status(self) -> int:
        """APIS's ``battery_operation_status`` for the status word: 3 allowed, 0 not."""
        if self.interchange_allowed:
            return OPERATION_STATUS_ALLOWED
        return OPERATION_STATUS_NOT_ALLOWED

    # ---- control channel -----------------------------------------------------------
    def fault(self, kind: str, params: Mapping[str, Any]) -> None:
        if kind == "permission":
            if "value" in params and allowed_from(self.key, params["value"]):
                raise ConfigError(
                    f"{self.key}: fault 'permission' withdraws the permission (sets status "
                    "bit 0); its 'value' may only be 0 or 'none' — use 'clear' to restore it"
                )
            self.withdrawn = True
            log.info("%s: interchange permission withdrawn (status bit 0 set)", self.key)
            return
        super().fault(kind, params)

    def clear_faults(self) -> None:
        super().clear_faults()
        self.withdrawn = False

    def set_value(self, field: str, value: Any) -> bool:
        if field == "soc":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.key}: soc {value!r} must be a number 0..1")
            self.battery.soc = float(value)
            return True
        if field == "permission":
            self.allowed = allowed_from(self.key, value)
            return True
        return False

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "soc": self.battery.soc,
            "status_word": self._status_word(),
            "permission": self.operation_status,
            "permission_fault": self.withdrawn,
        }
