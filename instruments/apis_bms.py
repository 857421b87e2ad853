"""The APIS battery pack's BMS: Modbus RTU, read-only (state of charge and interchange status).

Resources: ``modbus-rtu:/dev/ttyUSB0`` (RS-485, 9600 8N1, device 1 in APIS), a pty path
``modbus-rtu:/dev/pts/5`` or RTU over TCP ``modbus-rtu-tcp://127.0.0.1:PORT`` (emulator).

Protocol (SonyCSL/apis-dcdc_batt_comm, ``drivers/essx_server.py``,
``drivers/essx/essx_modbus.py``, ``drivers/battery_emulator/__init__.py``; the register table
and its sources are in :mod:`instruments.wire.apis_bms`): function 4, input registers numbered
in the "3xxxx" convention, sent on the wire as number - 30001. SoC (30030, 0.1 % steps) and
status (30031) are read in one request, wire 29 count 2, when adjacent (as APIS does);
otherwise one request each. Status bit 0 set means interchange is NOT allowed; the driver
reports it as APIS's ``battery_operation_status``: :attr:`Permission.BOTH` (3) or
:attr:`Permission.NONE` (0), never 1 or 2. Other status bits are ignored, as APIS ignores
them. ``identify()`` reads the protocol version (30001-30003) and the vendor name (30010…).
The register numbers are settings (``soc_register``, ``status_register``, as APIS's
``modbus_adr_rsoc``/``modbus_adr_status``) and are converted to wire addresses only in
:func:`instruments.wire.apis_bms.wire_address`.
"""

from __future__ import annotations

import logging
import threading

from instruments.errors import ConfigError, MalformedReply
from instruments.families import SERIAL_BAUDS, Family, SettingSpec, register

from .base import Identity
from .connection import DEFAULT_TIMEOUT_S, ModbusConnection, SerialSettings
from .roles import BmsReading, Permission
from .wire.apis_bms import (
    PROTOCOL_VERSION_NUMBER,
    PROTOCOL_VERSION_WORDS,
    SOC_MAX_RAW,
    SOC_NUMBER,
    SOC_STEPS_PER_PERCENT,
    STATUS_NUMBER,
    VENDOR_NAME_NUMBER,
    VENDOR_NAME_WORDS,
    wire_address,
    words_ascii,
)

log = logging.getLogger(__name__)

BMS_BAUDRATE = 9600


def _wire(number: int, what: str) -> int:
    try:
        return wire_address(number, what=what)
    except ValueError as exc:
        raise ConfigError(f"apis_bms: {exc}") from None


class ApisBms:
    """APIS battery BMS over Modbus RTU. Every call holds the driver's lock."""

    def __init__(
        self,
        connection: ModbusConnection,
        *,
        device_id: int = 1,
        name: str = "",
        serial: str = "",
        soc_register: int = SOC_NUMBER,
        status_register: int = STATUS_NUMBER,
    ) -> None:
        self.connection = connection
        self.device_id = device_id
        self.name = name or connection.resource
        self.serial = serial
        self.soc_register = soc_register
        self.status_register = status_register
        self._soc_wire = _wire(soc_register, "soc_register")
        self._status_wire = _wire(status_register, "status_register")
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
        soc_register: int = SOC_NUMBER,
        status_register: int = STATUS_NUMBER,
    ) -> ApisBms:
        """Open ``resource`` (serial lines at ``baudrate`` 8N1) and wrap it."""
        _wire(soc_register, "soc_register")
        _wire(status_register, "status_register")
        connection = ModbusConnection(
            resource, timeout=timeout, serial=SerialSettings(baudrate=baudrate)
        )
        return cls(
            connection,
            device_id=device_id,
            name=name,
            soc_register=soc_register,
            status_register=status_register,
        )

    @property
    def resource(self) -> str:
        return self.connection.resource

    def __repr__(self) -> str:
        return f"ApisBms({self.name!r}, resource={self.resource!r})"

    def _input(self, wire: int, count: int) -> list[int]:
        return self.connection.read_input_registers(wire, count, device_id=self.device_id)

    def read(self) -> BmsReading:
        """SoC and status: one function-4 read when adjacent (wire 29, count 2), else two."""
        with self._lock:
            if self._status_wire == self._soc_wire + 1:
                soc_raw, status = self._input(self._soc_wire, 2)
            else:
                (soc_raw,) = self._input(self._soc_wire, 1)
                (status,) = self._input(self._status_wire, 1)
        if soc_raw > SOC_MAX_RAW:
            raise MalformedReply(
                f"SoC register {self.soc_register} (wire {self._soc_wire}) holds {soc_raw} "
                f"(> {SOC_MAX_RAW} = 100 %)",
                resource=self.resource,
                command=f"read input registers {self._soc_wire}",
            )
        return BmsReading(
            soc_percent=round(soc_raw / SOC_STEPS_PER_PERCENT, 1),
            permission=Permission.from_status(status),
            status=status,
        )

    def soc(self) -> float:
        """Relative state of charge in percent."""
        return self.read().soc_percent

    def permission(self) -> Permission:
        """The interchange permission (NONE or BOTH from status bit 0)."""
        return self.read().permission

    def probe(self) -> Identity:
        """The identity, after reading SoC and status: both blocks must answer."""
        self.read()
        return self.identify()

    def identify(self) -> Identity:
        """Vendor name (30010…) and protocol version (30001-30003) from the battery."""
        version_wire = wire_address(PROTOCOL_VERSION_NUMBER)
        vendor_wire = wire_address(VENDOR_NAME_NUMBER)
        with self._lock:
            version = self._input(version_wire, PROTOCOL_VERSION_WORDS)
            vendor = self._input(vendor_wire, VENDOR_NAME_WORDS)
        return Identity(
            words_ascii(vendor) or "APIS battery",
            "battery BMS (Modbus RTU)",
            self.serial,
            f"protocol {words_ascii(version)}",
        )

    def reconnect(self) -> None:
        with self._lock:
            self.connection.reopen()

    def close(self) -> None:
        with self._lock:
            self.connection.close()


#: The family a bench file names ``driver = "apis_bms"`` (ratings: ``instruments/apis_bms.toml``).
FAMILY = register(
    Family(
        name="apis_bms",
        function="bms",
        transport="modbus_rtu",
        description="APIS battery BMS (Modbus RTU, RS-485)",
        opener=ApisBms.open,
        ratings="apis_bms.toml",
        settings=(
            SettingSpec("device_id", "int", "Modbus unit (device) id", 1, 1, 247),
            SettingSpec(
                "baudrate",
                "int",
                "serial speed",
                BMS_BAUDRATE,
                choices=SERIAL_BAUDS,
            ),
            SettingSpec(
                "soc_register",
                "int",
                "input register number of the SoC (3xxxx, manual; wire = n - 30001)",
                SOC_NUMBER,
                30001,
                39999,
            ),
            SettingSpec(
                "status_register",
                "int",
                "input register number of the status (3xxxx; wire = n - 30001)",
                STATUS_NUMBER,
                30001,
                39999,
            ),
        ),
    )
)
