"""Causality of simulated time: an ``advance`` acts after every byte a client sent before
it (``docs/emulator-control.md``), here a set-only SCPI write on another connection, with
two CPU hogs competing for the machine. The 10 000-iteration version with its timings is
``benchmarks/advance_causality.py``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from causality_probe import cpu_hogs, probe
from emulated_rig import EMULATED_BENCH

from instruments.connection import _tcp_socket
from instruments.emulation.process import EmulatorProcess, start_emulator

ITERATIONS = 300


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(EMULATED_BENCH) as emu:
        yield emu


def test_a_write_then_advance_never_overtakes_it_under_load(emulator: EmulatorProcess) -> None:
    with cpu_hogs(2):
        result = probe(emulator.resources, emulator.control, ITERATIONS)
    assert result.iterations == ITERATIONS
    assert result.misses == []


def test_every_tcp_client_line_sends_without_delay(emulator: EmulatorProcess) -> None:
    """pyvisa (SCPI socket), pymodbus (Modbus TCP, RTU over TCP), pyserial (``socket://``)."""
    from instruments.connection import ModbusConnection, ScpiConnection, SerialConnection

    resources = emulator.resources
    lines = [
        ScpiConnection(resources["E005.supply"], timeout=2.0),
        ModbusConnection(resources["BID2.bidirectional"], timeout=2.0),
        ModbusConnection(resources["E001.battery"], timeout=2.0),
        SerialConnection(resources["E005.converter"], timeout=2.0),
    ]
    try:
        for line in lines:
            sock = _tcp_socket(line._handle())
            assert sock is not None, line.resource
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, line.resource
    finally:
        for line in lines:
            line.close()
