"""Scripted byte-level tests for the EZA-2500 driver (no ports, no sockets)."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import SimClock
from hil.errors import (
    CommunicationError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    RatingError,
)
from instruments.base import Rating
from instruments.connection import SerialConnection
from instruments.eza2500 import DEFAULT_RATING, Alarm, Eza2500, Limits, Meters, Operation
from instruments.scripted import ScriptedSerialPort, SerialStep
from instruments.wire.eza2500 import (
    Command,
    Mode,
    build_nak,
    build_read,
    build_reply,
    build_write,
    encode_payload,
)

RESOURCE = "socket://127.0.0.1:5701"
LIMITS = {"cib": 20.0, "dig": 2.0, "ubv": 40.0, "ugv": 300.0, "obv": 58.0, "ogv": 380.0}


class SleepLog:
    """A SimClock whose sleeps are recorded (no waiting)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.clock = SimClock(self._advance)
        self._now = 0.0

    def _advance(self, seconds: float) -> float:
        self.sleeps.append(seconds)
        self._now += seconds
        return self._now


def make(
    *steps: SerialStep, pacing: float = 0.0, timeout: float = 0.05, rating: Rating | None = None
) -> tuple[Eza2500, ScriptedSerialPort, SleepLog]:
    port = ScriptedSerialPort.of(*steps)
    connection = SerialConnection(RESOURCE, timeout=timeout, opener=lambda: port)
    sleeps = SleepLog()
    converter = Eza2500(
        connection,
        rating=rating or DEFAULT_RATING,
        pacing=pacing,
        clock=sleeps.clock,
        name="E001-conv",
    )
    return converter, port, sleeps


def read_step(cmd: int, values: dict[str, float]) -> SerialStep:
    return SerialStep(build_read(cmd), build_reply(cmd, encode_payload(cmd, values, write=False)))


def write_step(cmd: int, values: dict[str, float]) -> SerialStep:
    return SerialStep(build_write(cmd, values), build_reply(cmd, encode_payload(cmd, values)))


def test_mode_read_request_bytes_are_pinned() -> None:
    converter, port, _ = make(
        SerialStep(
            bytes.fromhex("05 00 00 10 00 10 00"), bytes.fromhex("02 02 00 10 00 41 00 51 00")
        )
    )
    assert converter.mode() is Mode.CHARGE
    port.assert_done()


def test_voltage_reference_write_bytes_are_pinned() -> None:
    # dvg 350 V -> round(350 * 2**14 / 380) = 15091 = 0x3AF3; drg 0 -> 0.
    request = bytes.fromhex("05 04 00 10 1A F3 3A 00 00 57 01")  # sum 0x0157
    converter, port, _ = make(SerialStep(request, build_reply(0x1A, request[5:9])))
    echo = converter.set_voltage_reference(350.0, 0.0)
    assert echo.dvg == pytest.approx(350.0, abs=380 / 2**14)
    port.assert_done()


def test_set_mode_reads_the_mode_back() -> None:
    converter, port, _ = make(
        write_step(Command.MODE, {"mode": Mode.DISCHARGE}),
        read_step(Command.MODE, {"mode": Mode.DISCHARGE}),
    )
    converter.set_mode(Mode.DISCHARGE)
    port.assert_done()


def test_mode_read_back_mismatch_is_a_hardware_error() -> None:
    converter, _, _ = make(
        write_step(Command.MODE, {"mode": Mode.CHARGE}),
        read_step(Command.MODE, {"mode": Mode.WAIT}),
    )
    with pytest.raises(InstrumentReportedError, match="read back as WAIT"):
        converter.set_mode(Mode.CHARGE)


def test_retryable_nak_is_retried_with_pacing() -> None:
    request = build_write(Command.MODE, {"mode": Mode.WAIT})
    converter, port, sleeps = make(
        SerialStep(request, build_nak(Command.MODE, 0xFFFC)),
        SerialStep(request, build_nak(Command.MODE, 0xFFFD)),
        SerialStep(request, build_reply(Command.MODE, request[5:7])),
        pacing=0.062,
    )
    converter.write_values(Command.MODE, {"mode": Mode.WAIT})
    assert sleeps.sleeps == [pytest.approx(0.062), pytest.approx(0.062)]
    port.assert_done()


def test_retryable_nak_three_times_gives_up() -> None:
    request = build_read(Command.METERS)
    nak = build_nak(Command.METERS, 0xFFFC)
    converter, port, _ = make(*(SerialStep(request, nak) for _ in range(3)))
    with pytest.raises(InstrumentReportedError, match=r"0xFFFC.*after 3 tries"):
        converter.meters()
    port.assert_done()


def test_fatal_nak_is_not_retried() -> None:
    request = build_write(Command.MODE, {"mode": Mode.CHARGE})
    converter, port, _ = make(SerialStep(request, build_nak(Command.MODE, 0xFFFE)))
    with pytest.raises(InstrumentReportedError, match="0xFFFE \\(BAD_PARAMETER\\)") as caught:
        converter.set_mode(Mode.CHARGE)
    assert RESOURCE in str(caught.value)
    port.assert_done()


