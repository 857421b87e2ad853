"""The emulated Keysight N5700 on a plant: raw SCPI with pyvisa-py and the lab driver.

The supply (SUP1, an N5772A on the bus; E005's N5767A on its battery node) is served on a
loopback socket. A voltage reference holds the bus at 350 V, or a constant-current sink
loads it; the plant moves only when a test advances it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plant_servers import PlantServers, bus_node, context, emulated_bench
from pyvisa.resources import MessageBasedResource
from scpi_clients import context_of, scpi_errors, serve_visa, visa_client

from hil.errors import InstrumentReportedError, RatingError
from instruments.emulation.models import models
from instruments.emulation.models.n5700 import (
    OPER_CC,
    OPER_CV,
    QUES_OC,
    QUES_OV,
    QUES_UNR,
    N5700Model,
)
from instruments.emulation.plant import (
    CurrentSinkSpec,
    NodeSpec,
    TripKind,
    VoltageReferenceSpec,
)
from instruments.n5700 import N5700

NR3 = re.compile(r"^[+-]\d\.\d{6}E[+-]\d{2}$")
BUS_V = 350.0
BLEED_A = BUS_V / 10_000.0


@dataclass
class Rig:
    h: PlantServers
    model: N5700Model
    inst: MessageBasedResource
    resource: str

    def send(self, message: str) -> None:
        """Write a program message and wait until the model has executed it."""
        assert self.inst.query(f"{message};*OPC?") == "1"

    def number(self, query: str) -> float:
        reply = self.inst.query(query)
        assert NR3.match(reply), reply
        return float(reply)

    def supply(self) -> tuple[float, float, bool, tuple[str, ...]]:
        state = self.h.call(lambda: self.h.plant.state("SUP1.supply"))
        return state.voltage, state.current, state.output_on, state.trips

    def port_current(self, name: str) -> float:
        return self.h.call(lambda: self.h.plant.state(name).current)

    def reference(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.voltage_reference("ref").set_output(on))

    def sink(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.current_sink("sink").set_output(on))


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx = context(emulated_bench(), "SUP1", "n5700")
    specs = [
        *N5700Model.port_specs(ctx),
        VoltageReferenceSpec(
            name="ref",
            node="bus",
            max_voltage_v=700.0,
            max_current_a=50.0,
            voltage_v=BUS_V,
            output_on=True,
        ),
        CurrentSinkSpec(name="sink", node="bus", max_current_a=10.0, current_a=1.0),
    ]
    with PlantServers([bus_node()], specs) as h:
        model = h.add(N5700Model, ctx)
        resource = serve_visa(h, model)
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource)


def test_registered_for_its_driver() -> None:
    assert models()["n5700"] is N5700Model


def test_identity_and_keysight_error_format(rig: Rig) -> None:
    vendor, model, serial, firmware = rig.inst.query("*IDN?").split(",")
    assert (vendor, model) == ("Agilent Technologies", "N5772A")
    assert serial.startswith("EMU") and firmware
    assert rig.inst.query("SYST:ERR?") == '+0,"No error"'
    rig.inst.write("VOLT:BOGUS 1")
    assert rig.inst.query("SYST:ERR?") == '-113,"Undefined header"'


def test_cc_source_into_a_held_bus_follows_the_plant(rig: Rig) -> None:
    rig.send("CURR 2;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    volts, amps, on, trips = rig.supply()
    assert on and trips == ()
    assert amps == pytest.approx(2.0, abs=1e-9)
    assert rig.port_current("ref") == pytest.approx(-(2.0 - BLEED_A), abs=1e-3)
    assert volts == pytest.approx(BUS_V + 2.0 * rig.model.ctx.line_ohm, abs=0.01)
    assert rig.number("MEAS:CURR?") == pytest.approx(amps, abs=1e-6)
    assert rig.number("MEAS:VOLT?") == pytest.approx(volts, rel=2e-6)
    assert rig.inst.query("OUTP?") == "1"
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0


def test_cv_into_a_sink(rig: Rig) -> None:
    rig.reference(False)
    rig.sink(True)
    rig.send("VOLT 100;CURR 2;CURR:PROT:STAT ON;:OUTP ON")
    rig.h.advance(2.0)
    volts, amps, on, trips = rig.supply()
    assert on and trips == ()
    assert volts == pytest.approx(100.0, abs=0.01)
    assert amps == pytest.approx(1.0 + 100.0 / 10_000.0, abs=1e-3)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CV
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0


def test_wild_forms_with_colons_units_and_long_headers(rig: Rig) -> None:
    rig.send(":VOLT 12 V")
    assert rig.inst.query(":VOLT?") == "+1.200000E+01"
    rig.send(":CURR 500 mA")
    assert rig.inst.query(":CURR?") == "+5.000000E-01"
    rig.send("SOURce:VOLTage:LEVel:IMMediate:AMPLitude 12.5;:SOUR:CURR 1.25E0")
    assert rig.inst.query("volt?;:curr?") == "+1.250000E+01;+1.250000E+00"
    # 105 % of 600 V, and the OVP (660 V at *RST) divided by 1.05 below that
    assert rig.number("VOLT? MAX") == pytest.approx(628.571429)
    assert rig.number("CURR? MAX") == pytest.approx(2.73)
    assert scpi_errors(rig.inst) == []


def test_out_of_range_is_refused_with_222_not_clamped(rig: Rig) -> None:
    rig.send("VOLT 50;CURR 1")
    for command in ("VOLT 700", "VOLT -1", "CURR 3", "CURR -0.1", "VOLT:PROT:LEV 700"):
        rig.send(command)
        assert scpi_errors(rig.inst) == [-222], command
    assert rig.number("VOLT?") == 50.0
    assert rig.number("CURR?") == 1.0
    assert rig.number("VOLT:PROT:LEV?") == 660.0
    state = rig.h.call(lambda: rig.h.plant.state("SUP1.supply"))
    assert state.setpoints == {"voltage_v": 50.0, "current_a": 1.0}


def test_ovp_minimum_rule_both_ways(rig: Rig) -> None:
    rig.send("VOLT 100")
    assert rig.number("VOLT:PROT:LEV? MIN") == pytest.approx(105.0)
    rig.send("VOLT:PROT:LEV 104")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("VOLT:PROT:LEV 105")
    assert scpi_errors(rig.inst) == []
    # now VOLT may not exceed OVP / 1.05
    rig.send("VOLT 100.5")
    assert scpi_errors(rig.inst) == [-222]
    assert rig.number("VOLT?") == 100.0
    # the table minimum (5 V for a 600 V model) still holds at low settings
    rig.send("VOLT 1;VOLT:PROT:LEV 4.9")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("VOLT:PROT:LEV 5")
    assert scpi_errors(rig.inst) == []
    assert rig.h.call(lambda: rig.h.plant.port("SUP1.supply").protection.ovp_v) == 5.0


def test_undervoltage_limit_couples_with_the_setting(rig: Rig) -> None:
    rig.send("VOLT 100")
    assert rig.number("VOLT:LIM:LOW? MAX") == pytest.approx(95.0)
    rig.send("VOLT:LIM:LOW 96")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("VOLT:LIM:LOW 90")
    rig.send("VOLT 90")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("VOLT 95")
    assert scpi_errors(rig.inst) == []
    assert rig.number("VOLT?") == 95.0


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(volts=st.floats(min_value=0.0, max_value=628.0))
def test_ovp_minimum_property(rig: Rig, volts: float) -> None:
    rig.send(f"VOLT:LIM:LOW 0;:VOLT:PROT:LEV 660;:VOLT {volts:.6f}")
    assert scpi_errors(rig.inst) == []
    expected = max(5.0, 1.05 * float(f"{volts:.6f}"))
    assert rig.number("VOLT:PROT:LEV? MIN") == pytest.approx(expected, rel=1e-6, abs=2e-6)


def test_over_voltage_trip_latches_until_cleared(rig: Rig) -> None:
    rig.send("VOLT 300;CURR 1;VOLT:PROT:LEV 320;:OUTP ON")
    rig.h.advance(0.5)
    _, amps, on, trips = rig.supply()
    assert not on and trips == ("OVP",) and amps == 0.0
    assert rig.inst.query("OUTP?") == "0"
    assert int(rig.inst.query("STAT:QUES:COND?")) & QUES_OV
    assert int(rig.inst.query("STAT:QUES?")) & QUES_OV
    # the cause (the bus above the OVP) is still there: clearing trips again
    rig.send("OUTP:PROT:CLE")
    rig.h.advance(0.5)
    assert rig.supply()[3] == ("OVP",)
    rig.send("VOLT:PROT:LEV 400;:OUTP:PROT:CLE")
    rig.h.advance(0.5)
    assert rig.inst.query("OUTP?") == "1"  # back to its programmed state
    # held at 350 V above its 300 V setting, the supply is on but unregulated
    assert int(rig.inst.query("STAT:QUES:COND?")) == QUES_UNR
    assert int(rig.inst.query("STAT:OPER:COND?")) == 0
    rig.send("VOLT 380")
    rig.h.advance(0.5)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC
    assert rig.supply()[1] == pytest.approx(1.0)


def test_current_protection_trips_the_output_in_cc(rig: Rig) -> None:
    rig.send("CURR:PROT:STAT ON;:CURR 1;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    _, amps, on, trips = rig.supply()
    assert not on and trips == ("OCP",) and amps == 0.0
    assert int(rig.inst.query("STAT:QUES:COND?")) & QUES_OC
    assert rig.inst.query("OUTP?") == "0"
    assert rig.port_current("ref") == pytest.approx(BLEED_A, abs=1e-3)
    rig.send("CURR:PROT:STAT OFF;:OUTP:PROT:CLE")
    rig.h.advance(1.0)
    _, amps, on, trips = rig.supply()
    assert on and trips == () and amps == pytest.approx(1.0)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC
    events = rig.h.call(lambda: rig.h.plant.trip_events)
    assert [e.kind for e in events] == [TripKind.OCP]


def test_make_safe_turns_the_output_off_for_good(rig: Rig) -> None:
    rig.send("CURR 2;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    assert rig.inst.query("OUTP?") == "1"

    def make_safe() -> None:
        rig.h.plant.make_safe()
        rig.model.after_make_safe()

    rig.h.call(make_safe)
    assert rig.inst.query("OUTP?") == "0"
    rig.send("OUTP:PROT:CLE")
    rig.h.advance(1.0)
    assert rig.inst.query("OUTP?") == "0"
    assert abs(rig.supply()[1]) < 1e-9


def test_reset_restores_defaults_and_the_plant_follows(rig: Rig) -> None:
    rig.send("CURR 2;VOLT 380;VOLT:PROT:LEV 500;:OUTP ON")
    rig.h.advance(0.5)
    rig.send("*RST")
    assert rig.inst.query("OUTP?;:VOLT?;:CURR?;:VOLT:PROT:LEV?") == (
        "0;+0.000000E+00;+0.000000E+00;+6.600000E+02"
    )
    assert rig.h.call(lambda: rig.h.plant.port("SUP1.supply").protection.ovp_v) == 660.0
    rig.h.advance(0.5)
    assert rig.supply()[1] == pytest.approx(0.0, abs=1e-9)


def test_stale_fault_freezes_the_meters(rig: Rig) -> None:
    rig.send("CURR 1;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    rig.h.call(lambda: rig.model.fault("stale", {}))
    first = rig.number("MEAS:CURR?")
    rig.send("CURR 2")
    rig.h.advance(1.0)
    assert rig.number("MEAS:CURR?") == first
    rig.h.call(rig.model.clear_faults)
    assert rig.number("MEAS:CURR?") == pytest.approx(2.0)


def test_stale_meters_keep_showing_what_they_last_showed(rig: Rig) -> None:
    rig.send("CURR 1;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    volts = rig.number("MEAS:VOLT?")
    full = rig.h.call(rig.model.measure)
    rig.send("CURR 1.5")
    rig.h.advance(1.0)
    amps = rig.number("MEAS:CURR?")
    assert amps == pytest.approx(1.5, rel=1e-3)
    rig.h.call(lambda: rig.model.fault("stale", {}))
    rig.send("CURR 2")
    rig.h.advance(1.0)
    assert rig.supply()[1] == pytest.approx(2.0, rel=1e-3)
    for _ in range(2):
        assert rig.number("MEAS:CURR?") == amps
        assert rig.number("MEAS:VOLT?") == pytest.approx(volts, rel=1e-6)
        shown = rig.h.call(rig.model.measure)
        assert (shown.current, shown.temperature) == (amps, full.temperature)
    rig.h.call(lambda: rig.model.fault("stale", {"on": False}))
    assert rig.number("MEAS:CURR?") == pytest.approx(2.0, rel=1e-3)


def test_offset_fault_shifts_only_its_own_meter(rig: Rig) -> None:
    volts = rig.number("MEAS:VOLT?")
    amps = rig.number("MEAS:CURR?")
    rig.h.call(lambda: rig.model.fault("offset", {"quantity": "voltage", "value": 0.5}))
    for _ in range(3):
        assert rig.number("MEAS:VOLT?") == pytest.approx(volts + 0.5, abs=1e-6)
        assert rig.number("MEAS:CURR?") == amps
    rig.h.call(rig.model.clear_faults)
    assert rig.number("MEAS:VOLT?") == pytest.approx(volts, abs=1e-6)


def test_driver_programs_the_model_and_reads_what_the_plant_does(rig: Rig) -> None:
    psu = N5700.open(rig.resource, model="N5772A", name="SUP1", strict=True, timeout=10.0)
    try:
        ident = psu.identify()
        assert (ident.vendor, ident.model) == ("Agilent Technologies", "N5772A")
        psu.foldback = False
        psu.program(380.0, 2.0)
        psu.ovp = 399.0
        psu.undervoltage_limit = 300.0
        psu.output = True
        rig.h.advance(1.0)
        reading = psu.read()
        volts, amps, on, _ = rig.supply()
        assert reading.output_on and on
        assert reading.in_cc and not reading.tripped
        assert reading.current == pytest.approx(amps, rel=2e-6)
        assert reading.current == pytest.approx(2.0)
        assert reading.voltage == pytest.approx(volts, rel=2e-6)
        assert psu.voltage == 380.0 and psu.ovp == 399.0
        with pytest.raises(RatingError):
            psu.voltage = 700.0  # refused before sending
        with pytest.raises(InstrumentReportedError, match="-222"):
            psu.write_setting("VOLT:PROT:LEV 390")  # below 1.05 x 380: the model refuses
        assert psu.ovp == 399.0
        psu.output = False
        rig.h.advance(1.0)
        assert not psu.read().output_on
        assert rig.supply()[1] == pytest.approx(0.0, abs=1e-9)
    finally:
        psu.close()


def test_battery_node_supply_holds_its_node() -> None:
    bench = emulated_bench()
    ctx = context_of(bench, "E005.supply")
    node = ctx.battery_node
    sink = CurrentSinkSpec(
        name="sink", node=node, max_current_a=30.0, current_a=10.0, output_on=True
    )
    with PlantServers([NodeSpec(name=node)], [*N5700Model.port_specs(ctx), sink]) as h:
        model = h.add(N5700Model, ctx)
        psu = N5700.open(serve_visa(h, model), model="N5767A", strict=True, timeout=10.0)
        try:
            psu.program(48.0, 22.0)
            psu.output = True
            h.advance(1.0)
            assert h.call(lambda: h.plant.node_voltage(node)) == pytest.approx(48.0, abs=0.02)
            reading = psu.read()
            assert reading.in_cv and reading.current == pytest.approx(10.0, abs=0.01)
            with pytest.raises(RatingError):
                psu.current = 30.0
        finally:
            psu.close()
