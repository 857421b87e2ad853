"""``hil emulate`` end to end, with plain clients only (no project code on the client side).

Starts the default bench in its own process, then: pyvisa-py identifies, sets and measures
every SCPI instrument; with the IT6000C holding the bus, the bus load draws its set current
and the bus supply sources its set current, confirmed by the other side's meters and by the
control channel's true state; plain pymodbus reads the EA PSB and a battery's registers;
the control channel injects every fault kind and reports it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import pyvisa
from emulated_rig import EMULATED_BENCH
from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient
from pyvisa.resources import MessageBasedResource

from instruments.emulation.client import EmulatorControlError
from instruments.emulation.emulator import BUS_BLEED_OHM
from instruments.emulation.process import EmulatorProcess, start_emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    process = start_emulator(EMULATED_BENCH)
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def rm() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


def open_scpi(rm: pyvisa.ResourceManager, resource: str) -> MessageBasedResource:
    inst = rm.open_resource(resource)
    assert isinstance(inst, MessageBasedResource)
    inst.read_termination = "\n"
    inst.write_termination = "\n"
    inst.timeout = 5000
    return inst


def resource(emulator: EmulatorProcess, key: str) -> str:
    return emulator.resources[key]


def port_state(status: dict[str, Any], port: str) -> dict[str, Any]:
    return next(p for p in status["ports"] if p["port"] == port)


def test_json_line_lists_every_instrument_and_the_control_channel() -> None:
    command = [sys.executable, "-m", "hil.cli", "emulate", str(EMULATED_BENCH), "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as child:
        assert child.stdout is not None
        data = json.loads(child.stdout.readline())
        host, port = data["control"].rsplit(":", 1)
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b'{"cmd": "shutdown"}\n')
            assert json.loads(sock.makefile().readline())["ok"] is True
        assert child.wait(20) == 0
    keys = {item["id"] for item in data["instruments"]}
    assert {
        "E001.converter",
        "E001.battery",
        "SUP1.supply",
        "LOAD1.load",
        "BID2.bidirectional",
    } <= keys
    assert all(set(item) == {"unit", "id", "driver", "resource"} for item in data["instruments"])


@pytest.mark.parametrize(
    ("key", "vendor"),
    [
        ("SUP1.supply", "Agilent Technologies"),
        ("E005.supply", "Agilent Technologies"),
        ("LOAD1.load", "Chroma"),
        ("E005.load", "Chroma"),
        ("BID1.bidirectional", "ITECH"),
    ],
)
def test_plain_pyvisa_identifies_every_scpi_model(
    emulator: EmulatorProcess, rm: pyvisa.ResourceManager, key: str, vendor: str
) -> None:
    inst = open_scpi(rm, resource(emulator, key))
    try:
        assert inst.query("*IDN?").startswith(vendor)
        assert inst.query("SYST:ERR?").split(",")[0].strip("+") == "0"
    finally:
        inst.close()


def test_reference_holds_the_bus_while_supply_sources_and_load_sinks(
    emulator: EmulatorProcess, rm: pyvisa.ResourceManager
) -> None:
    control = emulator.control
    bid = open_scpi(rm, resource(emulator, "BID1.bidirectional"))
    sup = open_scpi(rm, resource(emulator, "SUP1.supply"))
    load = open_scpi(rm, resource(emulator, "LOAD1.load"))
    try:
        for command in ("SYST:REM", "FUNC VOLT", "CURR:LIM 10", "CURR:LIM:NEG -10", "VOLT 350"):
            bid.write(command)
        bid.write("OUTP ON")
        assert bid.query("*OPC?") == "1"
        control.advance(2.0)
        sup.write(":VOLT 380 V;:CURR 0.5;:OUTP ON")
        load.write("MODE CCH;:CURR:STAT:L1 1.2;:LOAD ON")
        assert sup.query("*OPC?") == "1" and load.query("*OPC?") == "1"
        control.advance(5.0)

        bus_v = float(bid.query("MEAS:VOLT?"))
        sourced = float(sup.query("MEAS:CURR?"))
        sunk = float(load.query("MEAS:CURR?"))
        reference = float(bid.query("MEAS:CURR?"))
        assert bus_v == pytest.approx(350.0, abs=1.0)
        assert sourced == pytest.approx(0.5, abs=0.02)
        assert sunk == pytest.approx(1.2, abs=0.02)
        bleed = bus_v / BUS_BLEED_OHM  # the bus's own bleed resistor draws too
        assert reference == pytest.approx(sunk - sourced + bleed, abs=0.01)  # other side's meter

        status = control.status()
        assert port_state(status, "SUP1.supply")["current"] == pytest.approx(0.5, abs=1e-3)
        assert port_state(status, "LOAD1.load")["current"] == pytest.approx(-1.2, abs=1e-3)
        assert port_state(status, "BID1.bidirectional")["current"] == pytest.approx(
            0.7 + 350.0 / BUS_BLEED_OHM, abs=2e-3
        )
        assert status["nodes"]["bus"]["voltage"] == pytest.approx(350.0, abs=1.0)
        assert not status["all_safe"]
    finally:
        for inst, off in ((load, "LOAD OFF"), (sup, "OUTP OFF"), (bid, "OUTP OFF")):
            inst.write(off)
            inst.query("*OPC?")
            inst.close()
        control.advance(1.0)
    assert control.status()["all_safe"]


def test_plain_pymodbus_reads_the_psb_and_a_battery(emulator: EmulatorProcess) -> None:
    host, port = resource(emulator, "BID2.bidirectional").removeprefix("modbus-tcp://").split(":")
    with ModbusTcpClient(host, port=int(port)) as psb:
        nominal = psb.read_holding_registers(121, count=6, device_id=0)
        assert not nominal.isError()
        bad = psb.read_holding_registers(9000, count=1, device_id=0)
        assert bad.isError() and bad.exception_code == 2
    rtu = resource(emulator, "E003.battery").removeprefix("modbus-rtu-tcp://")
    host, port = rtu.split(":")
    with ModbusTcpClient(host, port=int(port), framer=FramerType.RTU) as bms:
        # APIS numbers them 30030/30031 and sends number - 30001 (apis-dcdc_batt_comm
        # drivers/essx_server.py): SoC x10 and status at wire 29-30, version at 0-2.
        reply = bms.read_input_registers(29, count=2, device_id=1)
        assert not reply.isError()
        soc_tenths, status = reply.registers
        version = bms.read_input_registers(0, count=3, device_id=1)
        emulator.control.fault("E003.battery", "permission")
        try:
            withdrawn = bms.read_input_registers(29, count=2, device_id=1)
        finally:
            emulator.control.clear("E003.battery")
    assert soc_tenths == pytest.approx(700, abs=2)  # E003 starts at SoC 0.70
    assert status & 1 == 0  # bit 0 clear: interchange allowed
    assert not version.isError() and version.registers == [0x3031, 0x3030, 0x3030]
    assert not withdrawn.isError() and withdrawn.registers[1] & 1 == 1  # not allowed


@pytest.mark.parametrize(
    ("instrument", "kind", "params", "shows"),
    [
        ("SUP1.supply", "disconnect", {"seconds": 30}, "disconnect"),
        ("SUP1.supply", "delay", {"seconds": 0.5}, "delay"),
        ("LOAD1.load", "garbage", {"count": 2}, "garbage"),
        ("LOAD1.load", "drop", {"count": 1}, "drop"),
        ("E001.converter", "stale", {}, "stale"),
        ("E002.converter", "offset", {"quantity": "current", "value": 0.3}, None),
        ("SUP1.supply", "trip", {"trip": "OVP"}, "OVP"),
        ("E003.converter", "alarm", {"level": "heavy"}, None),
        ("E004.battery", "permission", {}, None),
    ],
)
def test_control_channel_injects_every_fault_kind(
    emulator: EmulatorProcess, instrument: str, kind: str, params: dict[str, Any], shows: str | None
) -> None:
    control = emulator.control
    control.fault(instrument, kind, **params)
    try:
        status = control.status()
        text = json.dumps(status["instruments"][instrument]) + json.dumps(
            [p for p in status["ports"] if p["unit"] == instrument.split(".")[0]]
        )
        if shows is not None:
            assert shows in text
        assert status["instruments"][instrument] != {}
    finally:
        control.clear()


def test_unknown_fault_kind_and_instrument_are_refused(emulator: EmulatorProcess) -> None:
    control = emulator.control
    with pytest.raises(EmulatorControlError, match="fault kind"):
        control.fault("SUP1.supply", "gremlins")
    with pytest.raises(EmulatorControlError, match="no instrument"):
        control.fault("NOPE.x", "stale")


def test_an_unknown_fault_kind_or_field_is_refused_with_the_full_list(
    emulator: EmulatorProcess,
) -> None:
    """Every kind the instrument takes is listed (the converter's ``alarm`` too); a field
    the kind does not read is refused, not ignored."""
    control = emulator.control
    with pytest.raises(EmulatorControlError) as refused:
        control.fault("E001.converter", "ofset", value=0.6)
    listed = "disconnect, delay, garbage, drop, stale, offset, trip, alarm"
    assert f"this instrument takes: {listed}" in str(refused.value)
    with pytest.raises(EmulatorControlError, match="has no field 'valeu'; its fields: quantity"):
        control.fault("E001.converter", "offset", valeu=0.6)