def test_bad_checksum_is_malformed_with_resource_and_command() -> None:
    reply = bytearray(build_reply(Command.MODE, b"\x41\x00"))
    reply[-1] ^= 0xFF
    converter, _, _ = make(SerialStep(build_read(Command.MODE), bytes(reply)))
    with pytest.raises(MalformedReply, match="checksum") as caught:
        converter.mode()
    assert RESOURCE in str(caught.value) and "0x00 MODE read" in str(caught.value)


def test_truncated_reply_is_malformed() -> None:
    reply = build_reply(Command.MODE, b"\x41\x00")[:-2]
    converter, _, _ = make(SerialStep(build_read(Command.MODE), reply))
    with pytest.raises(MalformedReply, match="truncated"):
        converter.mode()


def test_garbage_before_the_reply_is_skipped() -> None:
    reply = b"\xff\x00\x13" + build_reply(Command.MODE, b"\x14\x00")
    converter, _, _ = make(SerialStep(build_read(Command.MODE), reply))
    assert converter.mode() is Mode.VOLTAGE_REFERENCE


def test_reply_for_another_command_is_malformed() -> None:
    converter, _, _ = make(
        SerialStep(build_read(Command.MODE), build_reply(Command.STATUS, b"\0\0\0\0"))
    )
    with pytest.raises(MalformedReply, match="0x01"):
        converter.mode()


def test_no_reply_times_out_and_the_next_call_reopens() -> None:
    first = ScriptedSerialPort.of(SerialStep(build_read(Command.MODE), b""))
    second = ScriptedSerialPort.of(read_step(Command.MODE, {"mode": Mode.WAIT}))
    ports = deque([first, second])
    connection = SerialConnection(RESOURCE, timeout=0.02, opener=ports.popleft)
    converter = Eza2500(connection, pacing=0.0)
    with pytest.raises(InstrumentTimeout) as caught:
        converter.mode()
    assert RESOURCE in str(caught.value) and "0x00 MODE read" in str(caught.value)
    assert converter.mode() is Mode.WAIT
    assert first.closed


def test_dropped_line_is_a_communication_error() -> None:
    converter, _, _ = make(SerialStep(build_read(Command.MODE), OSError("pty hung up")))
    with pytest.raises(CommunicationError, match="pty hung up"):
        converter.mode()


def test_status_meters_and_alarms_decode() -> None:
    meters = {
        "vg": 350.0,
        "ig": -2.0,
        "vb": 50.0,
        "ib": 13.5,
        "wg": -700.0,
        "wb": 680.0,
        "ic": 0,
        "tmp": 35.5,
    }
    converter, port, _ = make(
        read_step(Command.STATUS, {"cst": 0b0110, "ext": 0}),
        read_step(Command.METERS, meters),
        read_step(Command.ALARMS, {"alm1": 0, "alm2": 4, "alm3": 0}),
        write_step(Command.ALARMS, {"d0": 0, "d1": 0}),
    )
    status = converter.status()
    assert status.operation is Operation.DISCHARGE
    assert status.alarm is Alarm.LIGHT
    reading = converter.meters()
    assert isinstance(reading, Meters)
    assert reading.ig == pytest.approx(-2.0, abs=7.8125 / 2**13)
    assert reading.vg == pytest.approx(350.0, abs=380 / 2**14)
    assert converter.alarms().any
    converter.clear_alarms()
    port.assert_done()


def test_apply_from_wait_sends_voltage_then_limits_then_mode() -> None:
    new_limits = {**LIMITS, "dig": 2.3}
    converter, port, _ = make(
        read_step(Command.MODE, {"mode": Mode.WAIT}),
        write_step(Command.VOLTAGE_REFERENCE, {"dvg": 350.0, "drg": 0.0}),
        read_step(Command.LIMITS, LIMITS),
        write_step(Command.LIMITS, new_limits),
        write_step(Command.MODE, {"mode": Mode.VOLTAGE_REFERENCE}),
        read_step(Command.MODE, {"mode": Mode.VOLTAGE_REFERENCE}),
    )
    converter.apply(mode=Mode.VOLTAGE_REFERENCE, dvg=350.0, drg=0.0, dig=2.3)
    port.assert_done()


def test_apply_when_active_sends_the_mode_first() -> None:
    converter, port, _ = make(
        read_step(Command.MODE, {"mode": Mode.CHARGE}),
        write_step(Command.MODE, {"mode": Mode.DISCHARGE}),
        read_step(Command.MODE, {"mode": Mode.DISCHARGE}),
        read_step(Command.LIMITS, LIMITS),
        write_step(Command.LIMITS, {**LIMITS, "dig": 1.0}),
    )
    converter.apply(mode=Mode.DISCHARGE, dig=1.0)
    port.assert_done()


