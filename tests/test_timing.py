"""Instrument timing in the emulator (``timing = "real"``): processing and line times.

The emulator keeps an account of the *emulated* time each instrument spent (processing
per command kind from the family's ratings file, plus serial transmission of every byte).
These tests check that account — never the wall clock — against figures computed here
from the ratings files and the wire formats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest

from hil.config.benchfile import load_bench_file, parse_bench_text
from hil.config.ratings import find_model, parse_ratings
from hil.errors import ConfigError
from hil.units import EMULATOR_DRIVER_OPTIONS
from hil.units.bench import Bench
from instruments.emulation.emulator import Emulator
from instruments.emulation.process import EmulatorThread
from instruments.emulation.timing import InstrumentTiming, SerialLine, note
from instruments.families import CommandTiming
from instruments.wire.eza2500 import Command, build_read, build_reply, command_spec

ROOT = Path(__file__).resolve().parents[1]
BENCH_19 = ROOT / "benchmarks" / "benches" / "bench-19.toml"
EMULATED = ROOT / "fixtures" / "benches" / "emulated.toml"
#: What a converter unit's ``read()`` sends: meters, mode, status (hil.units.converter).
CONVERTER_READS = (Command.METERS, Command.MODE, Command.STATUS)
#: The APIS BMS read: one function-4 request (8 bytes) for SoC and status (2 registers).
BMS_REQUEST_BYTES = 8
BMS_REPLY_BYTES = 1 + 1 + 1 + 2 * 2 + 2  # unit, function, byte count, 2 words, CRC
MODBUS_RTU_GAP_CHARS = 3.5


def _line(nbytes: int, baud: int, gap: float = 0.0) -> float:
    return (nbytes + gap) * 10 / baud


def _timings(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: inst["timing"] for key, inst in status["instruments"].items()}


def test_serial_line_time_is_bits_over_baud() -> None:
    line = SerialLine(9600, bits_per_char=11, gap_chars=3.5)
    assert line.seconds(8) == pytest.approx((8 + 3.5) * 11 / 9600)
    assert line.seconds(0) == 0.0
    with pytest.raises(Exception, match="baud 0"):
        SerialLine(0)


def test_a_command_waits_for_the_one_before() -> None:
    """One instrument does one thing at a time: the second chunk, arriving while the first
    is processed, finishes one span after the first."""
    timing = InstrumentTiming("X", CommandTiming(0.010, 0.020, "test", True), None)

    def feed_read(data: bytes) -> list[bytes]:
        note("read")
        return [b"1\n"]

    _, first = timing.feed(feed_read, b"Q?\n", now=100.0)
    _, second = timing.feed(feed_read, b"Q?\n", now=100.001)
    assert first == pytest.approx(100.010)
    assert second == pytest.approx(100.020)
    assert timing.feed(lambda data: [], b"SET 1\n", now=200.0)[1] == pytest.approx(200.0)
    assert timing.account.commands == {"read": 2}
    assert timing.account.busy_s == pytest.approx(0.020)


def test_ratings_timing_table_is_checked() -> None:
    text = """
[timing]
read_ms = 4.0
write_ms = 6.0
assumed = false
source = "manual section 9"

[A]
description = "a"
voltage_max = 10.0
current_source_max = 1.0
current_sink_max = 0.0
power_max = 10.0
source = "s"

