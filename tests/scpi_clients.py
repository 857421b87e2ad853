"""Test helper: pyvisa-py clients for emulated SCPI models served by :mod:`plant_servers`.

Used by the N5700, IT6000C and Chroma 63200A model tests: the resource string the emulator
would print for a served SCPI model, a client set up the way the lab drivers set theirs up
(both terminators ``\\n``), and the error queue drained as a list of codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pyvisa
from plant_servers import PlantServers
from pyvisa.resources import MessageBasedResource

from hil.config.bench import BenchConfig
from instruments.emulation.models import InstrumentModel, ModelContext, Wire

VISA_TIMEOUT_MS = 10_000


def context_of(bench: BenchConfig, key: str) -> ModelContext:
    """The model context of instrument ``<unit>.<name>`` (a unit may hold two SCPI ones)."""
    unit_id, name = key.split(".", 1)
    unit = bench.unit(unit_id)
    return ModelContext(bench=bench, unit=unit, instrument=unit.instrument(name))


def serve_visa(servers: PlantServers, model: InstrumentModel) -> str:
    """Serve a SCPI model on loopback TCP; returns the VISA resource the emulator prints."""
    port = servers.serve_tcp(model, terminator=b"\n")
    if model.wire is Wire.SCPI_SERIAL:
        return f"ASRLsocket://127.0.0.1:{port}::INSTR"
    return f"TCPIP0::127.0.0.1::{port}::SOCKET"


@cache
def _manager() -> pyvisa.ResourceManager:
    # One manager for the session: pyvisa shares its library session with the drivers' own
    # manager, so closing one would close the other's resources.
    return pyvisa.ResourceManager("@py")


@contextmanager
def visa_client(resource: str) -> Iterator[MessageBasedResource]:
    """A pyvisa-py client with both terminators ``\\n``, as the lab drivers set them."""
    inst = _manager().open_resource(resource, timeout=VISA_TIMEOUT_MS)
    assert isinstance(inst, MessageBasedResource)
    inst.read_termination = "\n"
    inst.write_termination = "\n"
    try:
        yield inst
    finally:
        inst.close()


def scpi_errors(inst: MessageBasedResource) -> list[int]:
    """Drain ``SYST:ERR?``: the codes queued since the last drain (empty when none)."""
    codes: list[int] = []
    for _ in range(32):
        code = int(inst.query("SYST:ERR?").split(",", 1)[0])
        if code == 0:
            return codes
        codes.append(code)
    raise AssertionError(f"error queue never emptied: {codes}")
