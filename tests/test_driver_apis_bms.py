"""Scripted tests for the APIS battery BMS driver (Modbus RTU, function 4, 3xxxx numbering).

Register facts: SonyCSL/apis-dcdc_batt_comm (commit c030429a), ``drivers/essx_server.py``
(wire = number - 30001), ``drivers/essx/essx_modbus.py`` (identity block, SoC) and
``drivers/battery_emulator/__init__.py`` (status bit 0 set = not allowed).
"""

from __future__ import annotations

import pytest
from pymodbus.exceptions import ConnectionException, ModbusIOException

from hil.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)
from instruments.apis_bms import ApisBms, Permission
from instruments.base import Identity
from instruments.connection import ModbusConnection
from instruments.scripted import ModbusStep, ScriptedModbusClient, modbus
from instruments.wire.apis_bms import ascii_words, operation_status, wire_address, words_ascii

RESOURCE = "modbus-rtu:/dev/pts/7"


def make(*steps: ModbusStep, **options: int) -> tuple[ApisBms, ScriptedModbusClient]:
    client = ScriptedModbusClient(steps)
    connection = ModbusConnection(RESOURCE, client_factory=lambda: client)
    return ApisBms(connection, device_id=1, name="E001-bms", **options), client


def test_reads_soc_and_status_in_one_request_at_wire_29() -> None:
    bms, client = make(modbus("read_input_registers", 29, 2, reply=[623, 0]))
    reading = bms.read()
    assert reading.soc_percent == 62.3
    assert reading.permission is Permission.BOTH
    assert reading.status == 0
    assert reading.permission.may_charge and reading.permission.may_discharge
    client.assert_done()


@pytest.mark.parametrize(
    ("status", "permission"),
    [(0, Permission.BOTH), (1, Permission.NONE), (2, Permission.BOTH), (0xFFFF, Permission.NONE)],
)
def test_status_bit_0_set_means_not_allowed(status: int, permission: Permission) -> None:
    bms, _ = make(modbus("read_input_registers", 29, 2, reply=[500, status]))
    assert bms.permission() is permission
    assert int(permission) == operation_status(status)


def test_registers_that_are_not_adjacent_are_read_one_by_one() -> None:
    bms, client = make(
        modbus("read_input_registers", 39, 1, reply=[100]),
        modbus("read_input_registers", 30, 1, reply=[1]),
        soc_register=30040,
    )
    reading = bms.read()
    assert (reading.soc_percent, reading.permission) == (10.0, Permission.NONE)
    client.assert_done()


@pytest.mark.parametrize("number", [30030 - 30001, 40001, 0])
def test_a_register_number_outside_3xxxx_is_a_config_error(number: int) -> None:
    with pytest.raises(ConfigError, match=r"soc_register .* 30001"):
        make(soc_register=number)


def test_wire_address_is_number_minus_30001() -> None:
    assert (wire_address(30001), wire_address(30030), wire_address(30031)) == (0, 29, 30)


def test_soc_above_100_percent_is_malformed() -> None:
    bms, _ = make(modbus("read_input_registers", 29, 2, reply=[1001, 0]))
    with pytest.raises(MalformedReply, match=r"30030 \(wire 29\) holds 1001") as caught:
        bms.soc()
    assert RESOURCE in str(caught.value)


def test_modbus_exception_is_reported() -> None:
    bms, _ = make(modbus("read_input_registers", 29, 2, reply=("exception", 2)))
    with pytest.raises(InstrumentReportedError, match="Modbus exception 2"):
        bms.read()


def test_timeout_and_dropped_line_then_recovery() -> None:
    clients = [
        ScriptedModbusClient(
            [modbus("read_input_registers", 29, 2, reply=ModbusIOException("no response"))]
        ),
        ScriptedModbusClient(
            [modbus("read_input_registers", 29, 2, reply=ConnectionException("port gone"))]
        ),
        ScriptedModbusClient([modbus("read_input_registers", 29, 2, reply=[200, 0])]),
    ]
    queue = iter(clients)
    bms = ApisBms(ModbusConnection(RESOURCE, client_factory=lambda: next(queue)))
    with pytest.raises(InstrumentTimeout, match="read input registers 29"):
        bms.read()
    with pytest.raises(CommunicationError, match="port gone"):
        bms.read()
    assert bms.read().soc_percent == 20.0


def test_unreachable_line_fails_to_open_with_the_resource() -> None:
    with pytest.raises(CommunicationError, match=RESOURCE):
        ModbusConnection(RESOURCE, client_factory=lambda: ScriptedModbusClient(connects=False))


def test_identity_reads_the_protocol_version_and_vendor_name() -> None:
    bms, client = make(
        modbus("read_input_registers", 0, 3, reply=[0x3031, 0x3030, 0x3030]),
        modbus("read_input_registers", 9, 10, reply=list(ascii_words("HE", 10))),
    )
    assert bms.identify() == Identity("HE", "battery BMS (Modbus RTU)", "", "protocol 010000")
    client.assert_done()


def test_ascii_words_round_trip_high_byte_first() -> None:
    assert ascii_words("HE", 2) == (ord("H") * 256 + ord("E"), 0)
    assert words_ascii([0x4845, 0x4C4C, 0x4F20, 0]) == "HELLO"
    with pytest.raises(ValueError, match="longer than 4"):
        ascii_words("HELLO", 2)
