"""The emulated EA PSB 10000 on a plant: ModBus TCP and SCPI with the real drivers."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plant_servers import PlantServers, bus_node, context, emulated_bench, modbus_client

from hil.clock import SimClock
from hil.envelope import UnitEnvelope
from hil.errors import InstrumentReportedError
from hil.units.bidirectional import BidirectionalUnit
from instruments.base import Rating
from instruments.emulation.models.psb10000 import (
    FULL_SCALE,
    PROTECTION_CAP,
    SET_CAP,
    Psb10000Model,
)
from instruments.emulation.models.psb10000_scpi import Psb10000ScpiModel
from instruments.emulation.plant import VoltageReferenceSpec
from instruments.psb10000 import Psb10000, Psb10000Scpi, PsbState, Regulation

TIMEOUT_S = 5.0
REF = "LAB.reference"
RATING = Rating(voltage=500.0, current=180.0, power=30000.0)
KEY = "BID2.bidirectional"
T = TypeVar("T")


def reference() -> VoltageReferenceSpec:
    """Something else holding the bus at 350 V, so the PSB can source into it or sink from it."""
    return VoltageReferenceSpec(
        name=REF,
        node="bus",
        max_voltage_v=500.0,
        max_current_a=20.0,
        voltage_v=350.0,
        current_limit_a=20.0,
        output_on=True,
    )


@dataclass
class ModbusRig:
    h: PlantServers
    model: Psb10000Model
    port: int
    psb: Psb10000

    def plant_current(self) -> float:
        return self.h.call(lambda: self.h.plant.state(KEY).current)

    def client(self) -> AbstractContextManager[Any]:
        return modbus_client(self.port, timeout=TIMEOUT_S)


@pytest.fixture
def mrig() -> Iterator[ModbusRig]:
    ctx = context(emulated_bench(), "BID2", "psb10000")
    assert ctx.key == KEY
    with PlantServers([bus_node()], [*Psb10000Model.port_specs(ctx), reference()]) as h:
        model = h.add(Psb10000Model, ctx)
        port = h.serve_tcp(model)
        psb = Psb10000.open(f"modbus-tcp://127.0.0.1:{port}", device_id=0, timeout=TIMEOUT_S)
        try:
            yield ModbusRig(h, model, port, psb)
        finally:
            psb.close()


def test_identity_and_nominal_registers(mrig: ModbusRig) -> None:
    assert mrig.psb.read_nominal() == RATING
    with mrig.client() as client:
        words = client.read_holding_registers(1, count=20, device_id=0).registers
        assert struct.pack(">20H", *words).rstrip(b"\0").decode() == "PSB 10500-180"
        words = client.read_holding_registers(151, count=20, device_id=0).registers
        serial = struct.pack(">20H", *words).rstrip(b"\0").decode()
        assert serial == mrig.model.ctx.serial_number()


def test_sources_into_the_bus_in_cc(mrig: ModbusRig) -> None:
    psb = mrig.psb
    psb.set_remote()
    psb.program(voltage=380.0, current=2.0, power=30000.0, sink_current=0.0, sink_power=0.0)
    psb.set_output(True)
    mrig.h.advance(2.0)
    assert mrig.plant_current() == pytest.approx(2.0, abs=0.01)
    reading = psb.read()
    assert reading.output_on and not reading.sinking and not reading.tripped
    assert reading.current == pytest.approx(2.0, abs=0.02)
    assert reading.voltage == pytest.approx(350.0, abs=0.5)
    assert reading.power == pytest.approx(700.0, rel=0.02)
    assert reading.state.regulation is Regulation.CC
    assert PsbState.REMOTE in reading.state


def test_sinks_from_the_bus(mrig: ModbusRig) -> None:
    psb = mrig.psb
    psb.set_remote()
    psb.program(voltage=300.0, current=0.0, power=0.0, sink_current=2.0, sink_power=30000.0)
    psb.set_output(True)
    mrig.h.advance(2.0)
    assert mrig.plant_current() == pytest.approx(-2.0, abs=0.01)
    reading = psb.read()
    assert reading.sinking and reading.current == pytest.approx(-2.0, abs=0.02)
    assert reading.power == pytest.approx(-700.0, rel=0.02)
    assert reading.state.regulation is Regulation.CC


def test_power_set_value_limits_the_current(mrig: ModbusRig) -> None:
    psb = mrig.psb
    psb.set_remote()
    psb.program(voltage=380.0, current=10.0, power=380.0, sink_current=0.0, sink_power=0.0)
    psb.set_output(True)
    mrig.h.advance(2.0)
    assert mrig.plant_current() == pytest.approx(1.0, abs=0.01)
    assert psb.read().state.regulation is Regulation.CP


def test_settings_need_remote_and_bad_addresses_or_values_are_refused(mrig: ModbusRig) -> None:
    with mrig.client() as client:
        refused = [
            client.write_register(500, 100, device_id=0),
            client.write_coil(405, True, device_id=0),
            client.write_register(550, 100, device_id=0),
        ]
        assert [(r.isError(), r.exception_code) for r in refused] == [(True, 0x07)] * 3
        assert not client.write_coil(402, True, device_id=0).isError()
        assert not client.write_register(500, SET_CAP, device_id=0).isError()
        assert not client.write_register(550, PROTECTION_CAP, device_id=0).isError()
        for response, code in (
            (client.write_register(500, SET_CAP + 1, device_id=0), 3),
            (client.write_register(550, PROTECTION_CAP + 1, device_id=0), 3),
            (client.write_register(505, 0, device_id=0), 2),
            (client.write_register(121, 0, device_id=0), 2),
            (client.read_holding_registers(503, count=1, device_id=0), 2),
            (client.read_holding_registers(600, count=1, device_id=0), 2),
            (client.read_coils(403, count=1, device_id=0), 2),
        ):
            assert response.isError() and response.exception_code == code
        assert client.read_holding_registers(500, count=1, device_id=0).registers == [SET_CAP]
    assert mrig.h.call(lambda: mrig.model.physics.levels["voltage"]) == pytest.approx(
        500.0 * SET_CAP / FULL_SCALE
    )


def test_over_voltage_trip_latches_until_acknowledged(mrig: ModbusRig) -> None:
    psb = mrig.psb
    psb.set_remote()
    psb.program(voltage=350.0, current=1.0, power=30000.0, sink_current=1.0, sink_power=30000.0)
    psb.set_output(True)
    psb.set_ovp(300.0)
    mrig.h.advance(0.5)
    state = psb.state()
    assert PsbState.OVP in state and PsbState.ALARM in state
    assert PsbState.OUTPUT_ON not in state
    psb.set_ovp(550.0)
    with mrig.client() as client:
        assert not client.write_coil(411, True, device_id=0).isError()
    assert not psb.state() & (PsbState.ALARM | PsbState.OVP)
    psb.set_output(True)
    assert psb.read().output_on


def test_make_safe_and_leaving_remote_switch_the_output_off(mrig: ModbusRig) -> None:
    psb = mrig.psb
    psb.set_remote()
    psb.program(voltage=380.0, current=1.0, power=30000.0, sink_current=0.0, sink_power=0.0)
    psb.set_output(True)

    def make_safe() -> None:
        mrig.h.plant.make_safe()
        mrig.model.after_make_safe()

    mrig.h.call(make_safe)
    assert not psb.read().output_on
    assert psb.connection.read_coils(405, 1, device_id=0) == [False]
    psb.set_output(True)
    assert psb.read().output_on
    psb.set_remote(False)
    state = psb.state()
    assert PsbState.OUTPUT_ON not in state and PsbState.REMOTE not in state


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.integers(0, 0xFFFF))
def test_set_value_register_accepts_exactly_up_to_102_percent(mrig: ModbusRig, raw: int) -> None:
    with mrig.client() as client:
        assert not client.write_coil(402, True, device_id=0).isError()
        response = client.write_register(501, raw, device_id=0)
        if raw <= SET_CAP:
            assert not response.isError()
            assert client.read_holding_registers(501, count=1, device_id=0).registers == [raw]
            limit = mrig.h.call(lambda: mrig.h.plant.bidirectional(KEY).source_limit_a)
            assert limit == pytest.approx(raw * 180.0 / FULL_SCALE)
        else:
            assert response.isError() and response.exception_code == 3


# ---- SCPI ------------------------------------------------------------------------------


@dataclass
class ScpiRig:
    h: PlantServers
    model: Psb10000ScpiModel
    psb: Psb10000Scpi

    def errors(self) -> list[tuple[int, str]]:
        return [(e.code, e.message) for e in self.psb.errors()]

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` on the plant once the instrument has executed every command sent.

        SCPI writes have no reply, so ``*OPC?`` first: otherwise the plant could be touched
        before the server has even read the last command.
        """
        self.psb.wait_complete()
        return self.h.call(func)

    def advance(self, seconds: float) -> None:
        self.psb.wait_complete()
        self.h.advance(seconds)


