"""Scripted tests for the EA PSB 10000 drivers: ModBus (register traffic) and SCPI."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException

from hil.errors import InstrumentReportedError, InstrumentTimeout, MalformedReply, RatingError
from instruments.base import Identity, Rating
from instruments.connection import ModbusConnection, ScpiConnection
from instruments.psb10000 import (
    Psb10000,
    Psb10000Scpi,
    PsbState,
    Regulation,
    from_raw,
    to_raw,
)
from instruments.scripted import (
    ModbusStep,
    ScriptedModbusClient,
    ScriptedVisaResource,
    VisaScript,
    modbus,
    query,
    write,
)

RESOURCE = "modbus-tcp://127.0.0.1:5502"
RATING = Rating(voltage=500.0, current=60.0, power=30000.0)


def make(
    *steps: ModbusStep, rating: Rating | None = RATING
) -> tuple[Psb10000, ScriptedModbusClient]:
    client = ScriptedModbusClient(steps)
    connection = ModbusConnection(RESOURCE, client_factory=lambda: client)
    return Psb10000(connection, device_id=1, rating=rating, name="E003-psb"), client


def float_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def test_scaling_is_0xcccc_at_nominal() -> None:
    assert to_raw(500.0, 500.0, 0xD0E5) == 0xCCCC
    assert to_raw(250.0, 500.0, 0xD0E5) == 0x6666
    assert from_raw(0xCCCC, 60.0) == 60.0
    assert to_raw(1000.0, 500.0, 0xD0E5) == 0xD0E5


def test_setpoints_write_scaled_registers() -> None:
    psb, client = make(
        modbus("write_coil", 402, True),
        modbus("write_register", 500, 36700),  # 52428 x 0.7 = 36699.6
        modbus("write_register", 501, 2184),
        modbus("write_register", 499, 2621),
        modbus("write_register", 502, 26214),
        modbus("write_register", 498, 5243),  # 52428 x 0.1 = 5242.8
        modbus("write_coil", 409, False),
        modbus("write_coil", 405, True),
    )
    psb.set_remote()
    psb.set_voltage(350.0)
    psb.set_current(2.5)
    psb.set_sink_current(3.0)
    psb.set_power(15000.0)
    psb.set_sink_power(3000.0)
    psb.set_resistance_mode(False)
    psb.set_output(True)
    client.assert_done()


def test_protection_levels_may_reach_110_percent() -> None:
    psb, client = make(modbus("write_register", 550, 0xE147))
    psb.set_ovp(550.0)
    client.assert_done()
    with pytest.raises(RatingError, match="OCP"):
        psb.set_ocp(67.0)


def test_setpoint_above_nominal_is_refused_without_traffic() -> None:
    psb, client = make()
    with pytest.raises(RatingError, match="500"):
        psb.set_voltage(510.0)
    with pytest.raises(RatingError):
        psb.program(voltage=350.0, current=2.0, power=1000.0, sink_current=61.0, sink_power=1.0)
    assert client.log == []


def test_read_decodes_state_and_signs_sink_current() -> None:
    state = PsbState.OUTPUT_ON | PsbState.REMOTE | PsbState.SINK | (Regulation.CC << 9)
    words = [
        int(state) >> 16,
        int(state) & 0xFFFF,
        0xCCCC * 350 // 500,
        round(0xCCCC * 2 / 60),
        1234,
    ]
    psb, client = make(modbus("read_holding_registers", 505, 5, reply=words))
    reading = psb.read()
    assert reading.voltage == pytest.approx(350.0, abs=0.01)
    assert reading.current == pytest.approx(-2.0, abs=0.001)
    assert reading.power < 0
    assert reading.sinking and reading.output_on and not reading.tripped
    assert reading.state.regulation is Regulation.CC
    client.assert_done()


def test_state_trip_bits() -> None:
    state = int(PsbState.ALARM | PsbState.OVP)
    psb, _ = make(modbus("read_holding_registers", 505, 2, reply=[state >> 16, state & 0xFFFF]))
    assert PsbState.OVP in psb.state()


def test_rating_read_from_nominal_registers_and_identity() -> None:
    psb, client = make(
        modbus("read_holding_registers", 121, 2, reply=float_words(500.0)),
        modbus("read_holding_registers", 123, 2, reply=float_words(60.0)),
        modbus("read_holding_registers", 125, 2, reply=float_words(30000.0)),
        modbus("write_register", 500, 0xCCCC),
        modbus("read_holding_registers", 121, 2, reply=float_words(500.0)),
        modbus("read_holding_registers", 123, 2, reply=float_words(60.0)),
        modbus("read_holding_registers", 125, 2, reply=float_words(30000.0)),
        rating=None,
    )
    psb.set_voltage(500.0)
    assert psb.rating == RATING
    assert psb.identify() == Identity(
        "Elektro-Automatik", "PSB 10000 (500 V / 60 A / 30000 W)", "", ""
    )
    client.assert_done()


def test_bad_nominal_value_is_malformed() -> None:
    psb, _ = make(modbus("read_holding_registers", 121, 2, reply=float_words(float("nan"))))
    with pytest.raises(MalformedReply, match="nominal"):
        psb.read_nominal()


def test_modbus_exception_response_is_reported_with_resource() -> None:
    psb, _ = make(modbus("write_register", 500, 0xCCCC, reply=("exception", 2)))
    with pytest.raises(InstrumentReportedError, match="illegal data address") as caught:
        psb.set_voltage(500.0)
    assert RESOURCE in str(caught.value)


def test_no_reply_is_a_timeout_and_the_next_call_reconnects() -> None:
    first = ScriptedModbusClient(
        [modbus("read_holding_registers", 505, 2, reply=ModbusIOException("no response"))]
    )
    second = ScriptedModbusClient([modbus("read_holding_registers", 505, 2, reply=[0, 128])])
    clients = iter([first, second])
    connection = ModbusConnection(RESOURCE, client_factory=lambda: next(clients))
    psb = Psb10000(connection, device_id=1, rating=RATING)
    with pytest.raises(InstrumentTimeout) as caught:
        psb.state()
    assert "505" in str(caught.value) and RESOURCE in str(caught.value)
    assert psb.state() == PsbState.OUTPUT_ON
    assert not first.connected


def test_short_register_reply_is_malformed() -> None:
    psb, _ = make(modbus("read_holding_registers", 505, 5, reply=[0, 0]))
    with pytest.raises(MalformedReply, match="expected 5 registers"):
        psb.read()


@settings(max_examples=60, deadline=None)
@given(amps=st.floats(allow_nan=True, allow_infinity=True))
def test_never_writes_a_set_value_outside_its_rating(amps: float) -> None:
    client = ScriptedModbusClient()
    psb = Psb10000(
        ModbusConnection(RESOURCE, client_factory=lambda: client), device_id=1, rating=RATING
    )
    inside = 0.0 <= amps <= 60.0
    if inside:
        client.steps.append(modbus("write_register", 499, to_raw(amps, 60.0, 0xD0E5)))
        psb.set_sink_current(amps)
    else:
        with pytest.raises(RatingError):
            psb.set_sink_current(amps)
    client.assert_done()
    for call, _, value, _ in client.log:
        assert call == "write_register" and value <= 0xCCCC


def test_scpi_path_with_units_in_replies() -> None:
    resource = ScriptedVisaResource(
        [
            write("SYST:LOCK ON"),
            write("SINK:CURR 5"),
            query("SINK:CURR?", "5.00 A"),
            query("MEAS:ARR?", "350.00 V, -2.00 A, -700.00 W"),
            query("MEAS:ARR?", "350.00V,-5.00A,-1.75kW"),
            query("MEAS:CURR?", "-500mA"),
            query("MEAS:VOLT?", "43.50V"),
            query("MEAS:VOLT?", "350.00 A"),
            query("MEAS:VOLT?", "1.0kW"),
        ]
    )
    psb = Psb10000Scpi(
        ScpiConnection("TCPIP0::127.0.0.1::5025::SOCKET", opener=VisaScript(resource)),
        rating=RATING,
    )
    psb.lock()
    psb.sink_current = 5.0
    assert psb.sink_current == 5.0
    array = psb.measure_array()
    assert (array.voltage, array.current, array.power) == (350.0, -2.0, -700.0)
    array = psb.measure_array()
    assert (array.voltage, array.current, array.power) == (350.0, -5.0, -1750.0)
    assert psb.measured_current == -0.5
    assert psb.measured_voltage == 43.5
    for _ in range(2):
        with pytest.raises(MalformedReply, match="not a number in V"):
            _ = psb.measured_voltage
    resource.assert_done()


def test_the_default_unit_id_is_zero_and_sink_protections_are_569_570() -> None:
    steps = [
        modbus("write_register", 569, round(22.0 / 60.0 * 0xCCCC), device_id=0),
        modbus("write_register", 570, round(3300.0 / 30000.0 * 0xCCCC), device_id=0),
    ]
    client = ScriptedModbusClient(steps)
    psb = Psb10000(ModbusConnection(RESOURCE, client_factory=lambda: client), rating=RATING)
    psb.set_sink_ocp(22.0)
    psb.set_sink_opp(3300.0)
    with pytest.raises(RatingError, match="sink OCP"):
        psb.set_sink_ocp(66.1)
    client.assert_done()
