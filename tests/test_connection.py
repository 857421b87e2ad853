"""Transports against real loopback sockets and ptys (tiny responders written here).

These check what the scripted tests cannot: the bytes on the wire (terminators, literal
Modbus addresses, RTU framing), and timeout / drop / reopen behaviour of the real libraries.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from hil.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from instruments.apis_bms import ApisBms, Permission
from instruments.connection import (
    ModbusConnection,
    ScpiConnection,
    SerialConnection,
    SerialSettings,
    parse_modbus_resource,
)
from instruments.eza2500 import Eza2500
from instruments.wire.eza2500 import Command, Mode, build_read, build_reply, encode_payload

WAIT = 5.0


class LineServer:
    """A TCP server answering ``\\n``-terminated lines; records what it received."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.received.append(line + b"\n")
                reply = self.answer(line)
                if reply == b"DROP":
                    return
                if reply is not None:
                    conn.sendall(reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self._sock.close()


def scpi_answer(line: bytes) -> bytes | None:
    if line == b"*IDN?":
        return b"ACME,Model 7,SN1,1.0\n"
    if line == b"SILENT?":
        return None
    if line == b"DROP?":
        return b"DROP"
    if line.endswith(b"?"):
        return line[:-1] + b" OK\n"
    return None


@pytest.fixture
def line_server() -> Iterator[LineServer]:
    server = LineServer(scpi_answer)
    yield server
    server.close()


def test_scpi_socket_sends_newline_terminated_commands(line_server: LineServer) -> None:
    connection = ScpiConnection(f"TCPIP0::127.0.0.1::{line_server.port}::SOCKET", timeout=2.0)
    try:
        connection.write("VOLT 12.5")
        assert connection.query("*IDN?") == "ACME,Model 7,SN1,1.0"
        assert line_server.received == [b"VOLT 12.5\n", b"*IDN?\n"]
    finally:
        connection.close()


def test_scpi_timeout_names_resource_and_command_then_recovers(line_server: LineServer) -> None:
    resource = f"TCPIP0::127.0.0.1::{line_server.port}::SOCKET"
    connection = ScpiConnection(resource, timeout=0.2)
    try:
        with pytest.raises(InstrumentTimeout) as caught:
            connection.query("SILENT?")
        assert resource in str(caught.value) and "SILENT?" in str(caught.value)
        assert not connection.is_open
        assert connection.query("MEAS?") == "MEAS OK"
        assert line_server.connections == 2
    finally:
        connection.close()


def test_scpi_dropped_connection_raises_then_reopens(line_server: LineServer) -> None:
    connection = ScpiConnection(f"TCPIP0::127.0.0.1::{line_server.port}::SOCKET", timeout=0.3)
    try:
        with pytest.raises(CommunicationError, match="DROP"):
            connection.query("DROP?")
        connection.reopen()
        assert connection.query("*IDN?").startswith("ACME")
    finally:
        connection.close()


def test_scpi_serial_over_tcp_resource(line_server: LineServer) -> None:
    connection = ScpiConnection(
        f"ASRLsocket://127.0.0.1:{line_server.port}::INSTR",
        timeout=2.0,
        serial=SerialSettings(baudrate=115200),
    )
    try:
        assert connection.query("*IDN?").startswith("ACME")
        assert line_server.received[-1] == b"*IDN?\n"
    finally:
        connection.close()


def test_scpi_refused_connection_is_a_communication_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = ScpiConnection(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout=0.5, connect=False)
    with pytest.raises(CommunicationError, match=str(port)):
        connection.query("*IDN?")


def test_bad_visa_library_is_reported() -> None:
    with pytest.raises(CommunicationError, match="VISA library"):
        ScpiConnection("TCPIP0::127.0.0.1::1::SOCKET", visa_library="/nonexistent/libvisa.so")


def test_timeout_and_terminator_must_be_sensible() -> None:
    with pytest.raises(ConfigError, match="timeout"):
        ScpiConnection("TCPIP0::127.0.0.1::1::SOCKET", timeout=0, connect=False)
    with pytest.raises(ConfigError, match="terminator"):
        ScpiConnection("TCPIP0::127.0.0.1::1::SOCKET", termination="", connect=False)


# --------------------------------------------------------------------------------------
# Modbus


def test_parse_modbus_resources() -> None:
    assert parse_modbus_resource("modbus-tcp://10.0.0.9").port == 502
    tcp = parse_modbus_resource("modbus-tcp://127.0.0.1:5020")
    assert (tcp.kind, tcp.host, tcp.port) == ("tcp", "127.0.0.1", 5020)
    assert parse_modbus_resource("modbus-rtu-tcp://127.0.0.1:5021").kind == "rtu-tcp"
    rtu = parse_modbus_resource("modbus-rtu:/dev/pts/5")
    assert (rtu.kind, rtu.device) == ("rtu", "/dev/pts/5")
    assert parse_modbus_resource("modbus-rtu:socket://127.0.0.1:9").device == "socket://127.0.0.1:9"
    short = parse_modbus_resource("192.168.0.40:502")
    assert (short.kind, short.host, short.port) == ("tcp", "192.168.0.40", 502)
    assert parse_modbus_resource("/dev/ttyUSB0").kind == "rtu"
    assert parse_modbus_resource("socket://127.0.0.1:9").device == "socket://127.0.0.1:9"
    for bad in ("modbus-rtu:", "modbus-rtu-tcp://h", "modbus-tcp://:5", "host", "h:0", ""):
        with pytest.raises(ConfigError):
            parse_modbus_resource(bad)


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class InputRegisters:
    """Function 4 over a small address map; anything else answers exception 2."""

    def __init__(self, values: dict[int, int]) -> None:
        self.values = values
        self.requests: list[tuple[int, int, int, int]] = []

    def pdu(self, unit: int, pdu: bytes) -> bytes:
        function, address, count = struct.unpack(">BHH", pdu[:5])
        self.requests.append((unit, function, address, count))
        words = [self.values.get(address + i) for i in range(count)]
        if function != 4 or None in words:
            return struct.pack(">BB", function | 0x80, 2)
        return struct.pack(">BB", 4, 2 * count) + struct.pack(f">{count}H", *words)


class ModbusTcpResponder(LineServer):
    """MBAP (Modbus TCP) or RTU-over-TCP framing around :class:`InputRegisters`."""

    def __init__(self, registers: InputRegisters, *, rtu: bool) -> None:
        self.registers = registers
        self.rtu = rtu
        super().__init__(lambda line: None)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                if self.rtu:
                    frame = self._recv(conn, 8)
                    if not frame:
                        return
                    assert crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]
                    body = bytes((frame[0],)) + self.registers.pdu(frame[0], frame[1:6])
                    conn.sendall(body + struct.pack("<H", crc16(body)))
                else:
                    header = self._recv(conn, 7)
                    if not header:
                        return
                    tid, _, length, unit = struct.unpack(">HHHB", header)
                    reply = self.registers.pdu(unit, self._recv(conn, length - 1))
                    conn.sendall(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)

    @staticmethod
    def _recv(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return b""
            data += chunk
        return data


@pytest.mark.parametrize(
    ("rtu", "form"),
    [
        (False, "modbus-tcp://127.0.0.1:{port}"),
        (False, "127.0.0.1:{port}"),
        (True, "modbus-rtu-tcp://127.0.0.1:{port}"),
        (True, "socket://127.0.0.1:{port}"),
    ],
)
def test_bms_over_a_real_modbus_socket_reads_30030_at_wire_29(rtu: bool, form: str) -> None:
    registers = InputRegisters({29: 875, 30: 1})
    server = ModbusTcpResponder(registers, rtu=rtu)
    bms = ApisBms.open(form.format(port=server.port), device_id=1, timeout=2.0)
    try:
        reading = bms.read()
        assert reading.soc_percent == 87.5
        assert reading.permission is Permission.NONE
        assert registers.requests == [(1, 4, 29, 2)]
        registers.values.pop(30)
        with pytest.raises(InstrumentReportedError, match="illegal data address"):
            bms.read()
    finally:
        bms.close()
        server.close()


def test_modbus_tcp_unreachable_is_a_communication_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CommunicationError, match=f"modbus-tcp://127.0.0.1:{port}"):
        ModbusConnection(f"modbus-tcp://127.0.0.1:{port}", timeout=0.5)