@pytest.fixture
def srig() -> Iterator[ScpiRig]:
    bench = emulated_bench()
    ctx = context(bench, "BID2", "psb10000")
    with PlantServers([bus_node()], [*Psb10000ScpiModel.port_specs(ctx), reference()]) as h:
        model = h.add(Psb10000ScpiModel, ctx)
        port = h.serve_tcp(model, terminator=b"\n")
        psb = Psb10000Scpi.open(
            f"TCPIP0::127.0.0.1::{port}::SOCKET", rating=RATING, timeout=TIMEOUT_S
        )
        try:
            yield ScpiRig(h, model, psb)
        finally:
            psb.connection.close()


def test_scpi_settings_need_the_lock(srig: ScpiRig) -> None:
    psb = srig.psb
    assert psb.query("*IDN?").startswith("EA Elektro-Automatik,PSB 10500-180,EMU")
    psb.voltage = 300.0
    assert srig.errors() == [(-221, "Settings conflict")]
    assert psb.query("SYST:LOCK:OWN?") == "NONE"
    strict = Psb10000Scpi(psb.connection, rating=RATING, strict=True)
    with pytest.raises(InstrumentReportedError, match="-221"):
        strict.output = True
    psb.lock()
    assert psb.query("SYST:LOCK:OWN?") == "REMOTE"
    strict.voltage = 300.0
    assert psb.voltage == 300.0
    psb.write("VOLT 600")
    assert srig.errors() == [(-222, "Data out of range")]
    assert psb.query("VOLT? MAX") == "510.00V"


