"""The APIS battery pack's BMS: Modbus RTU, read-only (state of charge and permission).

Resources: ``modbus-rtu:/dev/ttyUSB0`` (RS-485, 9600 8N1, device 1 in APIS), a pty path
``modbus-rtu:/dev/pts/5`` or RTU over TCP ``modbus-rtu-tcp://127.0.0.1:PORT`` (emulator).

Protocol (from the APIS sources, apis-dcdc_batt_comm): function 4, read input registers at
the *literal* wire addresses 30030 (relative SoC in 0.1 % steps) and 30031 (interchange
permission: 0 none, 1 charge only, 2 discharge only, 3 both). One request reads both.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import IntEnum

from hil.errors import MalformedReply

from .base import Identity
from .connection import DEFAULT_TIMEOUT_S, ModbusConnection, SerialSettings

log = logging.getLogger(__name__)

SOC_REGISTER = 30030
PERMISSION_REGISTER = 30031
SOC_SCALE = 0.1
BMS_BAUDRATE = 9600


class Permission(IntEnum):
    """Register 30031: which interchange directions the battery allows."""

    NONE = 0
    CHARGE_ONLY = 1
    DISCHARGE_ONLY = 2
    BOTH = 3

    @property
    def may_charge(self) -> bool:
        return self in (Permission.CHARGE_ONLY, Permission.BOTH)

    @property
    def may_discharge(self) -> bool:
        return self in (Permission.DISCHARGE_ONLY, Permission.BOTH)


@dataclass(frozen=True)
class BmsReading:
    """State of charge in percent and the interchange permission."""

    soc_percent: float
    permission: Permission


class ApisBms:
    """APIS battery BMS over Modbus RTU. Every call holds the driver's lock."""

    def __init__(
        self, connection: ModbusConnection, *, device_id: int = 1, name: str = "", serial: str = ""
    ) -> None:
        self.connection = connection
        self.device_id = device_id
        self.name = name or connection.resource
        self.serial = serial
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        device_id: int = 1,
        name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        baudrate: int = BMS_BAUDRATE,
    ) -> ApisBms:
        """Open ``resource`` (serial lines at ``baudrate`` 8N1) and wrap it."""
        connection = ModbusConnection(
            resource, timeout=timeout, serial=SerialSettings(baudrate=baudrate)
        )
        return cls(connection, device_id=device_id, name=name)

    @property
    def resource(self) -> str:
        return self.connection.resource

    def __repr__(self) -> str:
        return f"ApisBms({self.name!r}, resource={self.resource!r})"

    def read(self) -> BmsReading:
        """One function-4 read of registers 30030-30031."""
        command = f"read input registers {SOC_REGISTER}+2"
        with self._lock:
            soc_raw, permission_raw = self.connection.read_input_registers(
                SOC_REGISTER, 2, device_id=self.device_id
            )
        if soc_raw > 1000:
            raise MalformedReply(
                f"SoC register {SOC_REGISTER} holds {soc_raw} (> 1000 = 100 %)",
                resource=self.resource,
                command=command,
            )
        try:
            permission = Permission(permission_raw)
        except ValueError:
            raise MalformedReply(
                f"permission register {PERMISSION_REGISTER} holds {permission_raw}, not 0-3",
                resource=self.resource,
                command=command,
            ) from None
        return BmsReading(soc_percent=round(soc_raw * SOC_SCALE, 1), permission=permission)

    def soc(self) -> float:
        """Relative state of charge in percent."""
        return self.read().soc_percent

    def permission(self) -> Permission:
        """The interchange permission."""
        return self.read().permission

    def identify(self) -> Identity:
        """The BMS has no identity registers in APIS's protocol: a fixed description."""
        return Identity("APIS", "battery BMS (Modbus RTU)", self.serial, "")

    def reconnect(self) -> None:
        with self._lock:
            self.connection.reopen()

    def close(self) -> None:
        with self._lock:
            self.connection.close()
