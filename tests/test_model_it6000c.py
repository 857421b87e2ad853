"""The emulated ITECH IT6000C on a plant: raw SCPI over a serial line and the lab driver.

BID1 (an IT6006C-500-40) is served as a serial instrument (serial-over-TCP, and a pty), as
its USB virtual COM port would be. A voltage reference holds the bus at 350 V or a sink
loads it; the plant moves only when a test advances it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import PlantServers, bus_node, context, emulated_bench
from pyvisa.resources import MessageBasedResource
from scpi_clients import scpi_errors, serve_visa, visa_client

from hil.errors import CapabilityError, InstrumentReportedError
from hil.units.bidirectional import protection_levels
from instruments.emulation.models import models
from instruments.emulation.models.it6000c import (
    OPER_CC_NEG,
    OPER_CC_POS,
    OPER_CV,
    QUES_OCP_NEG,
    QUES_OCP_POS,
    QUES_OVP,
    QUES_PROTECTION,
    QUES_UVP,
    IT6000CModel,
)
from instruments.emulation.plant import CurrentSinkSpec, VoltageReferenceSpec
from instruments.it6000c import IT6000C, Priority

KEY = "BID1.bidirectional"
BUS_V = 350.0
BLEED_A = BUS_V / 10_000.0


@dataclass
class Rig:
    h: PlantServers
    model: IT6000CModel
    inst: MessageBasedResource
    resource: str

    def send(self, message: str) -> None:
        """Write a program message and wait until the model has executed it."""
        assert self.inst.query(f"{message};*OPC?") == "1"

    def number(self, query: str) -> float:
        return float(self.inst.query(query))

    def current(self, port: str = KEY) -> float:
        return self.h.call(lambda: self.h.plant.state(port).current)

    def output_on(self) -> bool:
        return self.h.call(lambda: self.h.plant.state(KEY).output_on)

    def reference(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.voltage_reference("ref").set_output(on))

    def sink(self, on: bool) -> None:
        self.h.call(lambda: self.h.plant.current_sink("sink").set_output(on))


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx = context(emulated_bench(), "BID1", "it6000c")
    specs = [
        *IT6000CModel.port_specs(ctx),
        VoltageReferenceSpec(
            name="ref",
            node="bus",
            max_voltage_v=600.0,
            max_current_a=50.0,
            voltage_v=BUS_V,
            output_on=True,
        ),
        CurrentSinkSpec(name="sink", node="bus", max_current_a=10.0, current_a=1.0),
    ]
    with PlantServers([bus_node()], specs) as h:
        model = h.add(IT6000CModel, ctx)
        resource = serve_visa(h, model)
        assert resource.startswith("ASRLsocket://")
        with visa_client(resource) as inst:
            yield Rig(h, model, inst, resource)


def test_registered_for_its_driver() -> None:
    assert models()["it6000c"] is IT6000CModel


def test_identity_and_error_format(rig: Rig) -> None:
    fields = rig.inst.query("*IDN?").split(",")
    assert fields[:2] == ["ITECH Electronics", "IT6006C-500-40"]
    assert len(fields) > 4  # the firmware field itself holds commas
    assert rig.inst.query("SYST:ERR?") == '0,"No error"'


def test_settings_are_refused_in_local(rig: Rig) -> None:
    rig.send("VOLT 10")
    assert rig.inst.query("SYST:ERR?") == '-201,"Invalid while in local"'
    assert rig.number("VOLT?") == 0.0  # queries still work
    rig.send("SYST:REM;:VOLT 10")
    assert scpi_errors(rig.inst) == []
    assert rig.number("VOLT?") == 10.0
    rig.send("SYST:LOC;:OUTP ON")
    assert scpi_errors(rig.inst) == [-201]
    assert not rig.output_on()


def test_priority_rules_observed_on_hardware(rig: Rig) -> None:
    rig.send("SYST:REM;:VOLT 360")
    assert rig.inst.query("FUNC?") == "VOLTage"  # the long form, as the real unit answers
    rig.send("VOLT:LIM 380")
    assert scpi_errors(rig.inst) == [-221]  # VOLT:LIM only in CC priority
    rig.send("CURR:LIM 2;:CURR:LIM:NEG -1.5")
    assert scpi_errors(rig.inst) == []
    assert rig.number("CURR?") == 2.0  # in CV, CURR mirrors CURR:LIM

    rig.send("FUNC CURR")
    assert rig.inst.query("FUNC?") == "CURRent"
    assert rig.number("VOLT:LIM?") == 360.0  # the active voltage became the limit
    assert rig.number("VOLT?") == 360.0  # and VOLT mirrors VOLT:LIM in CC
    rig.send("CURR:LIM 1")
    assert scpi_errors(rig.inst) == [-221]  # CURR:LIM only in CV priority
    rig.send("CURR:LIM:NEG -1")
    assert scpi_errors(rig.inst) == [-221]
    rig.send("VOLT:LIM 380;:VOLT:LIM:NEG 300;:CURR -3")
    assert scpi_errors(rig.inst) == []
    assert rig.number("VOLT?") == 380.0

    rig.send("FUNC VOLT")
    assert rig.number("CURR:LIM:NEG?") == -3.0  # the sinking current became the NEG limit
    assert rig.number("CURR:LIM?") == 0.0
    assert rig.number("VOLT?") == 380.0


def test_cc_priority_sinks_and_sources_on_a_held_bus(rig: Rig) -> None:
    rig.send("SYST:REM;:FUNC CURR;:VOLT:LIM 380;:VOLT:LIM:NEG 300;:CURR -2;:OUTP ON")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(-2.0, abs=1e-9)
    assert rig.current("ref") == pytest.approx(2.0 + BLEED_A, abs=1e-3)
    assert rig.number("MEAS:CURR?") == pytest.approx(-2.0, abs=1e-9)
    volts = rig.number("MEAS:VOLT?")
    assert volts == pytest.approx(BUS_V - 2.0 * rig.model.ctx.line_ohm, abs=0.01)
    assert rig.number("MEAS:POW?") == pytest.approx(-2.0 * volts, rel=1e-9)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC_NEG  # CC- while sinking
    assert rig.inst.query("OUTP?") == "1"

    rig.send("CURR 1.5")
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(1.5, abs=1e-9)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CC_POS  # CC+ while sourcing
    assert rig.current("ref") == pytest.approx(-(1.5 - BLEED_A), abs=1e-3)


def test_cc_priority_stops_at_its_voltage_limit(rig: Rig) -> None:
    rig.reference(False)
    rig.sink(True)
    rig.send("SYST:REM;:FUNC CURR;:VOLT:LIM 120;:CURR 2;:OUTP ON")
    rig.h.advance(3.0)
    # 2 A would push the bus up; at its 120 V limit it gives only what the sink and the
    # bleed take
    taken = 1.0 + 120.0 / 10_000.0
    terminal = rig.h.call(lambda: rig.h.plant.state(KEY).voltage)
    assert terminal == pytest.approx(120.0, abs=0.01)
    assert rig.current() == pytest.approx(taken, abs=1e-3)


def test_cv_priority_holds_the_bus_for_a_sink(rig: Rig) -> None:
    rig.reference(False)
    rig.sink(True)
    rig.send("SYST:REM;:CURR:LIM 2;:CURR:LIM:NEG -2;:VOLT 100;:OUTP ON")
    rig.h.advance(2.0)
    amps = rig.current()
    assert amps == pytest.approx(1.0 + 100.0 / 10_000.0, abs=1e-3)
    bus = rig.h.call(lambda: rig.h.plant.node_voltage("bus"))
    assert bus == pytest.approx(100.0 - amps * rig.model.ctx.line_ohm, abs=0.005)
    assert int(rig.inst.query("STAT:OPER:COND?")) == OPER_CV


def test_out_of_range_is_refused_with_222(rig: Rig) -> None:
    rig.send("SYST:REM")
    for command in (
        "VOLT 600",
        "CURR -1",  # in CV, CURR is the (positive) source limit
        "CURR:LIM 41",
        "CURR:LIM:NEG 1",
        "CURR:LIM:NEG -41",
        "POW:LIM 7000",
        "POW:LIM:NEG 10",
        "VOLT:PROT 600",
        "OUTP:PROT:WDOG:DEL 0",
        "VOLT:PROT 505.1",  # SCPI maxima: 101 % of the voltage and current, 102 % of power
        "CURR:PROT 40.41",
        "POW:PROT 6120.1",
        "CURR:LIM 40.41",
        "POW:LIM 6120.1",
        "VOLT:UND:PROT 505.1",
        "CURR:UND:PROT -40.41",
        "OUTP:DEL:RISE 61",
    ):
        rig.send(command)
        assert scpi_errors(rig.inst) == [-222], command
    rig.send("FUNC CURR;:CURR 41")
    assert scpi_errors(rig.inst) == [-222]
    rig.send("CURR -40")
    assert scpi_errors(rig.inst) == []
    assert rig.number("CURR? MIN") == -40.0


def test_only_the_fixed_function_is_emulated(rig: Rig) -> None:
    rig.send("SYST:REM;:FUNC:MODE LIST")
    assert scpi_errors(rig.inst) == [-221]
    rig.send("FUNC:MODE FIXED;:FUNC:MODE FIX")
    assert scpi_errors(rig.inst) == []
    assert rig.inst.query("FUNC:MODE?") == "FIXed"


def test_over_voltage_protection_latches(rig: Rig) -> None:
    rig.send("SYST:REM;:VOLT:PROT 340;:VOLT:PROT:STAT ON;:VOLT 300;:OUTP ON")
    rig.h.advance(0.5)
    assert rig.inst.query("OUTP?") == "0"
    assert int(rig.inst.query("STAT:QUES:COND?")) == QUES_OVP
    rig.send("OUTP ON")
    assert scpi_errors(rig.inst) == [-221]
    rig.send("VOLT:PROT 400;:OUTP:PROT:CLE")
    assert rig.inst.query("OUTP?") == "0"  # clearing leaves the output off
    rig.send("OUTP ON")
    rig.h.advance(0.5)
    assert rig.inst.query("OUTP?") == "1"
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0


def test_communication_watchdog_switches_the_output_off(rig: Rig) -> None:
    rig.send(
        "SYST:REM;:OUTP:PROT:WDOG:DEL 5;:OUTP:PROT:WDOG ON;"
        ":FUNC CURR;:VOLT:LIM 380;:CURR 1;:OUTP ON"
    )
    rig.h.advance(4.0)
    assert rig.output_on()
    assert rig.inst.query("*OPC?") == "1"  # any traffic restarts the timer
    rig.h.advance(4.0)
    assert rig.output_on()
    rig.h.advance(2.0)  # 6 s of silence: expired 5 s after the last message
    assert not rig.output_on()
    assert rig.current() == pytest.approx(0.0, abs=1e-9)
    assert int(rig.inst.query("STAT:QUES:COND?")) == QUES_PROTECTION
    rig.send("OUTP ON")
    assert scpi_errors(rig.inst) == [-221]
    rig.send("OUTP:PROT:CLE;:OUTP:PROT:WDOG OFF;:OUTP ON")
    rig.h.advance(60.0)
    assert rig.output_on()
    assert rig.current() == pytest.approx(1.0, abs=1e-9)


def test_watchdog_expiry_is_not_rescued_by_a_late_message(rig: Rig) -> None:
    rig.send("SYST:REM;:OUTP:PROT:WDOG:DEL 2;:OUTP:PROT:WDOG ON;:VOLT 10;:OUTP ON")
    rig.h.call(lambda: rig.h.plant.advance(3.0))  # past the deadline, without the model
    assert rig.output_on()
    assert rig.inst.query("OUTP?") == "0"  # the message finds the watchdog already expired
    assert rig.h.call(lambda: rig.model.status()["watchdog"]["tripped"])


def test_make_safe_reads_back_off(rig: Rig) -> None:
    rig.send("SYST:REM;:FUNC CURR;:VOLT:LIM 380;:CURR 1;:OUTP ON")
    rig.h.advance(1.0)

    def make_safe() -> None:
        rig.h.plant.make_safe()
        rig.model.after_make_safe()

    rig.h.call(make_safe)
    assert rig.inst.query("OUTP?") == "0"
    rig.h.advance(1.0)
    assert rig.current() == pytest.approx(0.0, abs=1e-9)


def test_driver_and_adapter_arming_over_the_serial_line(rig: Rig) -> None:
    supply = IT6000C.open(
        rig.resource, model="IT6006C-500-40", name="BID1", strict=True, timeout=10.0
    )
    try:
        ident = supply.identify()
        assert ident.model == "IT6006C-500-40" and "," in ident.firmware
        supply.arm_bidirectional(protection_levels(380.0, 2.3, 2.3, 900.0))
        assert rig.h.call(lambda: rig.h.plant.port(KEY).protection.ovp_v) == pytest.approx(399.0)
        supply.source_current(-2.0, 380.0)
        supply.output = True
        rig.h.advance(1.0)
        reading = supply.read()
        assert reading.output_on
        assert reading.current == pytest.approx(rig.current(), abs=1e-9)
        assert reading.current == pytest.approx(-2.0, abs=1e-9)
        assert supply.priority is Priority.CURRENT
        with pytest.raises(CapabilityError):
            supply.current_limit = 1.0  # the driver knows the rule and sends nothing
        with pytest.raises(InstrumentReportedError, match="-221"):
            supply.write_setting("CURR:LIM 1")  # and the model enforces it

        rig.reference(False)
        rig.sink(True)
        supply.hold_voltage(100.0, 2.0, 2.0)
        rig.h.advance(2.0)
        reading = supply.read()
        assert reading.voltage == pytest.approx(100.0, abs=0.01)
        assert reading.current == pytest.approx(rig.current(), abs=1e-9)
        assert supply.priority is Priority.VOLTAGE  # read from the long form "VOLTage"
        supply.output = False
        rig.h.advance(1.0)
        assert not supply.read().output_on
    finally:
        supply.close()


def test_served_on_a_pty() -> None:
    ctx = context(emulated_bench(), "BID1", "it6000c")
    with PlantServers([bus_node()], IT6000CModel.port_specs(ctx)) as h:
        model = h.add(IT6000CModel, ctx)
        with visa_client(f"ASRL{h.serve_pty(model)}::INSTR") as inst:
            assert inst.query("*IDN?").startswith("ITECH Electronics,IT6006C-500-40,")
            inst.write("SYST:REM;:VOLT 12")
            assert float(inst.query("VOLT?")) == 12.0


def test_scpi_maxima_are_accepted_and_are_the_reset_levels(rig: Rig) -> None:
    assert rig.number("POW:LIM?") == pytest.approx(6120.0)  # 102 % of 6 kW, as read live
    assert rig.number("CURR:PROT?") == pytest.approx(40.4)  # 101 % of 40 A
    assert rig.number("VOLT:PROT? MAX") == pytest.approx(505.0)
    assert rig.number("CURR:UND:PROT?") == pytest.approx(-40.4)
    rig.send("SYST:REM;:VOLT:PROT 505;:CURR:PROT 40.4;:POW:PROT 6120;:CURR:LIM 40.4")
    rig.send("POW:LIM:NEG -6120;:CURR:LIM:NEG -40.4")
    assert scpi_errors(rig.inst) == []


def test_every_query_of_the_validated_driver_gets_a_reply(rig: Rig) -> None:
    replies = {
        command: rig.inst.query(command)
        for command in (
            "VOLT:UND:PROT:STAT?",
            "VOLT:UND:PROT?",
            "VOLT:UND:PROT:DEL?",
            "VOLT:UND:PROT:WARM?",
            "CURR:UND:PROT:STAT?",
            "CURR:UND:PROT?",
            "CURR:UND:PROT:DEL?",
            "CURR:UND:PROT:WARM?",
            "OUTP:DEL:RISE?",
            "OUTP:DEL:FALL?",
            "SINK:RES:STAT?",
            "SYST:VOLT:RZERO?",
        )
    }
    assert replies["SINK:RES:STAT?"] == "0"
    assert replies["SYST:VOLT:RZERO?"] == "1"
    assert scpi_errors(rig.inst) == []
    rig.send(
        "SYST:REM;:VOLT:UND:PROT 10;:VOLT:UND:PROT:DEL 1;:VOLT:UND:PROT:WARM 20;"
        ":CURR:UND:PROT:DEL 60;:OUTP:DEL:RISE 0.5;:OUTP:DEL:FALL 2;:SINK:RES:STAT ON;"
        ":SYST:VOLT:RZERO OFF"
    )
    assert scpi_errors(rig.inst) == []
    assert rig.number("VOLT:UND:PROT:WARM?") == 20.0
    assert rig.number("OUTP:DEL:FALL?") == 2.0
    assert rig.inst.query("SINK:RES:STAT?;:SYST:VOLT:RZERO?") == "1;0"


def test_system_clear_empties_the_error_queue(rig: Rig) -> None:
    rig.send("VOLT 10;:VOLT 11")
    rig.send("SYST:CLE")
    assert rig.inst.query("SYST:ERR?") == '0,"No error"'


def test_under_voltage_protection_latches_uvp(rig: Rig) -> None:
    rig.send("SYST:REM;:VOLT:UND:PROT 360;:VOLT:UND:PROT:STAT ON;:FUNC CURR")
    rig.send("VOLT:LIM 380;:CURR 1;:OUTP ON")
    rig.h.advance(0.5)
    assert rig.inst.query("OUTP?") == "0"
    assert int(rig.inst.query("STAT:QUES:COND?")) == QUES_UVP


@pytest.mark.parametrize(("amps", "bit"), [(-3.0, QUES_OCP_NEG), (3.0, QUES_OCP_POS)])
def test_over_current_sets_the_bit_of_its_direction(rig: Rig, amps: float, bit: int) -> None:
    rig.send(f"SYST:REM;:CURR:PROT 2;:CURR:PROT:STAT ON;:FUNC CURR;:VOLT:LIM 380;:CURR {amps:g}")
    rig.send("OUTP ON")
    rig.h.advance(0.5)
    assert rig.inst.query("OUTP?") == "0"
    assert int(rig.inst.query("STAT:QUES:COND?")) == bit
    rig.send("OUTP:PROT:CLE")
    assert int(rig.inst.query("STAT:QUES:COND?")) == 0
