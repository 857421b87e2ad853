"""The emulated EZA-2500 front: register semantics, NAKs, and raw frames over TCP and a pty."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.emulation.eza2500_protocol import (
    ConverterStatus,
    Eza2500Front,
    Limits,
    Meters,
    Refused,
)
from instruments.emulation.transport import Faults, ServerGroup
from instruments.wire import eza2500 as eza
from instruments.wire.eza2500 import Command, ErrorCode, Frame, FrameSplitter, Mode

WAIT_SECONDS = 5.0


class FakeConverter:
    """An in-test backend that records what it was told and reports fixed meters."""

    def __init__(self) -> None:
        self.modes: list[Mode] = []
        self.references: list[tuple[float, float]] = []
        self.limits: list[Limits] = []
        self.cleared = 0
        self.refuse_mode: int | None = None
        self.explode = False
        self.meter_values = Meters(vg=350.0, ig=-2.3, vb=52.0, ib=15.0, wg=-805.0, wb=780.0)
        self.state = ConverterStatus(running=2, alarm_level=1, alarms=(0x0004, 0, 0x0100))

    def apply_mode(self, mode: Mode) -> None:
        if self.explode:
            raise RuntimeError("plant port gone")
        if self.refuse_mode is not None:
            raise Refused(self.refuse_mode, "not now")
        self.modes.append(mode)

    def apply_voltage_reference(self, dvg: float, drg: float) -> None:
        self.references.append((dvg, drg))

    def apply_limits(self, limits: Limits) -> None:
        self.limits.append(limits)

    def meters(self) -> Meters:
        return self.meter_values

    def status(self) -> ConverterStatus:
        return self.state

    def clear_alarms(self) -> None:
        self.cleared += 1


def _ask(front: Eza2500Front, request: bytes) -> Frame | None:
    replies = front.session().feed(request)
    assert len(replies) <= 1
    return eza.parse_frame(replies[0]) if replies else None


def _reply(front: Eza2500Front, request: bytes) -> Frame:
    frame = _ask(front, request)
    assert frame is not None
    return frame


@pytest.fixture
def front() -> Eza2500Front:
    return Eza2500Front(FakeConverter(), instrument="E001-conv")


def _fake(front: Eza2500Front) -> FakeConverter:
    assert isinstance(front.backend, FakeConverter)
    return front.backend


def test_power_on_reads_apis_defaults(front: Eza2500Front) -> None:
    mode = _reply(front, eza.build_read(Command.MODE))
    assert (mode.start, mode.ad1, mode.ad2, mode.cmd) == (eza.START_REPLY, 0, 16, 0x00)
    assert eza.decode_payload(Command.MODE, mode.payload) == {"mode": Mode.WAIT}
    limits = eza.decode_payload(Command.LIMITS, _reply(front, eza.build_read(0x1C)).payload)
    assert limits["ogv"] == pytest.approx(400.0, abs=0.03)
    assert limits["dig"] == 0.0


def test_write_echoes_quantised_values_and_drives_backend(front: Eza2500Front) -> None:
    request = eza.build_write(Command.VOLTAGE_REFERENCE, {"dvg": 350.0, "drg": 0.0})
    echo = _reply(front, request)
    assert echo.payload == request[5:-2]
    dvg, drg = _fake(front).references[-1]
    assert dvg == pytest.approx(350.0, abs=380 / 2**14) and drg == 0.0
    read = _reply(front, eza.build_read(Command.VOLTAGE_REFERENCE))
    assert read.payload == echo.payload

    values = {"cib": 52.0, "dig": 2.3, "ubv": 40.0, "ugv": 300.0, "obv": 59.0, "ogv": 400.0}
    _reply(front, eza.build_write(Command.LIMITS, values))
    assert _fake(front).limits[-1].dig == pytest.approx(2.3, abs=7.8125 / 2**13)

    _reply(front, eza.build_write(Command.MODE, {"mode": Mode.VOLTAGE_REFERENCE}))
    assert _fake(front).modes == [Mode.VOLTAGE_REFERENCE]
    mode = _reply(front, eza.build_read(Command.MODE))
    assert eza.decode_payload(Command.MODE, mode.payload)["mode"] == Mode.VOLTAGE_REFERENCE


def test_reads_come_from_backend(front: Eza2500Front) -> None:
    meters = eza.decode_payload(Command.METERS, _reply(front, eza.build_read(0x09)).payload)
    assert meters["ig"] == pytest.approx(-2.3, abs=7.8125 / 2**13)
    assert meters["wg"] == pytest.approx(-805.0, abs=2500 / 2**11)
    status = eza.decode_payload(Command.STATUS, _reply(front, eza.build_read(0x01)).payload)
    assert status == {"cst": 2 | (1 << 2), "ext": 0}
    alarms = eza.decode_payload(Command.ALARMS, _reply(front, eza.build_read(0x12)).payload)
    assert alarms == {"alm1": 4, "alm2": 0, "alm3": 0x100}
    temps = eza.decode_payload(0x0A, _reply(front, eza.build_read(0x0A)).payload)
    assert temps["ts"] == 25 and temps["v5s"] == 5.0


def test_meters_saturate_instead_of_failing(front: Eza2500Front) -> None:
    _fake(front).meter_values = Meters(vg=5000.0, ig=-1e9, vb=0, ib=0, wg=float("inf"), wb=0)
    meters = eza.decode_payload(Command.METERS, _reply(front, eza.build_read(0x09)).payload)
    assert meters["vg"] == pytest.approx(32767 * 380 / 2**14)
    assert meters["ig"] == -7.8125 * 4
    assert meters["wg"] == pytest.approx(32767 * 2500 / 2**11)


def test_cvb_is_one_register_in_two_commands(front: Eza2500Front) -> None:
    _reply(front, eza.build_write(Command.BATTERY_CV, {"cvb": 55.0, "drb": 0.0}))
    config = eza.decode_payload(0x1D, _reply(front, eza.build_read(0x1D)).payload)
    assert config["cvb"] == pytest.approx(55.0, abs=48 / 2**14)
    assert config["bcf"] == 3


def test_alarm_clear_echoes_bytes_and_clears(front: Eza2500Front) -> None:
    echo = _reply(front, eza.build_write(Command.ALARMS, {"d0": 0, "d1": 0}))
    assert echo.payload == b"\x00\x00" and _fake(front).cleared == 1


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (eza.build_read(0x33), ErrorCode.UNSUPPORTED_COMMAND),
        (eza.build_request(Command.METERS, b"\x00\x00"), ErrorCode.UNSUPPORTED_COMMAND),
        (eza.build_request(Command.MODE, b"\x14\x00\x00"), ErrorCode.BAD_PARAMETER),
        (eza.build_request(Command.MODE, b"\x15\x00"), ErrorCode.BAD_PARAMETER),
        (
            eza.build_write(Command.VOLTAGE_REFERENCE, {"dvg": 420.0, "drg": 0.0}),
            ErrorCode.BAD_PARAMETER,
        ),
        (
            eza.build_write(
                Command.LIMITS,
                {"cib": 52.0, "dig": 9.0, "ubv": 40.0, "ugv": 300.0, "obv": 59.0, "ogv": 400.0},
            ),
            ErrorCode.BAD_PARAMETER,
        ),
    ],
)
def test_nak_codes(front: Eza2500Front, request_bytes: bytes, code: int) -> None:
    before = dict(front.registers)
    nak = _reply(front, request_bytes)
    assert nak.is_nak and nak.command == request_bytes[4] and nak.error_code == code
    assert front.registers == before


def test_backend_refusal_and_failure_become_naks(front: Eza2500Front) -> None:
    request = eza.build_write(Command.MODE, {"mode": Mode.DISCHARGE})
    _fake(front).refuse_mode = ErrorCode.NOT_ACCEPTED
    assert _reply(front, request).error_code == 0xFFFD
    _fake(front).refuse_mode = None
    _fake(front).explode = True
    assert _reply(front, request).error_code == 0xFFFB
    assert front.register("mode") == Mode.WAIT


def test_silence_for_other_address_bad_checksum_and_replies(front: Eza2500Front) -> None:
    assert _ask(front, eza.build_read(Command.MODE, ad1=1, ad2=16)) is None
    bad = bytearray(eza.build_read(Command.MODE))
    bad[-1] ^= 0x10
    assert _ask(front, bytes(bad)) is None
    assert _ask(front, eza.build_reply(Command.MODE, b"\x00\x00")) is None
    other = Eza2500Front(FakeConverter(), ad1=2, ad2=16)
    assert _reply(other, eza.build_read(Command.MODE, ad1=2)).ad1 == 2


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_session_answers_a_read_after_random_bytes(garbage: bytes) -> None:
    session = Eza2500Front(FakeConverter()).session()
    session.feed(garbage)
    replies = session.feed(eza.build_read(Command.METERS))
    frames = FrameSplitter(eza.START_REPLY).feed(b"".join(replies))
    assert any(f.cmd == Command.METERS and len(f.payload) == 16 for f in frames)


# ---- over real sockets and ptys ------------------------------------------------------


class ServedConverter:
    """One emulated converter served on TCP and a pty from an event loop in a thread."""

    def __init__(self) -> None:
        self.backend = FakeConverter()
        self.front = Eza2500Front(self.backend, instrument="E001-conv")
        self.faults = Faults("E001-conv")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.group = ServerGroup()
        self.port: int = self._run(
            self.group.serve_tcp(self.front.session, instrument="E001-conv", faults=self.faults)
        )
        self.path: str = self._run(
            self.group.serve_pty(self.front.session, instrument="E001-conv", faults=self.faults)
        )

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_SECONDS)

    def close(self) -> None:
        self._run(self.group.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_SECONDS)
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[ServedConverter]:
    server = ServedConverter()
    yield server
    server.close()


def _next_reply(port: serial.Serial, splitter: FrameSplitter) -> Frame:
    """Read until one complete reply frame arrives (generous deadline, no timing claim)."""
    deadline = time.monotonic() + WAIT_SECONDS
    pending: list[Frame] = []
    while not pending:
        assert time.monotonic() < deadline, "no reply from the emulated converter"
        pending = splitter.feed(port.read(max(1, port.in_waiting)))
    assert len(pending) == 1
    return pending[0]


def _exchange_checks(port: serial.Serial) -> None:
    splitter = FrameSplitter(eza.START_REPLY)
    port.write(eza.build_write(Command.MODE, {"mode": Mode.CHARGE}))
    assert _next_reply(port, splitter).payload == b"\x41\x00"
    # A corrupted request and one for another unit get no answer: the next reply on the
    # line is the one for the read that follows them.
    bad = bytearray(eza.build_read(Command.STATUS))
    bad[-2] ^= 0xFF
    port.write(bytes(bad) + eza.build_read(Command.STATUS, ad2=17) + eza.build_read(0x09))
    reply = _next_reply(port, splitter)
    assert reply.cmd == Command.METERS and len(reply.payload) == 16
    port.write(eza.build_read(0x44))
    assert _next_reply(port, splitter).error_code == ErrorCode.UNSUPPORTED_COMMAND


def test_raw_frames_over_tcp(served: ServedConverter) -> None:
    with serial.serial_for_url(f"socket://127.0.0.1:{served.port}", timeout=0.2) as port:
        _exchange_checks(port)


def test_raw_frames_over_pty(served: ServedConverter) -> None:
    with serial.Serial(served.path, baudrate=19200, timeout=0.2) as port:
        _exchange_checks(port)


def test_garbage_fault_breaks_one_reply_checksum(served: ServedConverter) -> None:
    with serial.serial_for_url(f"socket://127.0.0.1:{served.port}", timeout=0.2) as port:
        served.loop.call_soon_threadsafe(served.faults.corrupt_next, 1)
        splitter = FrameSplitter(eza.START_REPLY)
        port.write(eza.build_read(Command.MODE) + eza.build_read(Command.METERS))
        # The corrupted mode reply is discarded by the splitter; the meters reply survives.
        reply = _next_reply(port, splitter)
        assert reply.cmd == Command.METERS
        assert splitter.discarded > 0


@pytest.fixture(scope="module")
def fuzz_port(served: ServedConverter) -> Iterator[serial.Serial]:
    with serial.serial_for_url(f"socket://127.0.0.1:{served.port}", timeout=0.2) as port:
        yield port


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(garbage=st.binary(max_size=120))
def test_tcp_read_answers_after_random_bytes(fuzz_port: serial.Serial, garbage: bytes) -> None:
    # One connection for every example: the server sees one long stream of junk and reads.
    fuzz_port.write(garbage + eza.build_read(Command.MODE))
    splitter = FrameSplitter(eza.START_REPLY)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        assert time.monotonic() < deadline, f"no mode reply after {garbage.hex(' ')}"
        frames = splitter.feed(fuzz_port.read(max(1, fuzz_port.in_waiting)))
        if any(f.cmd == Command.MODE and len(f.payload) == 2 for f in frames):
            break


def test_meter_words_are_signed_on_the_wire(front: Eza2500Front) -> None:
    payload = _reply(front, eza.build_read(0x09)).payload
    assert struct.unpack("<8h", payload)[1] < 0