def test_scpi_sink_with_units_in_replies(srig: ScpiRig) -> None:
    psb = srig.psb
    psb.lock()
    psb.voltage = 300.0
    psb.current = 0.0
    psb.sink_current = 5.0
    psb.sink_power = 30000.0
    assert psb.query("SINK:CURR?") == "5.00A"
    assert psb.sink_current == 5.0
    psb.output = True
    srig.advance(2.0)
    array = psb.measure_array()
    assert array.voltage == pytest.approx(350.0, abs=0.5)
    assert array.current == pytest.approx(-5.0, abs=0.05)
    assert array.power == pytest.approx(-1750.0, rel=0.02)
    text = psb.query("MEAS:ARR?")
    volts, amps, watts = text.split(",")
    assert volts.endswith("V") and amps.endswith("A") and watts.endswith("kW")
    assert amps.startswith("-5.0") and watts.startswith("-1.7")
    assert psb.query("OUTP?") == "ON"
    assert srig.errors() == []


def test_interface_monitoring_drops_remote_and_output(srig: ScpiRig) -> None:
    psb, h = srig.psb, srig.h
    psb.lock()
    psb.voltage = 380.0
    psb.current = 1.0
    psb.power = 30000.0
    psb.write("SYST:COMM:MON:TIM 2")
    psb.write("SYST:COMM:MON:ACT ON")
    psb.output = True
    # Every message restarts the period, so below the plant is touched only right after a
    # query (which proves the instrument has executed everything before it).
    assert psb.query("SYST:COMM:MON:ACT?") == "ON"
    h.advance(1.5)
    assert psb.query("SYST:LOCK:OWN?") == "REMOTE"
    h.advance(1.9)
    assert h.call(lambda: h.plant.bidirectional(KEY).output_on)
    h.advance(0.2)  # 2.1 s of silence: the deadline fell inside this advance
    assert not h.call(lambda: h.plant.bidirectional(KEY).output_on)
    assert h.call(lambda: srig.model.status()["monitor"]["expirations"]) == 1
    assert psb.query("SYST:LOCK:OWN?") == "NONE"
    assert psb.query("OUTP?") == "OFF"
    psb.output = True
    assert srig.errors() == [(-221, "Settings conflict")]


