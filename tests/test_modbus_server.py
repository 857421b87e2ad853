"""Emulated Modbus devices served over Modbus TCP, RTU over TCP and RTU on a pty.

Every check goes through real sockets or a real pty; clients are plain pymodbus 3.16 clients
(as the drivers use) or raw bytes where the exact wire matters.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus import FramerType
from pymodbus.client import (
    AsyncModbusTcpClient,
    ModbusSerialClient,
    ModbusTcpClient,
)

from hil.errors import ConfigError
from instruments.emulation.modbus import (
    Encoding,
    ModbusBus,
    ModbusDevice,
    Table,
    crc16,
    rtu_frame,
)
from instruments.emulation.transport import Faults, ServerGroup

WAIT_SECONDS = 5.0
FULL_SCALE = 0xCCCC  # EA-style: 52428 = 100 % of nominal
SET_LIMIT = 0xD0E5  # 102 %


class Supply:
    """A tiny EA-like model: coils, set values, a u32 state word and float32 nominals."""

    def __init__(self) -> None:
        self.remote = False
        self.output = False
        self.voltage_set = 0
        self.current_set = 0
        self.state = 0x0001_0080
        self.nominal_voltage = 1000.0
        self.offset = -123456

    def set_remote(self, on: bool) -> None:
        self.remote = on

    def set_output(self, on: bool) -> None:
        if on and not self.remote:
            raise ValueError("output needs remote control first")
        self.output = on

    def set_voltage(self, value: float) -> None:
        self.voltage_set = int(value)

    def set_current(self, value: float) -> None:
        self.current_set = int(value)

    def set_offset(self, value: float) -> None:
        self.offset = int(value)


class Battery:
    """A battery-like unit for these server tests, at wire addresses 30030/30031 (arbitrary:
    the real APIS battery answers at wire 29/30, see ``instruments/wire/apis_bms.py``)."""

    def __init__(self) -> None:
        self.soc = 51.7
        self.permission = 3


def make_supply_device(supply: Supply, unit_id: int) -> ModbusDevice:
    return (
        ModbusDevice(unit_id, "psb")
        .coil(402, "remote", lambda: supply.remote, supply.set_remote)
        .coil(405, "output", lambda: supply.output, supply.set_output)
        .discrete_input(10, "alarm", lambda: False)
        .input(121, "nominal U", lambda: supply.nominal_voltage, encoding=Encoding.F32)
        .holding(500, "U set", lambda: supply.voltage_set, supply.set_voltage, maximum=SET_LIMIT)
        .holding(501, "I set", lambda: supply.current_set, supply.set_current, maximum=SET_LIMIT)
        .holding(505, "state", lambda: supply.state, encoding=Encoding.U32)
        .holding(510, "offset", lambda: supply.offset, supply.set_offset, encoding=Encoding.I32)
    )


def make_battery_device(battery: Battery, unit_id: int = 1) -> ModbusDevice:
    return (
        ModbusDevice(unit_id, "battery")
        .input(30030, "rsoc", lambda: round(battery.soc * 10))
        .input(30031, "permission", lambda: battery.permission)
    )


class ServedBench:
    """Two Modbus endpoints (several units) served from one event loop in a thread."""

    def __init__(self) -> None:
        self.supply = Supply()
        self.battery = Battery()
        self.tcp_bus = ModbusBus(
            [make_supply_device(self.supply, 0), make_battery_device(self.battery, 1)]
        )
        self.rtu_bus = ModbusBus(
            [make_battery_device(self.battery, 1), make_supply_device(self.supply, 2)]
        )
        self.faults = Faults("psb")
        self.rtu_faults = Faults("battery")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.group = ServerGroup()
        self.tcp_port: int = self._run(
            self.group.serve_tcp(self.tcp_bus.tcp_session, instrument="psb", faults=self.faults)
        )
        self.rtu_tcp_port: int = self._run(
            self.group.serve_tcp(
                self.rtu_bus.rtu_session, instrument="battery", faults=self.rtu_faults
            )
        )
        self.pty: str = self._run(
            self.group.serve_pty(
                self.rtu_bus.rtu_session, instrument="battery", faults=self.rtu_faults
            )
        )

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_SECONDS)

    def in_loop(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self._run(self.group.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_SECONDS)
        self.loop.close()


@pytest.fixture(scope="module")
def bench() -> Iterator[ServedBench]:
    served = ServedBench()
    yield served
    served.close()


@pytest.fixture
def clean(bench: ServedBench) -> Iterator[ServedBench]:
    """The module's servers with their instruments as new (tests run in any order)."""
    vars(bench.supply).update(vars(Supply()))
    vars(bench.battery).update(vars(Battery()))
    yield bench
    bench.faults.clear()
    bench.rtu_faults.clear()


