"""Independent EA clients' exact command sequences, replayed against the emulated PSB 10000.

The emulator and our driver were written from the same notes; these replays check the
emulator against clients written elsewhere, talking plain pyvisa (no project driver):

- nominal-io/instro ``instro/psu/drivers/ea_psb10000.py`` at commit
  3ce6aa3a718250baa0ecdc0d43ec3dbb2b687761 ("command set per EA ModBus & SCPI guide REV 24"):
  the messages its source and sink quadrants send, in order, each followed by the
  ``SYST:ERR?`` its ``write_checked``/``query_checked`` send, and its reply parsing (strip
  trailing letters, ``float``; an error reply is one not starting with ``0``).
- ``cEAsource.cpp``, an EA PS/PSB client in C++ (the search index holds the file but not its
  repository or commit): its state machine's messages, compound queries split at ``;`` and
  read with ``atof`` (the leading number), and its interface-monitoring set-up
  ``SYST:COMM:MON:TIM 6;SYST:COMM:MON:ACT ON``.

Facts carried over, no code copied: the command strings and the way replies are read.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from plant_servers import PlantServers, bus_node, context, emulated_bench
from scpi_clients import visa_client

from instruments.emulation.models.psb10000_scpi import Psb10000ScpiModel
from instruments.emulation.plant import VoltageReferenceSpec

KEY = "BID2.bidirectional"


@dataclass
class Rig:
    h: PlantServers
    model: Psb10000ScpiModel
    visa: Any

    def output_on(self) -> bool:
        return bool(self.h.call(lambda: self.h.plant.bidirectional(KEY).output_on))


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx = context(emulated_bench(), "BID2", "psb10000")
    reference = VoltageReferenceSpec(
        name="LAB.reference",
        node="bus",
        max_voltage_v=500.0,
        max_current_a=20.0,
        voltage_v=350.0,
        current_limit_a=20.0,
        output_on=True,
    )
    with PlantServers([bus_node()], [*Psb10000ScpiModel.port_specs(ctx), reference]) as h:
        model = h.add(Psb10000ScpiModel, ctx)
        port = h.serve_tcp(model, terminator=b"\n")
        with visa_client(f"TCPIP0::127.0.0.1::{port}::SOCKET") as visa:
            yield Rig(h, model, visa)


# ---- nominal-io/instro ----------------------------------------------------------------


def strip_unit(reply: str) -> float:
    """instro's ``_strip_unit``: trailing letters off, then ``float``."""
    return float(reply.strip().rstrip(string.ascii_letters))


class Instro:
    """The messages instro's ``EAPSB10000Visa`` sends, with its error check after each."""

    def __init__(self, visa: Any) -> None:
        self.visa = visa

    def check_errors(self) -> None:
        reply = self.visa.query("SYST:ERR?")
        assert reply.startswith("0"), reply

    def write_checked(self, command: str) -> None:
        self.visa.write(command)
        self.check_errors()

    def query_checked(self, command: str) -> str:
        reply: str = self.visa.query(command)
        self.check_errors()
        return reply

    def set_operation_mode(self, mode: str) -> None:
        current = self.query_checked("SYST:CONF:MODE?").strip().upper().replace("/", "")
        if current != mode:
            self.write_checked(f"SYST:CONF:MODE {mode}")


def test_instro_source_and_sink_quadrants(rig: Rig) -> None:
    visa = rig.visa
    # Set-up outside the replay: the front panel left the sink power at nominal (our *RST
    # default is 0 W, which would stop the sink; instro never sets SINK:POW).
    visa.write("SYST:LOCK ON;SINK:POW 30000;:SYST:LOCK OFF")
    dev = Instro(visa)
    # acquire()
    dev.write_checked("SYST:LOCK ON")
    assert visa.query("SYST:LOCK:OWN?").strip() == "REMOTE"
    # sink.set_mode(CC), sink.set_level(CC, 5.0)
    dev.set_operation_mode("UIP")
    dev.write_checked(f"SINK:CURR {5.0:.3f}")
    # source.set_voltage(300), set_current_limit(0), OVP and OCP levels
    dev.write_checked(f"VOLT {300.0:.3f}")
    dev.write_checked(f"CURR {0.0:.3f}")
    dev.write_checked(f"VOLT:PROT {400.0:.3f}")
    assert strip_unit(dev.query_checked("VOLT:PROT?")) == 400.0
    dev.write_checked(f"CURR:PROT {10.0:.3f}")
    assert strip_unit(dev.query_checked("CURR:PROT?")) == 10.0
    # output_enable(True), get_output_status()
    dev.write_checked("OUTP ON")
    assert dev.query_checked("OUTP?").strip().upper() == "ON"
    rig.h.advance(2.0)
    # sink.get_voltage(), sink.get_current() (sink-positive: minus the raw reading)
    assert strip_unit(dev.query_checked("MEAS:VOLT?")) == pytest.approx(350.0, abs=0.5)
    raw = strip_unit(dev.query_checked("MEAS:CURR?"))
    assert -raw == pytest.approx(5.0, abs=0.05)
    # sink.set_mode(CR): asks for U/I/R
    dev.set_operation_mode("UIR")
    assert dev.query_checked("SYST:CONF:MODE?") == "UIR"
    # output_enable(False), then release(): SYST:LOCK OFF
    dev.write_checked("OUTP OFF")
    visa.write("SYST:LOCK OFF")
    assert visa.query("SYST:LOCK:OWN?").strip() == "NONE"
    assert not rig.output_on()


