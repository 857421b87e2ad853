"""The emulated Kikusui PWR-01 on a plant: raw SCPI with pyvisa-py over its RS-232C
(``ASRLsocket://``), and the lab driver over both RS-232C and LAN.

The supply sits on the bus of the shipped emulated bench (unit SUP2, a PWR1201H). A
voltage reference holds the bus at 350 V, or a constant-current sink loads it; the plant
moves only when a test advances it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import BENCH_FILE, PlantServers, bus_node, context
from pyvisa.resources import MessageBasedResource
from scpi_clients import scpi_errors, serve_visa, visa_client

from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from instruments.emulation.models import models
from instruments.emulation.models.pwr01 import OPER_CC, OPER_CV, QUES_OC, QUES_OV, PWR01Model
from instruments.emulation.plant import CurrentSinkSpec, VoltageReferenceSpec
from instruments.pwr01 import PWR01

NR3 = re.compile(r"^[+-]\d\.\d{5}E[+-]\d{2}$")
BUS_V = 350.0


def pwr01_bench() -> BenchConfig:
    """The shipped emulated bench, which carries the PWR-01 unit SUP2."""
    return load_bench_file(BENCH_FILE)


@dataclass
class Rig:
    h: PlantServers
    model: PWR01Model
    inst: MessageBasedResource
    resource: str
    key: str

    def send(self, message: str) -> None:
        """Write a program message and wait until the model has executed it."""
        assert self.inst.query(f"{message};*OPC?") == "1"

    def number(self, query: str) -> float:
        reply = self.inst.query(query)
        assert NR3.match(reply), reply
        return float(reply)

    def state(self) -> tuple[float, float, bool, tuple[str, ...]]:
        state = self.h.call(lambda: self.h.plant.state(self.key))
        return state.voltage, state.current, state.output_on, state.trips

    def reference(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.voltage_reference("ref").set_output(on))

    def sink(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.current_sink("sink").set_output(on))


@pytest.fixture
def rig() -> Iterator[Rig]:
    bench = pwr01_bench()
    unit = next(u for u in bench.units if u.bus_instrument.driver == "pwr01")
    ctx = context(bench, unit.id, "pwr01")
    specs = [
        *PWR01Model.port_specs(ctx),
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
        model = h.add(PWR01Model, ctx)
        resource = serve_visa(h, model)
        assert resource.startswith("ASRLsocket://")
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource, ctx.key)


def test_registered_for_its_driver() -> None:
    assert models()["pwr01"] is PWR01Model


def test_identity_and_error_format(rig: Rig) -> None:
    vendor, model, serial, firmware = rig.inst.query("*IDN?").split(",")
    assert (vendor, model) == ("KIKUSUI", "PWR1201H")
    assert serial.startswith("EMU") and firmware
    assert rig.inst.query("SYST:ERR?") == '+0,"No error"'
    rig.inst.write("VOLT:BOGUS 1")
    assert rig.inst.query("SYST:ERR?") == '-113,"Undefined header"'


def test_cc_source_into_a_held_bus(rig: Rig) -> None:
    rig.send("CURR 2;VOLT 380;OUTP ON")
    rig.h.advance(1.0)
    volts, amps, on, trips = rig.state()
    assert on and trips == ()
    assert amps == pytest.approx(2.0, abs=1e-9)
    assert rig.number("MEAS:CURR?") == pytest.approx(amps, abs=1e-4)
    assert rig.number("MEAS:VOLT?") == pytest.approx(volts, rel=1e-5)
    assert rig.inst.query("OUTP?") == "1"
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0


def test_cv_into_a_sink(rig: Rig) -> None:
    rig.reference(False)
    rig.sink(True)
    rig.send("VOLT 100;CURR 2;OUTP 1")
    rig.h.advance(2.0)
    volts, _, on, trips = rig.state()
    assert on and trips == ()
    assert volts == pytest.approx(100.0, abs=0.01)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CV


def test_out_of_range_is_refused_with_222_not_clamped(rig: Rig) -> None:
    rig.send("VOLT 50;CURR 1;VOLT:PROT 100")
    for command in ("VOLT 700", "VOLT 101", "CURR 7", "VOLT:PROT 40", "CURR:PROT 0.1"):
        rig.send(command)
        assert scpi_errors(rig.inst) == [-222], command
    assert rig.number("VOLT?") == 50.0
    assert rig.number("CURR?") == 1.0
    assert rig.number("VOLT:PROT?") == 100.0


def test_reset_puts_protection_at_the_top_of_its_range(rig: Rig) -> None:
    rig.send("VOLT:PROT 100;:CURR:PROT 3")
    assert rig.number("CURR:PROT?") == 3.0
    rig.inst.write("*RST")
    assert rig.number("VOLT:PROT?") == 715.0  # 110 % of 650 V
    assert rig.number("CURR:PROT?") == pytest.approx(6.6)
    assert rig.inst.query("OUTP?") == "0"


def test_overvoltage_trips_latches_and_clears(rig: Rig) -> None:
    rig.send("CURR 2;VOLT 380;OUTP ON")
    rig.h.advance(0.5)
    rig.send("VOLT:PROT 400")
    rig.h.call(lambda: rig.h.plant.voltage_reference("ref").set_voltage(420.0))
    rig.h.advance(1.0)
    _, _, on, trips = rig.state()
    assert not on and "ovp" in {str(t).lower() for t in trips}
    assert int(rig.inst.query("STAT:QUES:COND?")) & QUES_OV
    assert rig.inst.query("OUTP?") == "0"
    rig.h.call(lambda: rig.h.plant.voltage_reference("ref").set_voltage(BUS_V))
    rig.h.advance(0.5)
    rig.send("OUTP:PROT:CLE")
    rig.h.advance(0.5)
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0
    assert rig.inst.query("OUTP?") == "1"


def test_overcurrent_protection_trips(rig: Rig) -> None:
    rig.reference(False)
    rig.sink(True)
    rig.send("VOLT 100;CURR 2;CURR:PROT 0.9;:OUTP ON")
    rig.h.advance(1.0)
    assert int(rig.inst.query("STAT:QUES:COND?")) & QUES_OC
    assert rig.inst.query("OUTP?") == "0"


@pytest.mark.parametrize("lan", [False, True], ids=["rs232c", "lan"])
def test_driver_over_both_transports_reads_what_the_plant_does(rig: Rig, lan: bool) -> None:
    resource = rig.resource
    if lan:
        port = resource.removeprefix("ASRLsocket://127.0.0.1:").removesuffix("::INSTR")
        resource = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    psu = PWR01.open(resource, model="PWR1201H", name="SUP2", strict=True, timeout=10.0)
    try:
        assert psu.identify().vendor == "KIKUSUI"
        psu.arm_source(380.0, 400.0, 300.0)
        psu.set_current(1.5)
        psu.set_output(True)
        rig.h.advance(1.0)
        reading = psu.measure()
        volts, amps, on, _ = rig.state()
        assert reading.on and on and reading.regulation == "current" and not reading.tripped
        assert reading.current == pytest.approx(amps, abs=1e-4)
        assert reading.voltage == pytest.approx(volts, rel=1e-5)
        for _, action in psu.safe_off_actions():
            action()
        assert not psu.output_status().on
        assert not rig.state()[2]
    finally:
        psu.close()