def _connect(client: Any) -> None:
    """pymodbus's sync ``connect``/``close`` are untyped; keep mypy --strict quiet here."""
    assert client.connect(), f"cannot connect {client}"


def _close(client: Any) -> None:
    client.close()


@pytest.fixture
def tcp(clean: ServedBench) -> Iterator[ModbusTcpClient]:
    client = ModbusTcpClient("127.0.0.1", port=clean.tcp_port, timeout=WAIT_SECONDS)
    _connect(client)
    yield client
    _close(client)


# ---- plain pymodbus clients ---------------------------------------------------------


def test_tcp_read_write_several_units(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    soc = tcp.read_input_registers(30030, count=2, device_id=1)
    assert not soc.isError() and soc.registers == [517, 3]
    assert not tcp.write_register(500, 0x6666, device_id=0).isError()
    assert clean.supply.voltage_set == 0x6666
    assert tcp.read_holding_registers(500, count=2, device_id=0).registers == [0x6666, 0]
    written = tcp.write_registers(500, [100, 200], device_id=0)
    assert not written.isError()
    assert (clean.supply.voltage_set, clean.supply.current_set) == (100, 200)


def test_multi_register_values_high_word_first(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    state = tcp.read_holding_registers(505, count=2, device_id=0).registers
    assert state == [0x0001, 0x0080]
    nominal = tcp.read_input_registers(121, count=2, device_id=0).registers
    assert tcp.convert_from_registers(nominal, tcp.DATATYPE.FLOAT32) == 1000.0
    words = tcp.convert_to_registers(-7, tcp.DATATYPE.INT32)
    assert not tcp.write_registers(510, words, device_id=0).isError()
    assert clean.supply.offset == -7
    back = tcp.read_holding_registers(510, count=2, device_id=0).registers
    assert tcp.convert_from_registers(back, tcp.DATATYPE.INT32) == -7
    # Reading half of a 32-bit value is allowed; writing half of it is not.
    assert tcp.read_holding_registers(506, count=1, device_id=0).registers == [0x0080]
    assert tcp.write_register(511, 1, device_id=0).exception_code == 2


def test_coils_and_discrete_inputs(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    assert not tcp.write_coil(402, True, device_id=0).isError()
    assert not tcp.write_coil(405, True, device_id=0).isError()
    assert clean.supply.output
    assert tcp.read_coils(405, count=1, device_id=0).bits[0] is True
    assert not tcp.write_coil(405, False, device_id=0).isError()
    assert tcp.read_discrete_inputs(10, count=1, device_id=0).bits[0] is False
    assert tcp.read_coils(402, count=4, device_id=0).exception_code == 2


def test_exception_2_illegal_address(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    assert tcp.read_holding_registers(499, count=1, device_id=0).exception_code == 2
    assert tcp.read_holding_registers(500, count=3, device_id=0).exception_code == 2
    assert tcp.read_input_registers(30032, count=1, device_id=1).exception_code == 2
    assert tcp.write_register(505, 1, device_id=0).exception_code == 2  # read-only
    assert tcp.write_coil(403, True, device_id=0).exception_code == 2
    assert tcp.write_registers(500, [1, 2, 3], device_id=0).exception_code == 2


def test_exception_3_illegal_value(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    tcp.write_register(500, 10, device_id=0)
    assert tcp.write_register(500, SET_LIMIT + 1, device_id=0).exception_code == 3
    assert clean.supply.voltage_set == 10
    # Validated before anything is written: the good first value is not applied either.
    assert tcp.write_registers(500, [20, SET_LIMIT + 1], device_id=0).exception_code == 3
    assert clean.supply.voltage_set == 10
    tcp.write_coil(402, False, device_id=0)
    refused = tcp.write_coil(405, True, device_id=0)  # the model raises ValueError
    assert refused.exception_code == 3 and not clean.supply.output


def test_async_client_and_unknown_unit(clean: ServedBench) -> None:
    async def scenario() -> tuple[Sequence[int], int]:
        client = AsyncModbusTcpClient("127.0.0.1", port=clean.tcp_port, timeout=WAIT_SECONDS)
        await client.connect()
        try:
            ok = await client.read_input_registers(30030, count=1, device_id=1)
            missing = await client.read_input_registers(30030, count=1, device_id=9)
            return ok.registers, missing.exception_code
        finally:
            client.close()

    registers, code = asyncio.run(scenario())
    assert list(registers) == [517] and code == 0x0B


def test_rtu_framing_over_tcp(clean: ServedBench) -> None:
    client = ModbusTcpClient(
        "127.0.0.1", port=clean.rtu_tcp_port, framer=FramerType.RTU, timeout=WAIT_SECONDS
    )
    _connect(client)
    try:
        assert client.read_input_registers(30030, count=1, device_id=1).registers == [517]
        assert not client.write_register(501, 77, device_id=2).isError()
        assert clean.supply.current_set == 77
        assert client.read_holding_registers(1, count=1, device_id=2).exception_code == 2
    finally:
        _close(client)


def test_rtu_on_pty(clean: ServedBench) -> None:
    client = ModbusSerialClient(clean.pty, baudrate=9600, timeout=WAIT_SECONDS)
    _connect(client)
    try:
        clean.battery.soc = 88.8
        assert client.read_input_registers(30030, count=2, device_id=1).registers == [888, 3]
        assert not client.write_register(500, 5, device_id=2).isError()
        assert clean.supply.voltage_set == 5
        assert client.read_input_registers(30030, count=1, device_id=2).exception_code == 2
    finally:
        _close(client)
        clean.battery.soc = 51.7


# ---- raw bytes: exact wire behaviour and faults -----------------------------------------


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


class RawLink:
    """A raw TCP connection that reads exactly one expected reply at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the emulator")
            self.buffer += chunk
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def mbap_reply(self) -> tuple[int, bytes]:
        header = self.read(7)
        tid, _, length, _ = struct.unpack(">HHHB", header)
        return tid, self.read(length - 1)

    def close(self) -> None:
        self.sock.close()


def test_raw_mbap_exceptions_for_bad_requests(clean: ServedBench) -> None:
    link = RawLink(clean.tcp_port)
    try:
        link.sock.sendall(_mbap(1, 0, struct.pack(">BHH", 5, 402, 0x1234)))
        assert link.mbap_reply() == (1, b"\x85\x03")  # FC5 value must be 0xFF00 / 0x0000
        link.sock.sendall(_mbap(2, 0, struct.pack(">BHH", 3, 500, 126)))
        assert link.mbap_reply() == (2, b"\x83\x03")  # quantity above 125
        link.sock.sendall(_mbap(3, 0, struct.pack(">BHH", 3, 500, 0)))
        assert link.mbap_reply() == (3, b"\x83\x03")
        link.sock.sendall(_mbap(4, 0, b"\x2b\x0e\x01\x00"))
        assert link.mbap_reply() == (4, b"\xab\x01")  # unsupported function
        link.sock.sendall(_mbap(5, 0, struct.pack(">BHHBH", 16, 500, 1, 3, 9)))
        assert link.mbap_reply() == (5, b"\x90\x03")  # byte count does not match quantity
    finally:
        link.close()


def test_fault_drop_swallows_one_reply(clean: ServedBench) -> None:
    link = RawLink(clean.tcp_port)
    try:
        clean.in_loop(clean.faults.drop_next, 1)
        read = struct.pack(">BHH", 4, 30030, 1)
        link.sock.sendall(_mbap(10, 1, read) + _mbap(11, 1, read))
        assert link.mbap_reply() == (11, b"\x04\x02\x02\x05")
    finally:
        link.close()


def test_fault_garbage_breaks_rtu_crc(clean: ServedBench) -> None:
    link = RawLink(clean.rtu_tcp_port)
    try:
        clean.in_loop(clean.rtu_faults.corrupt_next, 1)
        request = rtu_frame(1, struct.pack(">BHH", 4, 30030, 1))
        link.sock.sendall(request + request)
        spoiled, good = link.read(7), link.read(7)
        assert good == rtu_frame(1, b"\x04\x02\x02\x05")
        assert spoiled != good and len(spoiled) == len(good)
        assert crc16(spoiled[:-2]) != int.from_bytes(spoiled[-2:], "little")
    finally:
        link.close()


def test_fault_delay_keeps_answers_and_order(clean: ServedBench) -> None:
    link = RawLink(clean.tcp_port)
    try:
        clean.in_loop(clean.faults.set_delay, 0.05)
        read = struct.pack(">BHH", 4, 30030, 1)
        link.sock.sendall(_mbap(21, 1, read) + _mbap(22, 1, read))
        assert [link.mbap_reply()[0], link.mbap_reply()[0]] == [21, 22]
    finally:
        link.close()


def test_fault_disconnect_then_clear(clean: ServedBench) -> None:
    link = RawLink(clean.tcp_port)
    done = threading.Event()

    def cut() -> None:
        clean.faults.disconnect(60.0)
        done.set()

    clean.in_loop(cut)
    assert done.wait(WAIT_SECONDS)
    with pytest.raises((ConnectionError, OSError)):
        link.sock.sendall(_mbap(1, 1, struct.pack(">BHH", 4, 30030, 1)))
        link.mbap_reply()
    link.close()
    with pytest.raises((ConnectionError, OSError)):
        refused = RawLink(clean.tcp_port)
        try:
            refused.sock.sendall(_mbap(2, 1, struct.pack(">BHH", 4, 30030, 1)))
            refused.mbap_reply()
        finally:
            refused.close()
    cleared = threading.Event()

    def clear() -> None:
        clean.faults.clear()
        cleared.set()

    clean.in_loop(clear)
    assert cleared.wait(WAIT_SECONDS)
    link = RawLink(clean.tcp_port)
    try:
        link.sock.sendall(_mbap(3, 1, struct.pack(">BHH", 4, 30030, 1)))
        assert link.mbap_reply() == (3, b"\x04\x02\x02\x05")
    finally:
        link.close()


# ---- garbage on the line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtu_link(bench: ServedBench) -> Iterator[RawLink]:
    link = RawLink(bench.rtu_tcp_port)
    yield link
    link.close()


def _read_rtu_reply(link: RawLink, expected: bytes) -> None:
    """Read until ``expected`` arrives (other replies caused by the garbage may come first)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while expected not in link.buffer:
        assert time.monotonic() < deadline, "no RTU reply after garbage"
        chunk = link.sock.recv(4096)
        assert chunk, "connection closed"
        link.buffer += chunk
    link.buffer = link.buffer[link.buffer.index(expected) + len(expected) :]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=100))
def test_rtu_read_answers_after_random_bytes(rtu_link: RawLink, garbage: bytes) -> None:
    # One connection for every example: the line carries junk, then a read that must answer.
    request = rtu_frame(1, struct.pack(">BHH", 4, 30031, 1))
    rtu_link.sock.sendall(garbage + request)
    _read_rtu_reply(rtu_link, rtu_frame(1, b"\x04\x02\x00\x03"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=100))
def test_tcp_server_survives_random_bytes(clean: ServedBench, garbage: bytes) -> None:
    # MBAP has no checksum, so a junk header may swallow what follows on *that* connection;
    # the server must survive it and answer the next client.
    with socket.create_connection(("127.0.0.1", clean.tcp_port), timeout=WAIT_SECONDS) as junk:
        junk.sendall(garbage)
        link = RawLink(clean.tcp_port)
        try:
            link.sock.sendall(_mbap(7, 1, struct.pack(">BHH", 4, 30031, 1)))
            assert link.mbap_reply() == (7, b"\x04\x02\x00\x03")
        finally:
            link.close()


@settings(max_examples=200)
@given(garbage=st.binary(max_size=300))
def test_rtu_session_recovers_in_stream(garbage: bytes) -> None:
    session = ModbusBus([make_battery_device(Battery())]).rtu_session()
    replies = session.feed(garbage) + session.feed(rtu_frame(1, b"\x04\x75\x4e\x00\x01"))
    assert rtu_frame(1, b"\x04\x02\x02\x05") in replies


# ---- the map itself ---------------------------------------------------------------------


def test_map_rejects_overlaps_and_bad_units() -> None:
    device = ModbusDevice(1).holding(505, "state", lambda: 0, encoding=Encoding.U32)
    with pytest.raises(ConfigError, match="overlaps address 506"):
        device.holding(506, "other", lambda: 0)
    with pytest.raises(ConfigError, match="unit id 300"):
        ModbusDevice(300)
    with pytest.raises(ConfigError, match="used twice"):
        ModbusBus([ModbusDevice(1), ModbusDevice(1)])


def test_unreadable_value_is_device_failure() -> None:
    device = ModbusDevice(1).input(0, "broken", lambda: 70000).input(1, "nan", lambda: float("nan"))
    assert device.execute(struct.pack(">BHH", 4, 0, 1)) == b"\x84\x04"
    assert device.execute(struct.pack(">BHH", 4, 1, 1)) == b"\x84\x04"
    assert device.read_registers(Table.INPUT_REGISTERS, 0, 0) == []


def test_repeated_reads_stay_live(clean: ServedBench, tcp: ModbusTcpClient) -> None:
    assert tcp.read_input_registers(30030, count=1, device_id=1).registers == [517]
    clean.battery.soc = 60.0
    try:
        assert tcp.read_input_registers(30030, count=1, device_id=1).registers == [600]
    finally:
        clean.battery.soc = 51.7


def test_repeated_read_of_a_value_gone_bad_is_device_failure() -> None:
    value: list[float] = [42.6]
    session = ModbusBus([ModbusDevice(1).input(7, "v", lambda: value[0])]).tcp_session()
    request = _mbap(9, 1, struct.pack(">BHH", 4, 7, 1))
    assert session.feed(request) == [bytes.fromhex("0009 0000 0005 01 04 02 002b")]  # 42.6 -> 43
    value[0] = 70000
    assert session.feed(request) == [bytes.fromhex("0009 0000 0003 01 84 04")]
    value[0] = 3
    assert session.feed(request[:5]) + session.feed(request[5:]) == [
        bytes.fromhex("0009 0000 0005 01 04 02 0003")
    ]


def test_rtu_broadcast_writes_without_reply() -> None:
    supply = Supply()
    session = ModbusBus([make_supply_device(supply, 2)]).rtu_session()
    assert session.feed(rtu_frame(0, struct.pack(">BHH", 6, 500, 42))) == []
    assert supply.voltage_set == 42
    assert session.feed(rtu_frame(7, struct.pack(">BHH", 3, 500, 1))) == []  # not on this bus


@settings(max_examples=50)
@given(st.sampled_from(list(Encoding)), st.floats(allow_nan=False, allow_infinity=False))
def test_encoding_round_trip(encoding: Encoding, value: float) -> None:
    try:
        words = encoding.to_words(value)
    except (ValueError, OverflowError, struct.error):
        return
    decoded = encoding.from_words(words)
    if encoding.integer:
        assert decoded == round(value)
    else:
        assert decoded == struct.unpack(">f", struct.pack(">f", value))[0]


def test_repeated_rtu_poll_stays_live_and_a_bad_crc_stays_unanswered() -> None:
    battery = Battery()
    session = ModbusBus([make_battery_device(battery)]).rtu_session()
    request = rtu_frame(1, struct.pack(">BHH", 4, 30030, 2))
    assert session.feed(request) == [rtu_frame(1, bytes.fromhex("04 04 0205 0003"))]
    battery.soc, battery.permission = 60.0, 1
    assert session.feed(request) == [rtu_frame(1, bytes.fromhex("04 04 0258 0001"))]
    spoiled = request[:-1] + bytes((request[-1] ^ 0xFF,))
    assert session.feed(spoiled) == []
    assert session.feed(request[:3]) + session.feed(request[3:]) == [
        rtu_frame(1, bytes.fromhex("04 04 0258 0001"))
    ]


def test_repeated_rtu_poll_of_a_value_gone_bad_is_device_failure() -> None:
    value: list[float] = [7]
    session = ModbusBus([ModbusDevice(1).input(7, "v", lambda: value[0])]).rtu_session()
    request = rtu_frame(1, struct.pack(">BHH", 4, 7, 1))
    assert session.feed(request) == [rtu_frame(1, bytes.fromhex("04 02 0007"))]
    value[0] = 70000
    assert session.feed(request) == [rtu_frame(1, bytes.fromhex("84 04"))]
