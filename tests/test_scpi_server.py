"""A SCPI device served over real TCP sockets and a pty, driven by pyvisa-py.

The example supply is defined here. The servers run on a background asyncio loop, the
client is pyvisa-py exactly as the lab drivers use it. Faults are released by clearing
them, never by waiting; hypothesis throws random bytes at every server and the device must
still answer ``*IDN?`` on a fresh connection and on one that stayed open meanwhile.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pyvisa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

from instruments.emulation.scpi import (
    KEYSIGHT_ERRORS,
    Boolean,
    Nr3Format,
    Number,
    ScpiDevice,
    query,
    scpi_session_factory,
    setting,
)
from instruments.emulation.transport import (
    ActivityHooks,
    BackgroundLoop,
    Faults,
    PtyServer,
    ServerGroup,
)

IDN = "ACME,PS-60,0001,1.0"
TIMEOUT_MS = 10_000


class Supply(ScpiDevice):
    """A tiny supply for the server tests."""

    identity = IDN
    number_format = Nr3Format()
    error_format = KEYSIGHT_ERRORS
    voltage: float
    current: float
    output: bool
    commands = (
        setting(
            "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            "voltage",
            Number("V", min=0, max=60, default=0),
        ),
        setting("[SOURce:]CURRent[:LEVel]", "current", Number("A", min=0, max=10, default=0)),
        setting("OUTPut[:STATe]", "output", Boolean(default=False)),
        query("MEASure[:SCALar]:VOLTage[:DC]?", lambda dev: dev.voltage, unit="V"),
    )


@dataclass
class Bench:
    bg: BackgroundLoop
    group: ServerGroup
    device: Supply
    faults: Faults
    port: int
    path: str
    rm: pyvisa.ResourceManager
    left: list[str]
    pty_bytes: list[int]

    def open(self, resource: str, timeout: int = TIMEOUT_MS) -> MessageBasedResource:
        inst = self.rm.open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=timeout
        )
        assert isinstance(inst, MessageBasedResource)
        return inst

    def tcp(self, timeout: int = TIMEOUT_MS) -> MessageBasedResource:
        return self.open(f"TCPIP0::127.0.0.1::{self.port}::SOCKET", timeout)

    def serial_over_tcp(self) -> MessageBasedResource:
        return self.open(f"ASRLsocket://127.0.0.1:{self.port}::INSTR")

    def serial_pty(self) -> MessageBasedResource:
        return self.open(f"ASRL{self.path}::INSTR")

    @property
    def pty_server(self) -> PtyServer:
        server = self.group.servers[1]
        assert isinstance(server, PtyServer)
        return server

    def wait_pty_received(self, total: int) -> None:
        """Wait until the pty server has read ``total`` bytes since it started."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while sum(self.pty_bytes) < total:
            assert time.monotonic() < deadline, "the pty server never read the bytes"
            time.sleep(0.002)

    def wait_pty_released(self, before: int) -> None:
        """Wait until the pty server has seen a client leave (and flushed after it)."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(self.left) <= before:
            assert time.monotonic() < deadline, "the pty server never saw the client leave"
            time.sleep(0.002)


def start_bench(bg: BackgroundLoop) -> Bench:
    device = Supply()
    faults = Faults("PS1")
    group = ServerGroup()
    left: list[str] = []
    pty_bytes: list[int] = []
    pty_hooks = ActivityHooks(
        on_disconnect=lambda name, peer: left.append(peer),
        on_receive=lambda name, count: pty_bytes.append(count),
    )
    factory = scpi_session_factory(device)
    port = bg.run(group.serve_tcp(factory, instrument="PS1", faults=faults, terminator=b"\n"))
    path = bg.run(
        group.serve_pty(factory, instrument="PS1", faults=faults, terminator=b"\n", hooks=pty_hooks)
    )
    rm = pyvisa.ResourceManager("@py")
    return Bench(bg, group, device, faults, port, path, rm, left, pty_bytes)


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLoop]:
    with BackgroundLoop("scpi-server-tests") as loop:
        yield loop


@pytest.fixture
def bench(bg: BackgroundLoop) -> Iterator[Bench]:
    bench = start_bench(bg)
    yield bench
    # not rm.close(): pyvisa hands out one manager per library, shared with the drivers of
    # the session's bench, whose resources it would close too (tests run in any order)
    bg.run(bench.group.close())


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes then ``*IDN?`` on one socket; return everything up to the IDN line."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_MS / 1000) as sock:
        sock.sendall(data + b"\n*IDN?\n")
        received = b""
        while not received.endswith(IDN.encode() + b"\n"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {received[-200:]!r}"
            received += chunk
        return received


# ---- pyvisa over every transport -------------------------------------------------------


def test_pyvisa_socket_session(bench: Bench) -> None:
    inst = bench.tcp()
    assert inst.query("*IDN?") == IDN
    inst.write(":VOLT 12 V")
    inst.write("curr 500 mA;:OUTP ON")
    assert inst.query(":VOLT?") == "+1.200000E+01"
    assert inst.query("CURR?;:OUTP?;:MEAS:VOLT?") == "+5.000000E-01;1;+1.200000E+01"
    assert inst.query("SYST:ERR?") == '+0,"No error"'
    inst.close()


def test_unknown_header_and_out_of_range_leave_the_session_usable(bench: Bench) -> None:
    inst = bench.tcp()
    inst.write("FOO:BAR 3")
    inst.write("VOLT 75")
    assert inst.query("SYST:ERR?") == '-113,"Undefined header"'
    assert inst.query("SYST:ERR?") == '-222,"Data out of range"'
    assert inst.query("*ESR?") == str(32 | 16)
    assert inst.query("VOLT?") == "+0.000000E+00"
    inst.close()


def test_serial_variant_over_tcp(bench: Bench) -> None:
    inst = bench.serial_over_tcp()
    assert inst.query("*IDN?") == IDN
    inst.write("VOLT 7")
    assert inst.query("MEAS:VOLT?") == "+7.000000E+00"
    inst.close()


def test_serial_variant_on_a_pty_survives_reopening(bench: Bench) -> None:
    inst = bench.serial_pty()
    assert inst.query("*IDN?") == IDN
    inst.write("VOLT 3.3")
    before = len(bench.left)
    inst.close()
    bench.wait_pty_released(before)
    again = bench.serial_pty()
    assert again.query("VOLT?") == "+3.300000E+00"
    again.close()


def test_all_connections_share_one_instrument(bench: Bench) -> None:
    lan = bench.tcp()
    serial = bench.serial_pty()
    lan.write("VOLT 9")
    assert lan.query("*OPC?") == "1"
    assert serial.query("VOLT?") == "+9.000000E+00"
    serial.write("BOGUS")
    assert serial.query("*OPC?") == "1"
    assert lan.query("SYST:ERR?") == '-113,"Undefined header"'
    lan.close()
    serial.close()


# ---- bad input -------------------------------------------------------------------------


def test_overlong_message_is_dropped_with_an_error(bench: Bench) -> None:
    received = raw_exchange(bench.port, b"VOLT 5;" * 10_000)
    assert received == IDN.encode() + b"\n"
    assert bench.device.voltage == 0.0
    inst = bench.tcp()
    assert inst.query("SYST:ERR?") == '-223,"Too much data"'
    assert inst.query("SYST:ERR?") == '+0,"No error"'
    inst.close()


def test_undecodable_bytes_queue_a_parse_error(bench: Bench) -> None:
    received = raw_exchange(bench.port, b"\xff\xfeVOLT 5\x00")
    assert received == IDN.encode() + b"\n"
    inst = bench.tcp()
    assert inst.query("SYST:ERR?") == '-101,"Invalid character"'
    assert inst.query("VOLT?") == "+0.000000E+00"
    inst.close()


def test_crlf_terminated_messages_are_accepted(bench: Bench) -> None:
    received = raw_exchange(bench.port, b"VOLT 4\r\nVOLT?\r")
    assert received == b"+4.000000E+00\n" + IDN.encode() + b"\n"


# ---- faults seen by pyvisa -------------------------------------------------------------


def test_garbage_gives_a_wrong_reply_not_a_hang(bench: Bench) -> None:
    inst = bench.tcp()
    bench.faults.corrupt_next(1)
    bad = inst.query("*IDN?")
    assert bad != IDN and len(bad) == len(IDN)
    assert inst.query("*IDN?") == IDN
    inst.close()


def test_drop_makes_the_client_time_out_then_recovers(bench: Bench) -> None:
    inst = bench.tcp(timeout=200)
    bench.faults.drop_next(1)
    with pytest.raises(VisaIOError):
        inst.query("*IDN?")
    inst.timeout = TIMEOUT_MS
    assert inst.query("*IDN?") == IDN
    inst.close()


def test_delay_past_the_timeout_then_cleared(bg: BackgroundLoop, bench: Bench) -> None:
    inst = bench.tcp(timeout=200)
    bench.faults.set_delay(3600)
    with pytest.raises(VisaIOError):
        inst.query("MEAS:VOLT?")
    bg.call(bench.faults.clear)
    inst.timeout = TIMEOUT_MS
    assert inst.read() == "+0.000000E+00"
    assert inst.query("*IDN?") == IDN
    inst.close()


def test_disconnect_then_recovery(bg: BackgroundLoop, bench: Bench) -> None:
    inst = bench.tcp()
    assert inst.query("*IDN?") == IDN
    bg.call(lambda: bench.faults.disconnect(3600))
    # pyvisa-py lets the socket's own error through on write (ConnectionResetError).
    with pytest.raises((VisaIOError, OSError)):
        inst.query("*IDN?")
    inst.close()
    with pytest.raises((VisaIOError, OSError)):
        refused = bench.tcp(timeout=500)
        refused.query("*IDN?")
    bg.call(bench.faults.clear)
    fresh = bench.tcp()
    assert fresh.query("*IDN?") == IDN
    fresh.close()


# ---- fuzzing ---------------------------------------------------------------------------

scpi_words = st.sampled_from(
    [b"*IDN?", b"VOLT", b"volt?", b":", b";", b" ", b"MAX", b"1e999", b'"', b"'", b"?", b",",
     b"\n", b"\r", b"*RST", b"SOUR:", b"CURR 500 mA", b"OUTP ON", b"SYST:ERR?", b"#H", b"\x00",
     b"\xff", b"MEAS:VOLT?", b"-5", b"*ESE 300", b"[", b"<n>"]
)  # fmt: skip
fuzz_bytes = st.one_of(
    st.binary(max_size=2048),
    st.lists(scpi_words, max_size=60).map(b"".join),
)


@pytest.fixture(scope="module")
def fuzz_bench(bg: BackgroundLoop) -> Iterator[Bench]:
    bench = start_bench(bg)
    yield bench
    # not rm.close(): pyvisa hands out one manager per library, shared with the drivers of
    # the session's bench, whose resources it would close too (tests run in any order)
    bg.run(bench.group.close())


@given(data=fuzz_bytes)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_tcp_then_idn_still_answers(fuzz_bench: Bench, data: bytes) -> None:
    bystander = fuzz_bench.tcp()
    with socket.create_connection(("127.0.0.1", fuzz_bench.port), timeout=10) as sock:
        sock.sendall(data)
        assert bystander.query("*IDN?") == IDN
    fresh = fuzz_bench.tcp()
    assert fresh.query("*IDN?") == IDN
    assert bystander.query("*IDN?") == IDN
    fresh.close()
    bystander.close()


@given(data=fuzz_bytes)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_pty_then_idn_still_answers(fuzz_bench: Bench, data: bytes) -> None:
    bystander = fuzz_bench.tcp()
    before = len(fuzz_bench.left)
    expected = sum(fuzz_bench.pty_bytes) + len(data) + 1
    fd = os.open(fuzz_bench.path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, data + b"\n")
        fuzz_bench.wait_pty_received(expected)
    finally:
        os.close(fd)
    assert bystander.query("*IDN?") == IDN
    fuzz_bench.wait_pty_released(before)
    serial = fuzz_bench.serial_pty()
    serial.write("*CLS")
    assert serial.query("*IDN?") == IDN
    serial.close()
    bystander.close()
