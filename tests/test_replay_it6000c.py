"""Replay an independent IT6000C client's exact command sequence against the emulator.

The client is OpenBench's ITECH driver (``VlasovLabTech/OpenBench-lab-control``, commit
69a28518fbbfdd4c5514326a5d7d545bfb9ef5e7, ``src/openbench/drivers/itech_it6000c/supply.py``
and ``transport.py``), written by others and validated on a physical IT6054C-800-225. What
is carried over is data, not code: the order of its commands, their spelling (upper case,
``{value:.6f}`` numbers, ``SYST:REM`` ... ``SYST:LOC`` around every change) and what its
parsers accept (``FUNC?`` starting with ``VOLT``/``CURR``, ``FUNC:MODE?`` one of ``FIXED``,
``LIST``, ``BATTERY``, ``SOLAR``, ``CARPROFILE`` in any case, booleans ``0``/``1``/``ON``/
``OFF``, every other reply a finite number). Values are scaled to the emulated
IT6006C-500-40. The client here is plain pyvisa; nothing of our driver is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from plant_servers import PlantServers, bus_node, context, emulated_bench
from pyvisa.resources import MessageBasedResource
from scpi_clients import scpi_errors, serve_visa, visa_client

from instruments.emulation.models.it6000c import OPER_CC_NEG, QUES_OVP, IT6000CModel
from instruments.emulation.plant import VoltageReferenceSpec

KEY = "BID1.bidirectional"
BUS_V = 48.0

#: OpenBench's full state read (``_read_full_sync``), in its order.
FULL_READ = (
    "FUNC?",
    "FUNC:MODE?",
    "OUTP?",
    "VOLT?",
    "CURR?",
    "CURR:LIM?",
    "CURR:LIM:NEG?",
    "VOLT:LIM?",
    "VOLT:LIM:NEG?",
    "POW:LIM?",
    "POW:LIM:NEG?",
    "MEAS:VOLT?",
    "MEAS:CURR?",
    "MEAS:POW?",
    "VOLT:SLEW:POS?",
    "VOLT:SLEW:NEG?",
    "CURR:SLEW:POS?",
    "CURR:SLEW:NEG?",
    "VOLT:PROT:STAT?",
    "VOLT:PROT?",
    "VOLT:PROT:DEL?",
    "CURR:PROT:STAT?",
    "CURR:PROT?",
    "CURR:PROT:DEL?",
    "POW:PROT:STAT?",
    "POW:PROT?",
    "POW:PROT:DEL?",
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
    "OUTP:PROT:WDOG:STAT?",
    "OUTP:PROT:WDOG:DEL?",
    "SINK:RES:STAT?",
    "SYST:VOLT:RZERO?",
    "STAT:QUES:COND?",
    "STAT:OPER:COND?",
)
_BOOLEANS = {q for q in FULL_READ if q.endswith(":STAT?") or q in ("OUTP?", "SYST:VOLT:RZERO?")}
_MODES = {"FIXED", "LIST", "BATTERY", "SOLAR", "CARPROFILE"}


def full_read(inst: MessageBasedResource) -> dict[str, str]:
    """Every reply of the full read, each one checked the way OpenBench parses it."""
    replies: dict[str, str] = {}
    for command in FULL_READ:
        reply = inst.query(command).strip()
        if command == "FUNC?":
            assert reply.upper().startswith(("VOLT", "CURR")), reply
        elif command == "FUNC:MODE?":
            assert reply.upper() in _MODES, reply
        elif command in _BOOLEANS:
            assert reply.upper() in {"0", "1", "ON", "OFF"}, (command, reply)
        else:
            assert math.isfinite(float(reply)), (command, reply)
        replies[command] = reply
    return replies


def changes(inst: MessageBasedResource, *commands: str) -> None:
    """One OpenBench transaction: ``SYST:REM``, the writes, ``SYST:LOC``.

    The closing ``*OPC?`` is ours: it only makes sure the emulator has executed the writes
    before the test advances simulated time (OpenBench paces its writes 20 ms apart).
    """
    for command in ("SYST:REM", *commands, "SYST:LOC"):
        inst.write(command)
    assert inst.query("*OPC?") == "1"


@pytest.fixture
def served() -> Iterator[tuple[PlantServers, MessageBasedResource]]:
    ctx = context(emulated_bench(), "BID1", "it6000c")
    reference = VoltageReferenceSpec(
        name="ref", node="bus", max_voltage_v=600.0, max_current_a=50.0, voltage_v=BUS_V
    )
    with PlantServers([bus_node()], [*IT6000CModel.port_specs(ctx), reference]) as h:
        model = h.add(IT6000CModel, ctx)
        h.call(lambda: h.plant.voltage_reference("ref").set_output(True))
        with visa_client(serve_visa(h, model)) as inst:
            yield h, inst


def test_openbench_session_replays_cleanly(
    served: tuple[PlantServers, MessageBasedResource],
) -> None:
    h, inst = served
    assert inst.query("*IDN?").startswith("ITECH Electronics,IT6006C-500-40,")
    state = full_read(inst)
    assert state["FUNC?"] == "VOLTage" and state["FUNC:MODE?"] == "FIXed"

    # update_protections (output off): levels as {:.6f}, then the switches
    changes(
        inst,
        "VOLT:PROT 60.000000",
        "VOLT:PROT:DEL 0.005000",
        "CURR:PROT 40.400000",  # the SCPI maximum, 101 % of 40 A
        "CURR:PROT:DEL 0.010000",
        "POW:PROT 3200.000000",
        "POW:PROT:DEL 10.000000",
        "VOLT:UND:PROT 10.000000",
        "VOLT:UND:PROT:DEL 1.000000",
        "VOLT:UND:PROT:WARM 20.000000",
        "VOLT:PROT:STAT ON",
        "CURR:PROT:STAT ON",
        "POW:PROT:STAT ON",
        "VOLT:UND:PROT:STAT OFF",
        "CURR:UND:PROT:STAT OFF",
    )
    state = full_read(inst)
    assert float(state["CURR:PROT?"]) == pytest.approx(40.4)
    assert float(state["VOLT:UND:PROT:WARM?"]) == pytest.approx(20.0)

    # update_operating_point to CC priority sinking, output on (the CC rebuild order)
    changes(
        inst,
        "FUNC:MODE FIXED",
        "FUNC VOLT",
        "VOLT 50.000000",
        "CURR:LIM 2.310000",
        "CURR:LIM:NEG -2.270000",
        "FUNC CURR",
        "CURR -0.100000",
        "VOLT:LIM 55.000000",
        "VOLT:LIM:NEG 0.000000",
        "POW:LIM 10.000000",
        "POW:LIM:NEG -10.000000",
        "OUTP ON",
    )
    h.advance(1.0)
    state = full_read(inst)
    assert state["FUNC?"] == "CURRent" and state["OUTP?"] == "1"
    assert float(state["CURR?"]) == pytest.approx(-0.1)
    assert float(state["CURR:LIM:NEG?"]) == pytest.approx(-2.27)
    assert float(state["MEAS:CURR?"]) == pytest.approx(-0.1, abs=1e-3)
    assert int(state["STAT:OPER:COND?"]) == OPER_CC_NEG

    # a live current step is command-only; then the output off
    changes(inst, "CURR -0.200000")
    h.advance(1.0)
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(-0.2, abs=1e-3)
    changes(inst, "OUTP OFF")

    # update_advanced (output off): slews, output delays, watchdog delay and switch
    changes(
        inst,
        "VOLT:SLEW:POS 0.100000",
        "CURR:SLEW:NEG 0.100000",
        "OUTP:DEL:RISE 0.000000",
        "OUTP:DEL:FALL 0.000000",
        "OUTP:PROT:WDOG:DEL 60.000000",
        "OUTP:PROT:WDOG:STAT OFF",
    )
    state = full_read(inst)
    assert state["OUTP?"] == "0" and float(state["OUTP:PROT:WDOG:DEL?"]) == 60.0
    assert scpi_errors(inst) == []


def test_openbench_clears_a_latched_protection(
    served: tuple[PlantServers, MessageBasedResource],
) -> None:
    h, inst = served
    changes(inst, "VOLT:PROT 45.000000", "VOLT:PROT:STAT ON", "FUNC VOLT", "VOLT 46.000000")
    changes(inst, "CURR:LIM 1.000000", "OUTP ON")
    h.advance(1.0)
    state = full_read(inst)
    assert state["OUTP?"] == "0" and int(state["STAT:QUES:COND?"]) == QUES_OVP
    # clear_protection: output already off, then OUTP:PROT:CLE; it expects no fault left
    changes(inst, "VOLT:PROT 60.000000", "OUTP:PROT:CLE")
    state = full_read(inst)
    assert int(state["STAT:QUES:COND?"]) == 0 and state["OUTP?"] == "0"
    assert scpi_errors(inst) == []
