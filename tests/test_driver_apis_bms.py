"""Scripted tests for the APIS battery BMS driver (Modbus RTU, function 4 at 30030)."""

from __future__ import annotations

import pytest
from pymodbus.exceptions import ConnectionException, ModbusIOException

from hil.errors import (
    CommunicationError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)
from instruments.apis_bms import ApisBms, Permission
from instruments.base import Identity
from instruments.connection import ModbusConnection
from instruments.scripted import ModbusStep, ScriptedModbusClient, modbus

RESOURCE = "modbus-rtu:/dev/pts/7"


def make(*steps: ModbusStep) -> tuple[ApisBms, ScriptedModbusClient]:
    client = ScriptedModbusClient(steps)
    connection = ModbusConnection(RESOURCE, client_factory=lambda: client)
    return ApisBms(connection, device_id=1, name="E001-bms"), client


def test_reads_soc_and_permission_in_one_request_at_the_literal_address() -> None:
    bms, client = make(modbus("read_input_registers", 30030, 2, reply=[623, 3]))
    reading = bms.read()
    assert reading.soc_percent == 62.3
    assert reading.permission is Permission.BOTH
    assert reading.permission.may_charge and reading.permission.may_discharge
    client.assert_done()


@pytest.mark.parametrize(
    ("raw", "charge", "discharge"),
    [(0, False, False), (1, True, False), (2, False, True), (3, True, True)],
)
def test_permission_meaning(raw: int, charge: bool, discharge: bool) -> None:
    bms, _ = make(modbus("read_input_registers", 30030, 2, reply=[500, raw]))
    permission = bms.permission()
    assert (permission.may_charge, permission.may_discharge) == (charge, discharge)


def test_out_of_range_values_are_malformed() -> None:
    bms, _ = make(
        modbus("read_input_registers", 30030, 2, reply=[500, 7]),
        modbus("read_input_registers", 30030, 2, reply=[1001, 3]),
    )
    with pytest.raises(MalformedReply, match="30031 holds 7") as caught:
        bms.read()
    assert RESOURCE in str(caught.value)
    with pytest.raises(MalformedReply, match="1001"):
        bms.soc()


def test_modbus_exception_is_reported() -> None:
    bms, _ = make(modbus("read_input_registers", 30030, 2, reply=("exception", 2)))
    with pytest.raises(InstrumentReportedError, match="Modbus exception 2"):
        bms.read()


def test_timeout_and_dropped_line_then_recovery() -> None:
    clients = [
        ScriptedModbusClient(
            [modbus("read_input_registers", 30030, 2, reply=ModbusIOException("no response"))]
        ),
        ScriptedModbusClient(
            [modbus("read_input_registers", 30030, 2, reply=ConnectionException("port gone"))]
        ),
        ScriptedModbusClient([modbus("read_input_registers", 30030, 2, reply=[200, 1])]),
    ]
    queue = iter(clients)
    bms = ApisBms(ModbusConnection(RESOURCE, client_factory=lambda: next(queue)))
    with pytest.raises(InstrumentTimeout, match="30030"):
        bms.read()
    with pytest.raises(CommunicationError, match="port gone"):
        bms.read()
    assert bms.read().soc_percent == 20.0


def test_unreachable_line_fails_to_open_with_the_resource() -> None:
    with pytest.raises(CommunicationError, match=RESOURCE):
        ModbusConnection(RESOURCE, client_factory=lambda: ScriptedModbusClient(connects=False))


def test_identity() -> None:
    bms, _ = make()
    assert bms.identify() == Identity("APIS", "battery BMS (Modbus RTU)", "", "")