def test_out_of_range_setpoints_are_refused_before_any_byte() -> None:
    converter, port, _ = make(rating=Rating(voltage=380.0, current=2.5, power=2500.0))
    with pytest.raises(RatingError, match="dig"):
        converter.apply(mode=Mode.CHARGE, dig=-0.5)
    with pytest.raises(RatingError, match=r"2\.5"):
        converter.set_grid_current(3.0)
    with pytest.raises(RatingError, match="dvg"):
        converter.set_voltage_reference(395.0)
    with pytest.raises(RatingError, match="ogv"):
        converter.set_limits(Limits(**{**LIMITS, "ogv": 500.0}))
    assert port.written == []


@settings(max_examples=60, deadline=None)
@given(dig=st.floats(allow_nan=True, allow_infinity=True))
def test_never_sends_a_grid_current_outside_its_rating(dig: float) -> None:
    rating = Rating(voltage=380.0, current=2.5, power=2500.0)
    inside = 0.0 <= dig <= 2.5
    steps = []
    if inside:
        steps = [
            read_step(Command.LIMITS, LIMITS),
            write_step(Command.LIMITS, {**LIMITS, "dig": dig}),
        ]
    converter, port, _ = make(*steps, rating=rating)
    if inside:
        converter.set_grid_current(dig)
    else:
        with pytest.raises(RatingError):
            converter.set_grid_current(dig)
    port.assert_done()


class CountingPort(ScriptedSerialPort):
    """A scripted port that also records every read size and every input flush."""

    def __init__(self, *steps: SerialStep) -> None:
        super().__init__(deque(steps))
        self.reads: list[int] = []
        self.flushes = 0

    def read(self, size: int = 1) -> bytes:
        self.reads.append(size)
        return super().read(size)

    def reset_input_buffer(self) -> None:
        self.flushes += 1
        super().reset_input_buffer()


def counting(*steps: SerialStep) -> tuple[Eza2500, CountingPort]:
    port = CountingPort(*steps)
    connection = SerialConnection(RESOURCE, timeout=0.05, opener=lambda: port)
    return Eza2500(connection, pacing=0.0, name="E001-conv"), port


def test_a_reply_is_read_in_at_most_two_calls_and_a_nak_in_one() -> None:
    meters = dict.fromkeys(("vg", "ig", "vb", "ib", "wg", "wb", "ic", "tmp"), 0.0)
    converter, port = counting(
        read_step(Command.METERS, meters),
        read_step(Command.MODE, {"mode": Mode.WAIT}),
        SerialStep(build_read(Command.METERS), build_nak(Command.METERS, 0xFFFE)),
    )
    converter.meters()
    assert port.reads == [9, 14]  # the shortest possible reply, then the rest after LEN
    port.reads.clear()
    converter.mode()
    assert port.reads == [9]
    port.reads.clear()
    with pytest.raises(InstrumentReportedError, match="0xFFFE"):
        converter.meters()
    assert port.reads == [9]  # a NAK is never waited for past its end
    port.assert_done()


def test_stray_bytes_longer_than_the_first_read_are_skipped() -> None:
    reply = bytes(range(0x20, 0x34)) + build_reply(Command.MODE, b"\x02\x00")
    converter, port = counting(SerialStep(build_read(Command.MODE), reply))
    assert converter.mode() is Mode.DISCHARGE
    assert port.reads[0] == 9 and sum(port.reads) == len(reply)


def test_input_is_flushed_after_opening_and_after_a_failed_exchange_only() -> None:
    bad = bytearray(build_reply(Command.MODE, b"\x41\x00"))
    bad[-1] ^= 0xFF
    converter, port = counting(
        read_step(Command.MODE, {"mode": Mode.WAIT}),
        read_step(Command.MODE, {"mode": Mode.WAIT}),
        SerialStep(build_read(Command.MODE), bytes(bad)),
        read_step(Command.MODE, {"mode": Mode.CHARGE}),
        read_step(Command.MODE, {"mode": Mode.CHARGE}),
    )
    converter.mode()
    converter.mode()
    assert port.flushes == 1  # on opening; a clean exchange leaves nothing pending
    with pytest.raises(MalformedReply, match="checksum"):
        converter.mode()
    assert port.flushes == 1
    assert converter.mode() is Mode.CHARGE
    assert port.flushes == 2  # what was left of the bad reply never meets the next request
    converter.mode()
    assert port.flushes == 2
    port.assert_done()


def test_leftovers_after_a_wrong_size_reply_are_flushed() -> None:
    long_ack = build_reply(Command.MODE, b"\x41\x00\x00\x00") + b"\x02\x02"
    converter, port = counting(
        SerialStep(build_read(Command.MODE), long_ack),
        read_step(Command.MODE, {"mode": Mode.CHARGE}),
    )
    with pytest.raises(MalformedReply, match="payload has 4 bytes, expected 2") as caught:
        converter.mode()
    assert RESOURCE in str(caught.value)
    assert converter.mode() is Mode.CHARGE  # the two stray bytes were flushed first
    assert port.flushes == 2
    port.assert_done()