# --------------------------------------------------------------------------------------
# ptys


class PtyDevice:
    """The instrument side of a pty: answers each request with ``answer(request)``."""

    def __init__(self, request_size: Callable[[bytes], int], answer: Callable[[bytes], bytes]):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        self.request_size = request_size
        self.answer = answer
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 1024)
            except OSError:
                continue
            size = self.request_size(buffer)
            while size and len(buffer) >= size:
                request, buffer = buffer[:size], buffer[size:]
                self.requests.append(request)
                os.write(self.master, self.answer(request))
                size = self.request_size(buffer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        os.close(self.master)


def test_eza2500_over_a_pty_path() -> None:
    def size(buffer: bytes) -> int:
        return 7 + buffer[1] if len(buffer) >= 2 else 0

    def answer(request: bytes) -> bytes:
        return build_reply(
            request[4], encode_payload(request[4], {"mode": Mode.CHARGE}, write=False)
        )

    device = PtyDevice(size, answer)
    converter = Eza2500.open(device.path, timeout=2.0, pacing=0.0)
    try:
        assert converter.mode() is Mode.CHARGE
        assert device.requests == [build_read(Command.MODE)]
    finally:
        converter.close()
        device.close()


def test_bms_over_modbus_rtu_on_a_pty() -> None:
    registers = InputRegisters({29: 1000, 30: 1})

    def answer(frame: bytes) -> bytes:
        assert crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]
        body = bytes((frame[0],)) + registers.pdu(frame[0], frame[1:6])
        return body + struct.pack("<H", crc16(body))

    device = PtyDevice(lambda buffer: 8, answer)
    bms = ApisBms.open(f"modbus-rtu:{device.path}", device_id=1, timeout=2.0)
    try:
        reading = bms.read()
        assert (reading.soc_percent, reading.permission) == (100.0, Permission.NONE)
        assert registers.requests == [(1, 4, 29, 2)]
    finally:
        bms.close()
        device.close()


