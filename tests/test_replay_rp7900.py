"""Replay: an independent RP7900 client's exact commands, sent with plain pyvisa.

The client is a ``Keysight_RP7900(VisaResource)`` class written for an RP7935A (a
PythonEquipmentDrivers-style driver; the search index holds the file, id 4441620358, without
naming its repository), read, not copied. Its forms: ``*IDN?`` must contain "keysight" and
"rp79"; ``SOUR:FUNC VOLT|CURR``; ``SOUR:VOLT:LEV``/``?``; ``SOUR:CURR:LEV``/``?``;
``SOUR:CURR:LIM``/``?``; ``SOUR:VOLT:LIM``; ``SOUR:VOLT:PROT?``; ``SOUR:CURR:PROT:STATE 0|1``
/ ``?`` (answer ``int``-parsed); ``OUTP:STAT 0|1`` / ``OUTP:STAT?`` (``int(...) == 1``);
``MEAS:VOLT?``/``MEAS:CURR?`` (``float``-parsed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plant_servers import BENCH_FILE, PlantServers, bus_node, context
from pyvisa.resources import MessageBasedResource
from scpi_clients import scpi_errors, serve_visa, visa_client

from hil.config.benchfile import load_bench_file
from instruments.emulation.models.rp7900 import RP7900Model
from instruments.emulation.plant import VoltageReferenceSpec

KEY = "BID3.bidirectional"


@pytest.fixture
def served() -> Iterator[tuple[PlantServers, MessageBasedResource]]:
    bench = load_bench_file(BENCH_FILE)
    ctx = context(bench, "BID3", "rp7900")
    reference = VoltageReferenceSpec(
        name="ref", node="bus", max_voltage_v=600.0, max_current_a=50.0, voltage_v=350.0
    )
    with PlantServers([bus_node()], [*RP7900Model.port_specs(ctx), reference]) as h:
        h.call(lambda: h.plant.voltage_reference("ref").set_output(True))
        resource = serve_visa(h, h.add(RP7900Model, ctx))
        with visa_client(resource) as inst:
            yield h, inst


def test_the_clients_sequence_runs_without_an_error(
    served: tuple[PlantServers, MessageBasedResource],
) -> None:
    h, inst = served
    idn = inst.query("*IDN?").lower()
    assert "keysight" in idn and "rp79" in idn  # the client's own connection check
    inst.write("SOUR:FUNC VOLT")
    inst.write("SOUR:VOLT:LEV 360")
    inst.write("SOUR:CURR:LIM 2")
    inst.write("SOUR:CURR:PROT:STATE 0")
    assert float(inst.query("SOUR:VOLT:LEV?")) == 360.0
    assert float(inst.query("SOUR:CURR:LIM?")) == 2.0
    assert int(inst.query("SOUR:CURR:PROT:STATE?")) == 0
    assert float(inst.query("SOUR:VOLT:PROT?")) == pytest.approx(510.0)
    inst.write("OUTP:STAT 1")
    assert int(inst.query("OUTP:STAT?")) == 1
    h.advance(1.0)
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(2.0, abs=0.05)  # limited
    assert float(inst.query("MEAS:VOLT?")) == pytest.approx(350.0, abs=0.5)  # bus held
    inst.write("SOUR:FUNC CURR")
    inst.write("SOUR:VOLT:LIM 380")
    inst.write("SOUR:CURR:LEV -1.5")
    assert float(inst.query("SOUR:CURR:LEV?")) == -1.5
    h.advance(1.0)
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(-1.5, abs=0.05)
    inst.write("OUTP:STAT 0")
    assert int(inst.query("OUTP:STAT?")) == 0
    assert scpi_errors(inst) == []
