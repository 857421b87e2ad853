"""PyMeasure's Keysight N5767A command sequence, replayed with plain pyvisa on the emulated N5700.

Source read: pymeasure/pymeasure at commit 32503b81982e235424a9260a794619d8d9a59e3a,
``pymeasure/instruments/keysight/keysightN5767A.py`` (and ``pymeasure/instruments/
generic_types.py`` for ``*IDN?`` and ``SYST:ERR?``). Only the command strings are carried
over: ``voltage_range`` writes ``":VOLT %g V"`` (with a unit suffix) and reads ``":VOLT?"``;
``current_range`` writes ``":CURR %g"`` and reads ``":CURR?"``; ``voltage`` queries
``"MEAS:VOLT?"`` (no leading colon) and ``current`` ``":MEAS:CURR?"``; ``enable``/``disable``
write ``":OUTP 1"``/``":OUTP 0"`` and ``is_enabled`` queries ``":OUTP?"``; replies are read
as floats. ``truncated_range`` clips ``voltage_range`` to 0-60 V and ``current_range`` to
0-25 A before sending.

Where it needs ``*OPC?``: PyMeasure's driver writes and moves on. A write has no reply, so
before the test advances simulated time it asks ``*OPC?`` (which the emulator answers only
after executing every earlier message); without it the plant could advance before the
supply had seen ``:OUTP 1``. On a real supply time passes by itself and the driver needs
no ``*OPC?``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plant_servers import PlantServers, emulated_bench
from pyvisa.resources import MessageBasedResource
from scpi_clients import context_of, serve_visa, visa_client

from instruments.emulation.models.n5700 import N5700Model
from instruments.emulation.plant import CurrentSinkSpec, NodeSpec

SINK_A = 10.0


@dataclass
class Rig:
    """E005's N5767A on its battery node with a 10 A sink, served on loopback TCP."""

    h: PlantServers
    inst: MessageBasedResource

    def number(self, query: str) -> float:
        """A query read as PyMeasure reads it: one float."""
        return float(self.inst.query(query))

    def opc(self) -> None:
        """Not in PyMeasure: the emulator has executed every earlier write."""
        assert self.inst.query("*OPC?") == "1"


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx = context_of(emulated_bench(), "E005.supply")
    node = ctx.battery_node
    sink = CurrentSinkSpec(
        name="sink", node=node, max_current_a=30.0, current_a=SINK_A, output_on=True
    )
    with PlantServers([NodeSpec(name=node)], [*N5700Model.port_specs(ctx), sink]) as h:
        model = h.add(N5700Model, ctx)
        with visa_client(serve_visa(h, model)) as inst:
            yield Rig(h, inst)


def test_pymeasure_n5767a_sequence(rig: Rig) -> None:
    vendor, model, *_ = rig.inst.query("*IDN?").split(",")
    assert (vendor, model) == ("Agilent Technologies", "N5767A")

    rig.inst.write(f":VOLT {48.0:g} V")
    rig.inst.write(f":CURR {22.0:g}")
    assert rig.number(":VOLT?") == 48.0
    assert rig.number(":CURR?") == 22.0
    rig.inst.write(":OUTP 1")
    rig.opc()
    rig.h.advance(1.0)
    assert bool(rig.number(":OUTP?"))
    assert rig.number("MEAS:VOLT?") == pytest.approx(48.0, abs=0.05)
    assert rig.number(":MEAS:CURR?") == pytest.approx(SINK_A, abs=0.05)

    rig.inst.write(f":VOLT {60.0:g} V")  # truncated_range: 75 V asked, 60 V sent
    rig.opc()
    rig.h.advance(1.0)
    assert rig.number("MEAS:VOLT?") == pytest.approx(60.0, abs=0.05)

    assert rig.inst.query("SYST:ERR?").split(",")[0] in ("+0", "0")
    rig.inst.write(":OUTP 0")
    rig.opc()
    rig.h.advance(1.0)
    assert not bool(rig.number(":OUTP?"))
    assert rig.number(":MEAS:CURR?") == pytest.approx(0.0, abs=0.05)