[B]
description = "b"
voltage_max = 10.0
current_source_max = 1.0
current_sink_max = 0.0
power_max = 10.0
source = "s"
[B.timing]
read_ms = 1.0
write_ms = 2.0
assumed = true
source = "guess"
"""
    models = parse_ratings(text, "x.toml", "x")
    assert set(models) == {"A", "B"}
    assert models["A"].timing == CommandTiming(0.004, 0.006, "manual section 9", False)
    assert models["B"].timing == CommandTiming(0.001, 0.002, "guess", True)
    with pytest.raises(ConfigError, match="read_ms"):
        parse_ratings(text.replace("read_ms = 4.0", "read_ms = -4.0"), "x.toml", "x")
    with pytest.raises(ConfigError, match="read_sm"):
        parse_ratings(text.replace("read_ms = 4.0", "read_sm = 4.0"), "x.toml", "x")


def test_timing_mode_follows_unit_then_bench_then_clock() -> None:
    text = EMULATED.read_text()
    config = parse_bench_text(text, EMULATED)
    assert Emulator(config, clock="sim").timings == {}
    assert set(Emulator(config, clock="wall").timings) == {i.key for i in config.instruments()}
    real = Emulator(config, clock="sim", timing="real")
    assert set(real.timings) == {i.key for i in config.instruments()}
    port = dataclasses.replace(config.emulation.ports["E001"], timing="none")
    ports = {**config.emulation.ports, "E001": port}
    emulation = dataclasses.replace(config.emulation, timing="real", ports=ports)
    mixed = Emulator(dataclasses.replace(config, emulation=emulation), clock="sim")
    assert not any(key.startswith("E001.") for key in mixed.timings)
    assert any(key.startswith("E002.") for key in mixed.timings)


def test_bench_file_timing_values_are_checked() -> None:
    text = EMULATED.read_text()
    assert "[emulation]" in text
    bad = text.replace("[emulation]\n", '[emulation]\ntiming = "fast"\n', 1)
    with pytest.raises(ConfigError, match="timing"):
        parse_bench_text(bad, EMULATED)
    good = text.replace("[emulation]\n", '[emulation]\ntiming = "real"\n', 1)
    assert parse_bench_text(good, EMULATED).emulation.timing == "real"


def _expected_unit_seconds(config: Any, unit_id: str) -> float:
    """The emulated time of one converter unit's read, from the ratings files and the wire
    formats: three EZA-2500 read frames and one Modbus RTU read of the BMS."""
    unit = config.unit(unit_id)
    total = 0.0
    for inst in unit.instruments:
        rating = find_model(inst.driver, inst.model)
        assert rating is not None and rating.timing is not None
        baud = int(inst.settings["baudrate"])
        if inst.driver == "eza2500":
            for cmd in CONVERTER_READS:
                request = len(build_read(cmd))
                reply = len(build_reply(cmd, bytes(command_spec(cmd).read_length)))
                total += rating.timing.read_s + _line(request, baud) + _line(reply, baud)
        else:
            assert inst.driver == "apis_bms"
            total += rating.timing.read_s
            total += _line(BMS_REQUEST_BYTES, baud, MODBUS_RTU_GAP_CHARS)
            total += _line(BMS_REPLY_BYTES, baud, MODBUS_RTU_GAP_CHARS)
    return total


@pytest.mark.parametrize("serial", ["tcp", "pty"])
def test_sequential_read_of_19_units_takes_the_sum_of_their_latencies(
    serial: Literal["tcp", "pty"],
) -> None:
    """Every unit read once, one after the other: the emulated time the instruments spent
    is the sum, over the units, of their models' processing and line times (the serial
    lines served on sockets or on ptys alike)."""
    config = load_bench_file(BENCH_19)
    emulator = EmulatorThread(config, timing="real", serial=serial)
    try:
        bench = Bench.on_emulator(
            config,
            emulator,
            timeout_s=5.0,
            identify=False,
            driver_options={**EMULATOR_DRIVER_OPTIONS, "eza2500": {"pacing": 0.0, "retries": 1}},
        )
        try:
            before = _timings(emulator.control.status())
            for unit in bench.units.values():
                unit.read()
            after = _timings(emulator.control.status())
        finally:
            bench.close()
    finally:
        emulator.stop()
    assert len(bench.units) == 19
    spent = sum(after[key]["busy_s"] - before[key]["busy_s"] for key in after)
    expected = sum(_expected_unit_seconds(config, uid) for uid in bench.units)
    assert spent == pytest.approx(expected, rel=1e-9)
    for key, account in after.items():
        assert account["mode"] == "real"
        reads = account["commands"].get("read", 0) - before[key]["commands"].get("read", 0)
        assert reads == (3 if key.endswith("converter") else 1), key