def test_a_late_message_finds_the_unit_already_out_of_remote(srig: ScpiRig) -> None:
    psb = srig.psb
    psb.lock()
    psb.write("SYST:COMM:MON:TIM 1")
    psb.write("SYST:COMM:MON:ACT ON")
    srig.call(lambda: srig.h.plant.advance(5.0))  # past the deadline without on_time
    psb.voltage = 10.0
    assert srig.errors() == [(-221, "Settings conflict")]
    assert psb.voltage == 0.0


def test_scpi_make_safe_and_reset(srig: ScpiRig) -> None:
    psb = srig.psb
    psb.lock()
    psb.voltage = 380.0
    psb.current = 1.0
    psb.power = 30000.0
    psb.output = True

    def make_safe() -> None:
        srig.h.plant.make_safe()
        srig.model.after_make_safe()

    srig.call(make_safe)
    assert psb.query("OUTP?") == "OFF"
    psb.output = True
    psb.reset()
    assert psb.query("OUTP?") == "OFF"
    assert psb.voltage == 0.0
    assert psb.query("VOLT:PROT?") == "550.00V"


# ---- issue 21: sink protections, unit ids, EA's answers --------------------------------


def sink_envelope() -> UnitEnvelope:
    """A PSB allowed to source 10 A but sink only 2 A (sink OCP 2.2 A, source OCP 11 A)."""
    return UnitEnvelope(
        "BID2",
        voltage_min=300.0,
        voltage_max=380.0,
        current_source_max=10.0,
        current_sink_max=2.0,
        power_max=5000.0,
        slew_max=10.0,
    )


def test_armed_sink_ocp_trips_a_sink_current_past_it_end_to_end(mrig: ModbusRig) -> None:
    """The adapter arms sink OCP (569) from the envelope; the emulated PSB trips on it."""
    unit = BidirectionalUnit("BID2", mrig.psb, sink_envelope(), SimClock(mrig.h.advance))
    unit.arm()
    with mrig.client() as client:
        ocp = client.read_holding_registers(553, count=1, device_id=0).registers[0]
        sink_ocp = client.read_holding_registers(569, count=2, device_id=0).registers
    assert ocp * 180.0 / FULL_SCALE == pytest.approx(11.0, abs=0.01)
    assert sink_ocp[0] * 180.0 / FULL_SCALE == pytest.approx(2.2, abs=0.01)
    assert sink_ocp[1] * 30000.0 / FULL_SCALE == pytest.approx(5500.0, abs=1.0)
    unit.set_current(-1.5)
    mrig.h.advance(2.0)
    assert mrig.plant_current() == pytest.approx(-1.5, abs=0.01)
    assert not mrig.psb.read().tripped
    # A sink current past the sink OCP (as a faulty set value would ask for): the PSB trips.
    mrig.psb.set_sink_current(3.0)
    mrig.h.advance(1.0)
    state = mrig.psb.state()
    assert PsbState.OCP in state and PsbState.ALARM in state
    assert PsbState.OUTPUT_ON not in state
    assert mrig.plant_current() == 0.0
    with mrig.client() as client:
        counters = client.read_holding_registers(520, count=8, device_id=0).registers
    assert counters == [0, 1, 0, 0, 0, 0, 0, 0]


def test_source_and_sink_ocp_are_separate(mrig: ModbusRig) -> None:
    """5 A sourced passes a 3 A sink OCP; 5 A sunk passes a 3 A source OCP; each trips alone."""
    psb = mrig.psb
    psb.set_remote()
    psb.set_ocp(3.0)
    psb.set_sink_ocp(6.0)
    psb.program(voltage=300.0, current=0.0, power=0.0, sink_current=5.0, sink_power=30000.0)
    psb.set_output(True)
    mrig.h.advance(2.0)
    assert mrig.plant_current() == pytest.approx(-5.0, abs=0.01)
    assert not psb.read().tripped
    psb.set_ocp(6.0)
    psb.set_sink_ocp(3.0)
    mrig.h.advance(0.5)
    assert PsbState.OCP in psb.state()