# ---- cEAsource.cpp --------------------------------------------------------------------

_LEADING_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def atof(text: str) -> float:
    """C's ``atof``: the leading number of ``text`` (0.0 when there is none)."""
    match = _LEADING_NUMBER.match(text)
    return float(match.group(0)) if match else 0.0


def settle(visa: Any) -> None:
    """Test synchronisation, not part of the replay: ``*OPC?`` proves every write before it
    has run, so the plant is not advanced ahead of a command still in flight."""
    assert visa.query("*OPC?") == "1"


def fields(reply: str, count: int) -> list[str]:
    """A compound reply split at ``;`` as cEAsource does; it insists on ``count`` fields."""
    parts = reply.split(";")
    assert len(parts) == count, reply
    return parts


def test_ceasource_state_machine_and_its_watchdog(rig: Rig) -> None:
    visa = rig.visa
    # awaitIdn, awaitNominal, awaitDemandValues, awaitDemandState, awaitProtection
    assert len(visa.query("*IDN?").split(",")) >= 4
    nominal = [
        atof(f) for f in fields(visa.query("SYST:NOM:VOLT?;SYST:NOM:CURR?;SYST:NOM:POW?"), 3)
    ]
    assert nominal == [500.0, 180.0, 30000.0]
    demand = fields(visa.query("VOLT?;CURR?;SINK:CURR?;POW?;SINK:POW?"), 5)
    assert [atof(f) for f in demand] == [0.0] * 5
    assert visa.query("OUTP?").strip() in ("ON", "OFF")
    protection = "VOLT:PROT?;CURR:PROT?;SINK:CURR:PROT?;POW:PROT?;SINK:POW:PROT?"
    levels = [atof(f) for f in fields(visa.query(protection), 5)]
    assert levels == pytest.approx([550.0, 198.0, 198.0, 33000.0, 33000.0], rel=1e-4)
    # awaitSetRemote, awaitSetComTimeout (EASOURCETIMEOUT 6000 ms → 6 s)
    visa.write("SYST:LOCK ON")
    visa.write("SYST:COMM:MON:TIM 6;SYST:COMM:MON:ACT ON")
    # awaitSetProtection (after configure()): one compound message with units
    visa.write(
        "VOLT:PROT 400.00 V;CURR:PROT 10.00 A;SINK:CURR:PROT 3.00 A;"
        "POW:PROT 5000.00 W;SINK:POW:PROT 5000.00 W"
    )
    # awaitMeasure, awaitSetDemand, awaitSetState, awaitMeasure …
    actual = fields(visa.query("MEAS:VOLT?;MEAS:CURR?;MEAS:POW?;OUTP?"), 4)
    assert actual[3] == "OFF"
    visa.write("VOLT 300.00 V;CURR 0.00 A;SINK:CURR 2.00 A;POW 5000.00 W;SINK:POW 5000.00 W")
    visa.write("OUTP ON")
    settle(visa)
    for _ in range(3):
        rig.h.advance(1.0)
        actual = fields(visa.query("MEAS:VOLT?;MEAS:CURR?;MEAS:POW?;OUTP?"), 4)
        assert atof(actual[1]) == pytest.approx(-2.0, abs=0.02)
        assert actual[3] == "ON"
    assert visa.query("SYST:ERR?") == '0,"No error"'
    assert [atof(f) for f in fields(visa.query(protection), 5)] == [400, 10, 3, 5000, 5000]
    assert [atof(f) for f in fields(visa.query("POW?;SINK:POW?"), 2)] == [5000, 5000]
    # The client falls silent: after 6 s the unit leaves remote and its output goes off.
    rig.h.advance(5.9)
    assert rig.output_on()
    rig.h.advance(0.2)
    assert not rig.output_on()
    assert visa.query("SYST:LOCK:OWN?") == "NONE"