def test_serial_socket_url_and_silence(line_server: LineServer) -> None:
    connection = SerialConnection(f"socket://127.0.0.1:{line_server.port}", timeout=0.2)
    try:

        def read_line(port: object) -> bytes:
            reply = port.read(64)  # type: ignore[attr-defined]
            if not reply:
                raise InstrumentTimeout("silent", resource=connection.resource, command="x")
            return bytes(reply)

        assert connection.exchange(b"*IDN?\n", read_line, "*IDN?").startswith(b"ACME")
        with pytest.raises(InstrumentTimeout):
            connection.exchange(b"SILENT?\n", read_line, "SILENT?")
        assert not connection.is_open
        assert connection.exchange(b"*IDN?\n", read_line, "*IDN?").startswith(b"ACME")
    finally:
        connection.close()


class ShortWritePort:
    """A serial port whose line takes only part of what is written."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> int:
        return len(data) - 1

    def read(self, size: int = 1) -> bytes:
        raise AssertionError("nothing may be read after a short write")

    @property
    def in_waiting(self) -> int:
        return 0

    def reset_input_buffer(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def test_a_short_write_is_a_dropped_line() -> None:
    port = ShortWritePort()
    connection = SerialConnection("socket://127.0.0.1:9", timeout=0.05, opener=lambda: port)
    with pytest.raises(CommunicationError, match="only 6 of 7 bytes sent") as caught:
        connection.exchange(build_read(Command.MODE), lambda p: p.read(9), "0x00 MODE read")
    assert "socket://127.0.0.1:9" in str(caught.value)
    assert not connection.is_open  # stale: the next exchange reopens the line
