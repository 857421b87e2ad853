"""Faults on the wire: a lost instrument ends all-safe; garbage and silence give clear errors.

Every family of transport is hit: SCPI over LAN (N5700), EZA-2500 binary frames, Modbus
TCP (PSB 10000) and Modbus RTU (APIS BMS). Errors must name the resource and the command.
Garbage is detectable where the protocol can see it (SCPI syntax, EZA-2500 checksum, RTU
CRC-16); Modbus TCP carries no checksum (TCP's own protects it), so a spoilt register value
there is a plausibility matter for the supervisor, not a wire error.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.checks import shutdown_order_problems
from fixtures.exchanges import ExchangeFactory
from fixtures.measure import Measure
from fixtures.options import BenchOptions
from fixtures.twin import Twin
from hil.clock import Clock
from hil.controller import CurrentController
from hil.errors import CommunicationError, HilError, InstrumentTimeout
from hil.units.bench import Bench

#: The units of the default emulated bench these benches name (skipped on a bench without them).
pytestmark = pytest.mark.units("BID2", "E001", "E002", "E003", "SUP1", "SUP2")

#: One instrument of each transport, the unit it belongs to, and an exchange it is in.
LOST = [
    ("E001.converter", {"E001": 1.0}, {"E003": 1.0}),
    ("E001.battery", {"E001": 1.0}, {"E003": 1.0}),
    ("SUP1.supply", {"SUP1": 1.0}, {"E003": 1.0}),
    ("BID2.bidirectional", {"E002": 1.0}, {"BID2": 1.0}),
    ("SUP2.supply", {"SUP2": 1.0}, {"E003": 1.0}),  # RS-232C
]
TRANSPORTS = ["SUP1.supply", "E002.converter", "BID2.bidirectional", "E002.battery"]
CHECKED = ["SUP1.supply", "E002.converter", "E002.battery"]


@pytest.mark.emulated
@pytest.mark.parametrize(("instrument", "discharge", "charge"), LOST, ids=[i for i, _, _ in LOST])
def test_instrument_disconnected_mid_exchange_ends_all_safe(
    exchange: ExchangeFactory,
    measure: Measure,
    emulator: Twin,
    clock: Clock,
    instrument: str,
    discharge: dict[str, float],
    charge: dict[str, float],
) -> None:
    exchange.start(discharge=discharge, charge=charge, duration=300, name="lost")
    exchange.wait(6)
    emulator.fault(instrument, "disconnect", seconds=3.0)
    with pytest.raises(HilError, match=instrument.split(".")[0]):
        exchange.serve()
    report = exchange.engine.last_shutdown
    assert report is not None and not shutdown_order_problems(report)
    measure("units not confirmed safe by the shutdown", len(report.unconfirmed), "", high=1)
    assert emulator.wait_safe(clock) == []


def _resource(bench: Bench, instrument: str) -> str:
    unit_id, name = instrument.split(".")
    return bench.config.unit(unit_id).instrument(name).resource


@pytest.mark.emulated
@pytest.mark.parametrize("instrument", CHECKED)
def test_garbage_replies_give_a_clear_error(
    unit: Callable[[str], CurrentController], bench: Bench, emulator: Twin, instrument: str
) -> None:
    emulator.fault(instrument, "garbage", count=50)
    with pytest.raises(CommunicationError) as error:
        unit(instrument.split(".")[0]).read()
    assert _resource(bench, instrument) in str(error.value)
    assert error.value.command, "the error names the command that got garbage back"


@pytest.mark.emulated
@pytest.mark.parametrize("instrument", TRANSPORTS)
def test_silent_instrument_gives_a_timeout_naming_it(
    unit: Callable[[str], CurrentController],
    bench: Bench,
    emulator: Twin,
    hil_options: BenchOptions,
    instrument: str,
) -> None:
    timeout = hil_options.instrument_timeout
    assert timeout is not None
    emulator.fault(instrument, "delay", seconds=3 * timeout)
    with pytest.raises(InstrumentTimeout) as error:
        unit(instrument.split(".")[0]).read()
    assert _resource(bench, instrument) in str(error.value)
    assert f"{timeout:g} s" in str(error.value)
