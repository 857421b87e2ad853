"""The emulated Keysight RP7900 on a plant: raw SCPI over a LAN socket and the lab driver.

The unit is the RP7951A on the bus of the shipped emulated bench (BID3). A
voltage reference holds the bus at 350 V; the plant moves only when a test advances it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import BENCH_FILE, PlantServers, bus_node, context
from pyvisa.resources import MessageBasedResource
from scpi_clients import scpi_errors, serve_visa, visa_client

from hil.config.benchfile import load_bench_file
from hil.units.bidirectional import protection_levels
from instruments.base import Rating
from instruments.emulation.models import models
from instruments.emulation.models.rp7900 import RP7900Model
from instruments.emulation.plant import VoltageReferenceSpec
from instruments.rp7900 import RP7900
from instruments.wire.rp7900 import OperationStatus, QuestionableStatus

KEY = "BID3.bidirectional"
BUS_V = 350.0


@dataclass
class Rig:
    h: PlantServers
    model: RP7900Model
    inst: MessageBasedResource
    resource: str

    def send(self, message: str) -> None:
        """Write a program message and wait until the model has executed it."""
        assert self.inst.query(f"{message};*OPC?") == "1"

    def number(self, query: str) -> float:
        return float(self.inst.query(query))

    def current(self) -> float:
        return self.h.call(lambda: self.h.plant.state(KEY).current)

    def output_on(self) -> bool:
        return self.h.call(lambda: self.h.plant.state(KEY).output_on)


@pytest.fixture
def rig() -> Iterator[Rig]:
    bench = load_bench_file(BENCH_FILE)
    ctx = context(bench, "BID3", "rp7900")
    specs = [
        *RP7900Model.port_specs(ctx),
        VoltageReferenceSpec(
            name="ref",
            node="bus",
            max_voltage_v=600.0,
            max_current_a=50.0,
            voltage_v=BUS_V,
            output_on=True,
        ),
    ]
    with PlantServers([bus_node()], specs) as h:
        model = h.add(RP7900Model, ctx)
        resource = serve_visa(h, model)
        assert resource.startswith("TCPIP0::127.0.0.1::")
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource)


def test_registered_for_its_driver() -> None:
    assert models()["rp7900"] is RP7900Model


def test_identity_and_error_format(rig: Rig) -> None:
    fields = rig.inst.query("*IDN?").split(",")
    assert fields[:2] == ["Keysight Technologies", "RP7951A"] and len(fields) == 4
    assert rig.inst.query("SYST:ERR?") == '+0,"No error"'


def test_current_priority_sources_and_sinks_on_a_held_bus(rig: Rig) -> None:
    rig.send("FUNC CURR;:VOLT:LIM 380;:VOLT:LIM:NEG 300;:CURR 2;:OUTP ON")
    assert scpi_errors(rig.inst) == []
    assert rig.inst.query("FUNC?") == "CURR"
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(2.0, abs=1e-6)
    assert OperationStatus(int(rig.number("STAT:OPER:COND?"))) == OperationStatus.CC
    rig.send("CURR -3")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-3.0, abs=1e-6)
    assert rig.number("MEAS:CURR?") == pytest.approx(-3.0, abs=0.05)


def test_negative_current_limit_bounds_the_sink_in_voltage_priority(rig: Rig) -> None:
    rig.send("FUNC VOLT;:VOLT 300;:CURR:LIM 5;:CURR:LIM:NEG -1.5;:OUTP ON")
    assert scpi_errors(rig.inst) == []
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-1.5, abs=1e-6)  # bus held above VOLT: it sinks
    assert rig.number("CURR:LIM:NEG?") == -1.5


def test_out_of_range_values_are_refused_and_the_server_keeps_serving(rig: Rig) -> None:
    rig.send("VOLT 600")
    rig.send("CURR:LIM:NEG 1")
    rig.send("OUTP:PROT:WDOG:DEL 0")
    rig.send("CURR 41")
    assert scpi_errors(rig.inst) == [-222, -222, -222, -222]
    assert rig.number("OUTP:PROT:WDOG:DEL?") == 60.0  # *RST value kept
    assert rig.inst.query("OUTP:PROT:WDOG?") == "0"


def test_watchdog_latches_the_output_off_until_cleared(rig: Rig) -> None:
    rig.send("OUTP:PROT:WDOG:DEL 2;:OUTP:PROT:WDOG ON;:FUNC CURR;:VOLT:LIM 380;:CURR 1;:OUTP ON")
    rig.h.advance(1.5)
    assert rig.output_on()  # within the delay
    rig.h.advance(1.0)
    assert not rig.output_on()
    status = QuestionableStatus(int(rig.number("STAT:QUES:COND?")))
    assert status == QuestionableStatus.PROT
    rig.send("OUTP ON")
    assert scpi_errors(rig.inst) == [-221]  # latched
    assert not rig.output_on()
    rig.send("OUTP:PROT:CLE;:OUTP ON")
    assert scpi_errors(rig.inst) == []
    assert rig.output_on()
    assert int(rig.number("STAT:QUES:COND?")) == 0


def test_ovp_trip_sets_ov(rig: Rig) -> None:
    rig.send("VOLT:PROT 340;:FUNC CURR;:VOLT:LIM 380;:CURR 1;:OUTP ON")
    rig.h.advance(1.0)
    assert not rig.output_on()  # the bus is held at 350 V
    assert QuestionableStatus.OV in QuestionableStatus(int(rig.number("STAT:QUES:COND?")))


def test_lab_driver_arms_drives_and_reads(rig: Rig) -> None:
    supply = RP7900.open(
        rig.resource,
        rating=Rating(voltage=500.0, current=40.0, power=10000.0),
        name="BID3",
        strict=True,
        timeout=10.0,
        watchdog_s=30.0,
    )
    try:
        assert supply.identify().model == "RP7951A"
        supply.arm_bidirectional(protection_levels(380.0, 2.3, 2.3, 900.0))
        assert rig.h.call(lambda: rig.model.status()["watchdog"]) == {
            "on": True,
            "delay_s": 30.0,
            "tripped": False,
        }
        supply.drive_current(-2.0, 300.0, 380.0, primed=False, allowed=lambda: None)
        rig.h.advance(1.0)
        reading = supply.measure()
        assert reading.on and reading.regulation == "current" and not reading.tripped
        assert reading.current == pytest.approx(rig.current(), abs=1e-9)
        assert reading.current == pytest.approx(-2.0, abs=1e-6)
        supply.stop()
        assert not supply.output_status().on
    finally:
        supply.close()


def test_reset_returns_to_voltage_priority_with_the_output_off(rig: Rig) -> None:
    rig.send("FUNC CURR;:CURR 2;:VOLT:LIM 380;:OUTP:PROT:WDOG ON;:OUTP ON")
    rig.send("*RST")
    assert not rig.output_on()
    assert rig.inst.query("FUNC?") == "VOLT"
    assert rig.inst.query("OUTP:PROT:WDOG?") == "0"
    assert rig.number("CURR:LIM?") == 40.0 and rig.number("CURR:LIM:NEG?") == -40.0
    assert rig.number("VOLT:LIM?") == 500.0 and rig.number("VOLT:PROT?") == pytest.approx(510.0)
    assert scpi_errors(rig.inst) == []