@pytest.mark.parametrize("unit_id", [0, 1])
def test_a_single_channel_psb_answers_unit_id_0_and_1(mrig: ModbusRig, unit_id: int) -> None:
    with mrig.client() as client:
        assert not client.write_coil(402, True, device_id=unit_id).isError()
        assert client.read_coils(402, count=1, device_id=unit_id).bits[0]
        words = client.read_holding_registers(121, count=2, device_id=unit_id).registers
        assert struct.unpack(">f", struct.pack(">2H", *words))[0] == 500.0
        other = client.read_holding_registers(505, count=2, device_id=2)
        assert other.isError() and other.exception_code == 0x0B


def test_listed_registers_answer(mrig: ModbusRig) -> None:
    """127/129 nominal resistance, 511 actual resistance, 520-527 counters, coil 425."""
    psb = mrig.psb
    with mrig.client() as client:
        words = client.read_holding_registers(127, count=4, device_id=0).registers
        r_max, r_min = struct.unpack(">2f", struct.pack(">4H", *words))
        assert (r_max, r_min) == pytest.approx((48.0 * 500 / 180, 0.04 * 500 / 180))
        assert client.read_holding_registers(511, count=1, device_id=0).registers == [0]
        assert client.read_holding_registers(520, count=8, device_id=0).registers == [0] * 8
        refused = client.write_coil(425, True, device_id=0)
        assert refused.isError() and refused.exception_code == 0x07
        assert not client.write_coil(402, True, device_id=0).isError()
        assert not client.write_coil(425, True, device_id=0).isError()
        assert client.read_coils(425, count=1, device_id=0).bits[0]
    psb.program(voltage=380.0, current=4.0, power=30000.0, sink_current=0.0, sink_power=0.0)
    psb.set_output(True)
    mrig.h.advance(2.0)
    with mrig.client() as client:
        raw = client.read_holding_registers(511, count=1, device_id=0).registers[0]
    assert raw * r_max / FULL_SCALE == pytest.approx(350.0 / 4.0, rel=0.02)


def test_scpi_listed_queries_answer_and_old_forms_are_refused(srig: ScpiRig) -> None:
    psb = srig.psb
    assert psb.query("SYST:LOCK:OWN?") == "NONE"
    psb.write("SYST:CONF:MODE UIR")
    assert srig.errors() == [(-221, "Settings conflict")]
    psb.write("*RST")
    assert psb.query("SYST:LOCK:OWN?") == "REMOTE"
    assert psb.query("SYST:CONF:MODE?") == "UIP"
    psb.write("SYST:CONF:MODE UIR")
    assert psb.query("SYSTem:CONFig:MODE?") == "UIR"
    psb.sink_ocp = 3.0
    psb.sink_opp = 900.0
    assert psb.query("SINK:CURR:PROT?") == "3.00A"
    assert psb.query("SINK:POWer:PROTection?") == "900.00W"
    assert (psb.sink_ocp, psb.sink_opp) == (3.0, 900.0)
    psb.write("SYST:COMM:MON:TIM 7")
    assert psb.query("SYSTem:COMMunicate:MONitoring:TIMeout?") == "7"
    assert psb.query("SYST:COMM:MON:ACT?") == "OFF"
    assert psb.query("STAT:QUES?") == "0"
    assert psb.query("STAT:OPER:COND?") == "2"
    assert psb.query("SYST:ERR:ALL?") == '0,"No error"'
    assert psb.query("SYST:NOM:RES?") == f"{48.0 * 500 / 180:.2f}Ohm"
    for old in ("OUTP:PROT:CLE", "SYST:COMM:MON:TIME 2", "SYST:COMM:MON:ACTIVE ON"):
        psb.write(old)
    assert psb.query("SYST:ERR:ALL?") == ",".join(['-113,"Undefined header"'] * 3)


def test_scpi_sink_ocp_trip_is_acknowledged_by_reading_the_error_queue(srig: ScpiRig) -> None:
    psb = srig.psb
    psb.lock()
    psb.voltage = 300.0
    psb.current = 0.0
    psb.sink_power = 30000.0
    psb.sink_ocp = 3.0
    psb.sink_current = 5.0
    psb.output = True
    srig.advance(1.0)
    assert psb.query("STAT:QUES:COND?") == "2"
    assert psb.query("OUTP?") == "OFF"
    assert psb.acknowledge_alarms() == []
    assert psb.query("STAT:QUES:COND?") == "0"
    assert psb.query("OUTP?") == "OFF"
    assert srig.call(lambda: srig.model.status()["alarm_counts"]["OC"]) == 1
