"""The emulated Chroma 63200A electronic load on a plant: raw SCPI and the lab driver.

Both of the bench's loads: LOAD1 (63202A-600-140) on the 350 V bus, held by a voltage
reference, and E005's 63202A-150-200 on its battery node, where a current source stands in
for the converter pushing into Sony's battery emulator. The plant moves only when a test
advances it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import PlantServers, bus_node, context, emulated_bench
from pyvisa.resources import MessageBasedResource
from scpi_clients import context_of, scpi_errors, serve_visa, visa_client

from hil.errors import InstrumentReportedError, RatingError
from instruments.chroma63200a import ChannelStatus, Chroma63200A, LoadMode
from instruments.emulation.models import models
from instruments.emulation.models.chroma63200a import STAT_OVP, Chroma63200AModel
from instruments.emulation.plant import CurrentSourceSpec, NodeSpec, VoltageReferenceSpec

BUS_KEY = "LOAD1.load"
BATTERY_KEY = "E005.load"
BUS_V = 350.0
BLEED_A = BUS_V / 10_000.0


@dataclass
class Rig:
    h: PlantServers
    model: Chroma63200AModel
    inst: MessageBasedResource
    resource: str
    key: str

    def send(self, message: str) -> None:
        """Write a program message and wait until the model has executed it."""
        assert self.inst.query(f"{message};*OPC?") == "1"

    def number(self, query: str) -> float:
        return float(self.inst.query(query))

    def current(self, port: str | None = None) -> float:
        name = port or self.key
        return self.h.call(lambda: self.h.plant.state(name).current)

    def voltage(self) -> float:
        return self.h.call(lambda: self.h.plant.state(self.key).voltage)


@pytest.fixture
def bus_rig() -> Iterator[Rig]:
    ctx = context(emulated_bench(), "LOAD1", "chroma63200a")
    ref = VoltageReferenceSpec(
        name="ref",
        node="bus",
        max_voltage_v=600.0,
        max_current_a=200.0,
        voltage_v=BUS_V,
        output_on=True,
    )
    with PlantServers([bus_node()], [*Chroma63200AModel.port_specs(ctx), ref]) as h:
        model = h.add(Chroma63200AModel, ctx)
        resource = serve_visa(h, model)
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource, BUS_KEY)


@pytest.fixture
def battery_rig() -> Iterator[Rig]:
    ctx = context_of(emulated_bench(), BATTERY_KEY)
    node = ctx.battery_node
    specs = [
        *Chroma63200AModel.port_specs(ctx),
        CurrentSourceSpec(
            name="converter",
            node=node,
            max_current_a=25.0,
            compliance_v=60.0,
            current_a=5.0,
            output_on=True,
        ),
        VoltageReferenceSpec(
            name="ref", node=node, max_voltage_v=200.0, max_current_a=50.0, voltage_v=160.0
        ),
    ]
    with PlantServers([NodeSpec(name=node)], specs) as h:
        model = h.add(Chroma63200AModel, ctx)
        resource = serve_visa(h, model)
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource, BATTERY_KEY)


def test_registered_for_its_driver() -> None:
    assert models()["chroma63200a"] is Chroma63200AModel


def test_identity_and_error_format(bus_rig: Rig) -> None:
    vendor, model, serial, firmware = bus_rig.inst.query("*IDN?").split(",")
    assert (vendor, model, firmware) == ("Chroma", "63202A-600-140", "01.00")
    assert serial
    assert bus_rig.inst.query("SYST:ERR?") == '0,"No error"'


def test_constant_current_sinks_from_the_held_bus(bus_rig: Rig) -> None:
    rig = bus_rig
    rig.send("MODE CCH;:CURR:STAT:L1 2;:LOAD ON")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-2.0, abs=1e-9)
    assert rig.current("ref") == pytest.approx(2.0 + BLEED_A, abs=1e-3)
    assert rig.number("MEAS:CURR?") == pytest.approx(2.0, abs=1e-9)  # sunk: positive
    volts = rig.number("MEAS:VOLT?")
    assert volts == pytest.approx(rig.voltage(), abs=1e-9)
    assert rig.number("MEAS:POW?") == pytest.approx(2.0 * volts, rel=1e-9)
    assert rig.number("FETC:CURR?") == pytest.approx(2.0, abs=1e-9)
    assert rig.inst.query("LOAD?;:MODE?") == "1;CCH"
    assert int(rig.inst.query("STAT:CHAN:COND?")) == 0


def test_turn_on_voltage_gates_the_current(bus_rig: Rig) -> None:
    rig = bus_rig
    rig.send("CONF:VOLT:ON 360;:CURR:STAT:L1 2;:LOAD ON")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(0.0, abs=1e-9)
    assert rig.inst.query("LOAD?") == "1"
    rig.send("CONF:VOLT:ON 300")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-2.0, abs=1e-9)


def test_out_of_range_levels_are_refused_and_ranges_hold(bus_rig: Rig) -> None:
    rig = bus_rig
    for command in (
        "CURR:STAT:L1 150",
        "VOLT:STAT:L1 700",
        "CONF:VOLT:ON 700",
        "VOLT:STAT:ILIM 141",
        "CURR:STAT:L1 -1",
        "CHAN 2",
    ):
        rig.send(command)
        assert scpi_errors(rig.inst) == [-222], command
    rig.send("CURR:STAT:L1 100;:MODE CCL")
    assert rig.number("CURR:STAT:L1?") == pytest.approx(14.0)  # clamped into the low range
    rig.send("CURR:STAT:L1 20")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("MODE CRH")
    assert scpi_errors(rig.inst) == [-221]  # CR is not emulated
    assert rig.inst.query("MODE?") == "CCL"


def test_short_sinks_the_range_maximum(bus_rig: Rig) -> None:
    rig = bus_rig
    rig.send("MODE CCL;:CURR:STAT:L1 1;:LOAD:SHOR ON;:LOAD ON")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-14.0, abs=1e-6)
    rig.send("LOAD:SHOR OFF")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-1.0, abs=1e-6)


def test_constant_voltage_is_sonys_battery_emulator(battery_rig: Rig) -> None:
    rig = battery_rig
    rig.send("MODE CVH;:VOLT:STAT:L1 48.5;:LOAD ON")
    rig.h.advance(2.0)
    assert rig.voltage() == pytest.approx(48.5, abs=0.01)
    node = rig.model.ctx.battery_node
    bleed = rig.h.call(lambda: rig.h.plant.node_voltage(node)) / 10_000.0
    assert rig.current() == pytest.approx(-(5.0 - bleed), abs=1e-3)
    assert rig.inst.query("MODE?") == "CVH"
    # A current limit below what the converter pushes: the node rises to the source's
    # compliance and the load takes only its limit.
    rig.send("VOLT:STAT:ILIM 3")
    rig.h.advance(2.0)
    assert rig.current() == pytest.approx(-3.0, abs=1e-6)
    assert rig.voltage() == pytest.approx(60.0, abs=0.05)


def test_over_voltage_trips_and_latches(battery_rig: Rig) -> None:
    rig = battery_rig
    rig.send("CURR:STAT:L1 1;:LOAD ON")

    def reference(volts: float, on: bool) -> None:
        ref = rig.h.plant.voltage_reference("ref")
        ref.set_voltage(volts)
        ref.set_output(on)

    rig.h.call(lambda: reference(160.0, True))  # above the 150 V model's 157.5 V OVP
    rig.h.advance(1.0)
    assert int(rig.inst.query("STAT:CHAN:COND?")) == STAT_OVP
    assert rig.inst.query("LOAD?") == "0"
    rig.send("LOAD ON")
    assert scpi_errors(rig.inst) == [-221]
    rig.h.call(lambda: reference(50.0, True))
    rig.send("LOAD:PROT:CLE")
    assert int(rig.inst.query("STAT:CHAN:COND?")) == 0
    assert rig.inst.query("LOAD?") == "0"  # clearing leaves the input off
    rig.send("LOAD ON")
    rig.h.advance(1.0)
    assert rig.inst.query("LOAD?") == "1"
    assert rig.current() == pytest.approx(-1.0, abs=1e-6)


def test_reset_and_make_safe(bus_rig: Rig) -> None:
    rig = bus_rig
    rig.send("MODE CCM;:CURR:STAT:L1 5;:LOAD ON")
    rig.h.advance(1.0)

    def make_safe() -> None:
        rig.h.plant.make_safe()
        rig.model.after_make_safe()

    rig.h.call(make_safe)
    assert rig.inst.query("LOAD?") == "0"
    rig.send("LOAD ON;*RST")
    assert rig.inst.query("LOAD?;:MODE?;:CURR:STAT:L1?;:CONF:VOLT:ON?") == "0;CCH;0.0;0.0"
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(0.0, abs=1e-9)


def test_driver_on_the_bus_load(bus_rig: Rig) -> None:
    rig = bus_rig
    load = Chroma63200A.open(
        rig.resource, model="63202A-600-140", name="LOAD1", strict=True, timeout=10.0
    )
    try:
        assert load.identify().model == "63202A-600-140"
        load.turn_on_voltage = 300.0
        load.sink_current(2.5)
        load.load = True
        rig.h.advance(1.0)
        reading = load.read()
        assert reading.load_on and not reading.tripped
        assert reading.current == pytest.approx(-rig.current(), abs=1e-9)
        assert reading.current == pytest.approx(2.5, abs=1e-9)
        assert reading.power == pytest.approx(reading.voltage * reading.current, rel=1e-9)
        assert load.mode is LoadMode.CCH
        with pytest.raises(RatingError):
            load.current = 150.0  # refused before sending
        with pytest.raises(InstrumentReportedError, match="-222"):
            load.write_setting("MODE CCL;:CURR:STAT:L1 20")
        load.load = False
        rig.h.advance(1.0)
        assert rig.current() == pytest.approx(0.0, abs=1e-9)
        assert load.channel_status() == ChannelStatus(0)
    finally:
        load.close()


def test_driver_holds_the_battery_node_in_cv(battery_rig: Rig) -> None:
    rig = battery_rig
    load = Chroma63200A.open(
        rig.resource, model="63202A-150-200", name="E005", strict=True, timeout=10.0
    )
    try:
        load.hold_voltage(48.5, 22.0)
        load.load = True
        rig.h.advance(2.0)
        reading = load.read()
        # E005's meters carry noise (bench file: 50 mV and 2 mA standard deviations)
        assert reading.voltage == pytest.approx(rig.voltage(), abs=0.3)
        assert rig.voltage() == pytest.approx(48.5, abs=0.01)
        assert reading.current == pytest.approx(-rig.current(), abs=0.02)
        assert rig.current() == pytest.approx(-5.0, abs=0.01)
        assert load.mode is LoadMode.CVH
    finally:
        load.close()


def test_dynamic_cc_draws_the_time_weighted_mean(bus_rig: Rig) -> None:
    rig = bus_rig
    rig.send("MODE CCDH;:CURR:DYN:L1 4;:CURR:DYN:L2 1;:CURR:DYN:T1 1ms;:CURR:DYN:T2 0.002")
    rig.send("CURR:DYN:RISE 0.5;:CURR:DYN:FALL 0.25;:CURR:DYN:REP 0;:LOAD ON")
    assert scpi_errors(rig.inst) == []
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-(4.0 * 1 + 1.0 * 2) / 3, abs=1e-6)
    assert rig.inst.query("MODE?") == "CCDH"
    assert rig.number("CURR:DYN:T1?") == pytest.approx(0.001)
    assert rig.number("CURR:DYN:FALL?") == 0.25
    assert rig.number("CURR:DYN:REP?") == 0
    rig.send("MODE CCDL;:CURR:DYN:L1 15")  # the low range is 10 % of 140 A
    assert scpi_errors(rig.inst) == [-222]
    assert rig.number("CURR:DYN:L1?") == pytest.approx(4.0)
    rig.send("CURR:DYN:T2 0")
    assert scpi_errors(rig.inst) == [-222]


def test_remote_state_and_questionable_register(bus_rig: Rig) -> None:
    rig = bus_rig
    assert rig.inst.query("CONF:REM?") == "0"
    rig.send("CONF:REM ON")
    assert rig.inst.query("CONF:REM?") == "1"
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0
    assert scpi_errors(rig.inst) == []
