"""Emulated Modbus devices: a declarative register map and Modbus TCP / RTU byte sessions.

A :class:`ModbusDevice` (one unit id) declares its coils, discrete inputs, holding and input
registers by address, each backed by a *read* function and, when writable, a *write* function
that may refuse a value by raising ``ValueError``. The device executes request PDUs itself:

- an address outside the map, or a request that covers only part of a multi-register value
  on write, answers exception 2 (ILLEGAL DATA ADDRESS);
- a bad quantity, byte count, coil value (FC5 not 0xFF00/0x0000), a value outside a point's
  ``minimum``/``maximum``, or a write function raising ``ValueError``: exception 3
  (ILLEGAL DATA VALUE);
- an unsupported function: exception 1; a read or write function failing unexpectedly (or a
  read value that does not fit its encoding): exception 4 (SERVER DEVICE FAILURE), logged.

Multi-register values (``U32``, ``I32``, ``F32``) are sent high word first. Supported
functions: 1, 2, 3, 4, 5, 6, 15, 16.

Serving: :class:`ModbusBus` groups devices behind one endpoint (a TCP port or an RS-485 line)
and hands out per-connection sessions for ``instruments.emulation.transport``:
``bus.tcp_session`` (MBAP framing, Modbus TCP) and ``bus.rtu_session`` (RTU framing with
CRC-16, for "RTU over TCP" and for a pty). Faults (disconnect, delay, garbage, drop) therefore
come from transport.py's :class:`~instruments.emulation.transport.Faults` like every other
protocol, and the emulator owns the pty master natively.

Why not pymodbus's server classes: measured on this machine (sync ``ModbusTcpClient``, one
holding register, ``benchmarks/modbus_roundtrip.py``), pymodbus 3.16's ``ModbusTcpServer``
with a ``SimDevice`` answers 1.5 to 3.6 times slower than a constant-answer floor server,
above the 1.3 target before any fault proxy is added; its serial server also cannot serve a
pty master (it opens a device path; a pty master has none). These sessions stay within
1.0 to 1.12 of the floor, while pymodbus remains the client the drivers use. A TCP session
keeps a responder for every register read it has parsed, so repeated polling skips parsing
(values are still read live at every request).

Framing robustness: both framings resynchronise byte by byte. An RTU frame must pass its CRC;
an MBAP header must have protocol id 0, a length of 2…254, exactly 6 for functions 1-6 and
at least 7 for functions 15 and 16 (a byte count that disagrees then answers exception 3).
While a candidate frame is incomplete, a complete valid frame later in the buffer wins, so
stray bytes cannot stall the line. MBAP has no checksum: a junk header that passes these
checks can swallow the bytes after it on that connection (a client recovers by timing out
and reconnecting, as with a real device). On an RTU line, frames for
unit ids not on the bus are ignored and unit 0 is a broadcast (writes executed, no reply);
over Modbus TCP an unknown unit id answers exception 0x0B (gateway target failed to respond).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from instruments.emulation import timing
from instruments.errors import ConfigError

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03
SERVER_DEVICE_FAILURE: Final = 0x04
GATEWAY_TARGET_FAILED: Final = 0x0B

READ_COILS: Final = 1
READ_DISCRETE_INPUTS: Final = 2
READ_HOLDING_REGISTERS: Final = 3
READ_INPUT_REGISTERS: Final = 4
WRITE_SINGLE_COIL: Final = 5
WRITE_SINGLE_REGISTER: Final = 6
WRITE_MULTIPLE_COILS: Final = 15
WRITE_MULTIPLE_REGISTERS: Final = 16
SUPPORTED_FUNCTIONS: Final = frozenset((1, 2, 3, 4, 5, 6, 15, 16))

MAX_READ_BITS: Final = 2000
MAX_READ_REGISTERS: Final = 125
MAX_WRITE_BITS: Final = 1968
MAX_WRITE_REGISTERS: Final = 123
MAX_RTU_FRAME: Final = 256
MAX_MBAP_LENGTH: Final = 254
MAX_PLANS: Final = 1024


class ModbusError(Exception):
    """A request the device refuses with a Modbus exception code."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        super().__init__(f"Modbus exception {code}: {reason}")


class Table(enum.Enum):
    """The four Modbus data tables."""

    COILS = "coil"
    DISCRETE_INPUTS = "discrete input"
    HOLDING_REGISTERS = "holding register"
    INPUT_REGISTERS = "input register"


class Encoding(enum.Enum):
    """How a value is laid out in 16-bit registers (multi-register: high word first)."""

    U16 = (">H", 1, True)
    I16 = (">h", 1, True)
    U32 = (">I", 2, True)
    I32 = (">i", 2, True)
    F32 = (">f", 2, False)

    def __init__(self, fmt: str, words: int, integer: bool) -> None:
        self.fmt = fmt
        self.words = words
        self.integer = integer

    def to_words(self, value: float) -> tuple[int, ...]:
        """Registers for ``value``; ``ValueError`` if it does not fit."""
        if self is Encoding.U16 and type(value) is int and 0 <= value <= 0xFFFF:
            return (value,)
        if self.integer:
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not a finite number")
            packed = struct.pack(self.fmt, round(value))
        else:
            packed = struct.pack(self.fmt, value)
        return struct.unpack(f">{self.words}H", packed)

    def from_words(self, words: Iterable[int]) -> float:
        """The value held in ``words`` (an ``int`` for integer encodings)."""
        value: float = struct.unpack(self.fmt, struct.pack(f">{self.words}H", *words))[0]
        return value


ReadBit = Callable[[], bool]
WriteBit = Callable[[bool], None]
ReadValue = Callable[[], float]
WriteValue = Callable[[float], None]


@dataclass(frozen=True)
class BitPoint:
    """A coil or discrete input."""

    name: str
    address: int
    read: ReadBit
    write: WriteBit | None = None


@dataclass(frozen=True)
class RegisterPoint:
    """A value held in one or more holding or input registers."""

    name: str
    address: int
    read: ReadValue
    write: WriteValue | None = None
    encoding: Encoding = Encoding.U16
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: float) -> None:
        """``ModbusError`` (exception 3) when ``value`` lies outside the point's range."""
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ModbusError(
                ILLEGAL_DATA_VALUE,
                f"{self.name} = {value:g} outside {self.minimum} … {self.maximum}",
            )


class ModbusDevice:
    """One emulated Modbus unit: its register map and the PDUs it answers."""

    def __init__(self, unit_id: int, name: str = "") -> None:
        if not 0 <= unit_id <= 247:
            raise ConfigError(f"Modbus device {name!r}: unit id {unit_id} is not in 0…247")
        self.unit_id = unit_id
        self.name = name or f"unit {unit_id}"
        self._bits: dict[Table, dict[int, BitPoint]] = {
            Table.COILS: {},
            Table.DISCRETE_INPUTS: {},
        }
        self._words: dict[Table, dict[int, tuple[RegisterPoint, int]]] = {
            Table.HOLDING_REGISTERS: {},
            Table.INPUT_REGISTERS: {},
        }
        self._plans: dict[tuple[int, int, int], Callable[[], bytes]] = {}

    # ---- declaring the map ---------------------------------------------------------
    def coil(
        self, address: int, name: str, read: ReadBit, write: WriteBit | None = None
    ) -> ModbusDevice:
        """Declare a coil (writable when ``write`` is given)."""
        self._add_bit(Table.COILS, BitPoint(name, address, read, write))
        return self

    def discrete_input(self, address: int, name: str, read: ReadBit) -> ModbusDevice:
        """Declare a read-only discrete input."""
        self._add_bit(Table.DISCRETE_INPUTS, BitPoint(name, address, read))
        return self

    def holding(
        self,
        address: int,
        name: str,
        read: ReadValue,
        write: WriteValue | None = None,
        *,
        encoding: Encoding = Encoding.U16,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> ModbusDevice:
        """Declare a holding-register value (writable when ``write`` is given)."""
        point = RegisterPoint(name, address, read, write, encoding, minimum, maximum)
        self._add_register(Table.HOLDING_REGISTERS, point)
        return self

    def input(
        self, address: int, name: str, read: ReadValue, *, encoding: Encoding = Encoding.U16
    ) -> ModbusDevice:
        """Declare a read-only input-register value."""
        self._add_register(
            Table.INPUT_REGISTERS, RegisterPoint(name, address, read, None, encoding)
        )
        return self

    def _add_bit(self, table: Table, point: BitPoint) -> None:
        self._check_address(table, point.name, point.address, 1)
        self._bits[table][point.address] = point

    def _add_register(self, table: Table, point: RegisterPoint) -> None:
        self._check_address(table, point.name, point.address, point.encoding.words)
        for offset in range(point.encoding.words):
            self._words[table][point.address + offset] = (point, offset)
        self._plans.clear()

    def _check_address(self, table: Table, name: str, address: int, words: int) -> None:
        if not 0 <= address <= 0xFFFF - (words - 1):
            raise ConfigError(f"Modbus {self.name}: {table.value} {name!r} address {address}")
        used = self._bits[table].keys() if table in self._bits else self._words[table].keys()
        for a in range(address, address + words):
            if a in used:
                raise ConfigError(
                    f"Modbus {self.name}: {table.value} {name!r} overlaps address {a}"
                )

    # ---- executing PDUs ------------------------------------------------------------
    def execute(self, pdu: bytes) -> bytes:
        """The response PDU (possibly an exception response) to a request PDU."""
        function = pdu[0] if pdu else 0
        try:
            return self._execute(function, pdu)
        except ModbusError as refusal:
            log.debug("%s: function %d refused: %s", self.name, function, refusal)
            return bytes((function | 0x80, refusal.code))
        except Exception:
            log.exception("%s: function %d failed on %s", self.name, function, pdu.hex(" "))
            return bytes((function | 0x80, SERVER_DEVICE_FAILURE))

    def _execute(self, function: int, pdu: bytes) -> bytes:
        if function in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            table = (
                Table.HOLDING_REGISTERS
                if function == READ_HOLDING_REGISTERS
                else Table.INPUT_REGISTERS
            )
            address, count = _fields(pdu)
            return self._register_plan(function, table, address, count)()
        if function in (READ_COILS, READ_DISCRETE_INPUTS):
            table = Table.COILS if function == READ_COILS else Table.DISCRETE_INPUTS
            address, count = _fields(pdu)
            _check_count(count, MAX_READ_BITS)
            bits = self.read_bits(table, address, count)
            packed = _pack_bits(bits)
            return bytes((function, len(packed))) + packed
        if function == WRITE_SINGLE_COIL:
            address, value = _fields(pdu)
            if value not in (0xFF00, 0x0000):
                raise ModbusError(ILLEGAL_DATA_VALUE, f"coil value 0x{value:04X}")
            self.write_bits(address, [value == 0xFF00])
            return pdu
        if function == WRITE_SINGLE_REGISTER:
            address, value = _fields(pdu)
            self.write_registers(address, [value])
            return pdu
        if function == WRITE_MULTIPLE_COILS:
            address, count, data = _write_multiple(pdu, MAX_WRITE_BITS, bits=True)
            bits = [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]
            self.write_bits(address, bits)
            return pdu[:5]
        if function == WRITE_MULTIPLE_REGISTERS:
            address, count, data = _write_multiple(pdu, MAX_WRITE_REGISTERS, bits=False)
            self.write_registers(address, list(struct.unpack(f">{count}H", data)))
            return pdu[:5]
        raise ModbusError(ILLEGAL_FUNCTION, f"function {function} is not supported")

    def read_bits(self, table: Table, address: int, count: int) -> list[bool]:
        """Values of ``count`` coils or discrete inputs from ``address``."""
        points = self._bits[table]
        out = []
        for a in range(address, address + count):
            point = points.get(a)
            if point is None:
                raise ModbusError(ILLEGAL_DATA_ADDRESS, f"no {table.value} at {a}")
            out.append(bool(point.read()))
        return out

    def read_responder(self, pdu: bytes) -> Callable[[], bytes] | None:
        """A reusable responder for a valid register-read PDU (function 3 or 4), else None.

        Calling it reads the values live and returns the response PDU (an exception
        response if a value turns out unreadable), exactly as :meth:`execute` would; a
        session may keep it to answer the same request again without parsing it.
        """
        if len(pdu) != 5 or pdu[0] not in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            return None
        function = pdu[0]
        table = Table.HOLDING_REGISTERS if function == 3 else Table.INPUT_REGISTERS
        address, count = _fields(pdu)
        try:
            plan = self._register_plan(function, table, address, count)
        except ModbusError:
            return None

        def respond() -> bytes:
            try:
                return plan()
            except ModbusError as refusal:
                return bytes((function | 0x80, refusal.code))
            except Exception:
                log.exception("%s: function %d failed on %s", self.name, function, pdu.hex(" "))
                return bytes((function | 0x80, SERVER_DEVICE_FAILURE))

        return respond

    def _register_plan(
        self, function: int, table: Table, address: int, count: int
    ) -> Callable[[], bytes]:
        key = (function, address, count)
        plan = self._plans.get(key)
        if plan is None:
            _check_count(count, MAX_READ_REGISTERS)
            plan = self._plan_register_read(function, table, address, count)
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _plan_register_read(
        self, function: int, table: Table, address: int, count: int
    ) -> Callable[[], bytes]:
        """A reusable responder for one (function, address, count) read.

        Addresses are checked once (an error is raised, not cached); values are read live at
        every call. When every register is a plain ``U16`` point the responder packs the
        read functions' results directly and falls back to the general path only when a
        value is not an int in range (a float to round, or a bad value to report).
        """
        words = self._words[table]
        entries = []
        for a in range(address, address + count):
            entry = words.get(a)
            if entry is None:
                raise ModbusError(ILLEGAL_DATA_ADDRESS, f"no {table.value} at {a}")
            entries.append(entry)
        head = _REPLY_HEAD.pack(function, 2 * count)
        packer = struct.Struct(f">{count}H")

        def general() -> bytes:
            return head + packer.pack(*self.read_registers(table, address, count))

        if any(point.encoding is not Encoding.U16 for point, _ in entries):
            return general
        reads = tuple(point.read for point, _ in entries)

        def plain() -> bytes:
            try:
                return head + packer.pack(*[read() for read in reads])
            except struct.error:
                return general()

        return plain

    def read_registers(self, table: Table, address: int, count: int) -> list[int]:
        """Values of ``count`` registers from ``address`` (each point read once)."""
        words = self._words[table]
        out: list[int] = []
        cache: dict[str, tuple[int, ...]] | None = None
        for a in range(address, address + count):
            entry = words.get(a)
            if entry is None:
                raise ModbusError(ILLEGAL_DATA_ADDRESS, f"no {table.value} at {a}")
            point, offset = entry
            if point.encoding.words == 1:
                out.append(self._point_words(point)[0])
                continue
            if cache is None:
                cache = {}
            if point.name not in cache:
                cache[point.name] = self._point_words(point)
            out.append(cache[point.name][offset])
        return out

    def _point_words(self, point: RegisterPoint) -> tuple[int, ...]:
        value = point.read()
        try:
            return point.encoding.to_words(value)
        except (ValueError, OverflowError, struct.error) as exc:
            log.error("%s: %s = %r does not fit %s", self.name, point.name, value, point.encoding)
            raise ModbusError(SERVER_DEVICE_FAILURE, f"{point.name} unreadable") from exc

    def write_bits(self, address: int, values: list[bool]) -> None:
        """Write coils (all must exist and be writable, else nothing is written)."""
        points = self._bits[Table.COILS]
        targets = []
        for a in range(address, address + len(values)):
            point = points.get(a)
            if point is None or point.write is None:
                raise ModbusError(ILLEGAL_DATA_ADDRESS, f"no writable coil at {a}")
            targets.append(point)
        for point, value in zip(targets, values, strict=True):
            assert point.write is not None
            try:
                point.write(value)
            except ValueError as refusal:
                raise ModbusError(ILLEGAL_DATA_VALUE, f"{point.name}: {refusal}") from refusal

    def write_registers(self, address: int, values: list[int]) -> None:
        """Write holding registers; every written value must be covered whole."""
        words = self._words[Table.HOLDING_REGISTERS]
        end = address + len(values)
        plan: list[tuple[RegisterPoint, float]] = []
        a = address
        while a < end:
            entry = words.get(a)
            if entry is None or entry[0].write is None:
                raise ModbusError(ILLEGAL_DATA_ADDRESS, f"no writable holding register at {a}")
            point, offset = entry
            size = point.encoding.words
            if offset != 0 or a + size > end:
                raise ModbusError(
                    ILLEGAL_DATA_ADDRESS, f"{point.name} ({size} registers) written in part"
                )
            value = point.encoding.from_words(values[a - address : a - address + size])
            if not math.isfinite(value):
                raise ModbusError(ILLEGAL_DATA_VALUE, f"{point.name} = {value}")
            point.check(value)
            plan.append((point, value))
            a += size
        for point, value in plan:
            assert point.write is not None
            _apply(point.name, point.write, value)


def _apply(
    name: str, write: Callable[[float], None] | Callable[[bool], None], value: float
) -> None:
    try:
        write(value)  # type: ignore[arg-type]
    except ValueError as refusal:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"{name}: {refusal}") from refusal


_REPLY_HEAD: Final = struct.Struct(">BB")
_TWO_WORDS: Final = struct.Struct(">HH")
_MBAP_TAIL: Final = struct.Struct(">HB")
_READ_LENGTH: Final = b"\x00\x00\x00\x06"  # protocol id 0, length 6


def _fields(pdu: bytes) -> tuple[int, int]:
    """The two 16-bit fields after the function code (address and quantity or value)."""
    if len(pdu) != 5:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"PDU of {len(pdu)} bytes")
    address, value = _TWO_WORDS.unpack_from(pdu, 1)
    return address, value


def _check_count(count: int, maximum: int) -> None:
    if not 1 <= count <= maximum:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"quantity {count} not in 1…{maximum}")


def _write_multiple(pdu: bytes, maximum: int, *, bits: bool) -> tuple[int, int, bytes]:
    if len(pdu) < 6:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"PDU of {len(pdu)} bytes")
    address, count = struct.unpack(">HH", pdu[1:5])
    _check_count(count, maximum)
    expected = (count + 7) // 8 if bits else 2 * count
    if pdu[5] != expected or len(pdu) != 6 + expected:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"byte count {pdu[5]} for quantity {count}")
    return address, count, pdu[6:]


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


# ---- framing ---------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def rtu_frame(unit_id: int, pdu: bytes) -> bytes:
    """An RTU frame: unit id, PDU, CRC low byte first."""
    body = bytes((unit_id,)) + pdu
    return body + struct.pack("<H", crc16(body))


_INCOMPLETE: Final = -1
_INVALID: Final = 0
#: The longest request of an unsupported function the RTU framing looks for (assumed: the
#: standard functions it does not support, e.g. 7, 8, 11, 17 and 43/14, are 4 to 12 bytes;
#: a longer one goes unanswered, as a real slave's reply to junk would).
MAX_UNKNOWN_RTU_FRAME: Final = 64
#: Framing work (bytes checked) one ``feed`` may do before it leaves the rest for the next
#: call: the transport calls again after serving every other connection (issue 13: 64 KiB
#: of junk on one RTU-over-TCP connection stalled the whole emulator for 1.2 s).
FEED_WORK_BUDGET: Final = 16 * 1024


def _rtu_request_length(buf: bytes | bytearray, at: int) -> int:
    """Length of a CRC-valid request frame at ``at``; ``_INCOMPLETE`` or ``_INVALID``.

    Functions 15 and 16 must carry a quantity in range and the byte count it implies
    (Modbus Application Protocol V1.1b3, 6.11/6.12) before their CRC is computed.
    """
    available = len(buf) - at
    if available < 2:
        return _INCOMPLETE
    function = buf[at + 1]
    if function <= WRITE_SINGLE_REGISTER and function >= READ_COILS:
        length = 8
    elif function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        if available < 7:
            return _INCOMPLETE
        count = buf[at + 4] << 8 | buf[at + 5]
        if function == WRITE_MULTIPLE_COILS:
            fits = 1 <= count <= MAX_WRITE_BITS and buf[at + 6] == (count + 7) // 8
        else:
            fits = 1 <= count <= MAX_WRITE_REGISTERS and buf[at + 6] == 2 * count
        if not fits:
            return _INVALID
        length = 9 + buf[at + 6]
    elif function & 0x80 or buf[at] == 0:
        return _INVALID  # a reply is no request; a broadcast of an unknown function does nothing
    else:
        return _rtu_unknown_length(buf, at)
    if available < length:
        return _INCOMPLETE
    if crc16(memoryview(buf)[at : at + length - 2]) != buf[at + length - 2] | (
        buf[at + length - 1] << 8
    ):
        return _INVALID
    return length


def _rtu_unknown_length(buf: bytes | bytearray, at: int) -> int:
    """An unsupported function has no known length: the shortest CRC-valid span of at most
    :data:`MAX_UNKNOWN_RTU_FRAME` bytes wins.

    Trying many lengths makes a chance CRC match likely enough to matter, so a span that
    contains a complete valid frame of a supported function is not a frame (that one is).
    """
    end = min(len(buf), at + MAX_UNKNOWN_RTU_FRAME)
    crc = 0xFFFF
    for i in range(at, end):
        if i - at >= 2 and i + 1 < end and crc == buf[i] | (buf[i + 1] << 8):
            length = i + 2 - at
            inner = range(at + 1, at + length)
            if any(
                j + 1 < len(buf)
                and buf[j + 1] in SUPPORTED_FUNCTIONS
                and _rtu_request_length(buf, j) > 0
                for j in inner
            ):
                return _INVALID
            return length
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ buf[i]) & 0xFF]
    return _INVALID if end - at >= MAX_UNKNOWN_RTU_FRAME else _INCOMPLETE


def _mbap_request_length(buf: bytes | bytearray, at: int) -> int:
    """Length of a plausible MBAP request at ``at``; ``_INCOMPLETE`` or ``_INVALID``."""
    available = len(buf) - at
    if available < 8:
        return _INCOMPLETE if available < 4 or buf[at + 2 : at + 4] == b"\0\0" else _INVALID
    if buf[at + 2] or buf[at + 3]:
        return _INVALID
    length = buf[at + 4] << 8 | buf[at + 5]
    if not 2 <= length <= MAX_MBAP_LENGTH:
        return _INVALID
    function = buf[at + 7]
    if READ_COILS <= function <= WRITE_SINGLE_REGISTER and length != 6:
        return _INVALID
    if function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS) and length < 7:
        return _INVALID
    total = 6 + length
    return total if available >= total else _INCOMPLETE


#: Where an MBAP request may start: protocol id 0 two bytes on, or too near the end to tell.
_MBAP_STARTS: Final = re.compile(b"(?=..\\x00\\x00|.{0,3}\\Z)", re.DOTALL)


def _rtu_starts(units: Iterable[int]) -> re.Pattern[bytes]:
    """Where an RTU request for this line may start: a byte naming one of its units or 0.

    Frames for other units are skipped as junk rather than measured: their bytes would
    need a chance CRC match (1 in 65 536) to be mistaken for a frame of ours.
    """
    accepted = sorted({0, *units})
    return re.compile(b"[" + b"".join(re.escape(bytes((u,))) for u in accepted) + b"]")


class _Splitter:
    """Cuts a byte stream into frames, skipping bytes until a candidate frame is valid.

    Only bytes that ``starts`` matches can begin a frame (found by ``re``, at C speed). A
    candidate that is incomplete holds the bytes from it on, but a complete valid frame
    later in the buffer wins, so stray bytes cannot stall the line. One :meth:`feed` does
    at most :data:`FEED_WORK_BUDGET` bytes of checking; :attr:`backlog` then says that
    bytes are waiting for another call (``feed(b"")``), which the transport makes after
    serving its other connections.
    """

    def __init__(
        self,
        measure: Callable[[bytes | bytearray, int], int],
        starts: re.Pattern[bytes],
        miss_cost: int,
    ) -> None:
        self._measure = measure
        self._starts = starts
        self._miss_cost = miss_cost
        self._buffer = bytearray()
        self.backlog = False
        self.discarded = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame (or for the next call)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        if not buf and self._measure(data, 0) == len(data):
            return [data]  # the usual case: exactly one whole request
        buf += data
        frames: list[bytes] = []
        pos = 0  # bytes before pos are consumed or discarded
        hold = -1  # first incomplete candidate since pos
        scan = 0
        work = 0
        self.backlog = False
        while True:
            found = self._starts.search(buf, scan) if scan < len(buf) else None
            if found is None or found.start() >= len(buf):
                scan = len(buf)
                break
            at = found.start()
            length = self._measure(buf, at)
            work += self._miss_cost if length <= 0 else length
            if length > 0:
                frames.append(bytes(buf[at : at + length]))
                pos = scan = at + length
                hold = -1
            else:
                if length == _INCOMPLETE and hold < 0:
                    hold = at
                scan = at + 1
            if work >= FEED_WORK_BUDGET and scan < len(buf):
                self.backlog = True
                break
        cut = hold if hold >= 0 else scan  # a held candidate may complete later
        self.discarded += cut - pos
        del buf[:cut]
        return frames


class ModbusBus:
    """The devices behind one endpoint (a Modbus TCP port or an RS-485 line)."""

    def __init__(self, devices: Iterable[ModbusDevice], name: str = "") -> None:
        self.name = name
        self.devices: dict[int, ModbusDevice] = {}
        for device in devices:
            if device.unit_id in self.devices:
                raise ConfigError(f"Modbus bus {name!r}: unit id {device.unit_id} used twice")
            self.devices[device.unit_id] = device

    def add_alias(self, unit_id: int, device: ModbusDevice) -> None:
        """Let ``device`` answer ``unit_id`` as well (a unit that accepts several ids)."""
        if unit_id in self.devices:
            raise ConfigError(f"Modbus bus {self.name!r}: unit id {unit_id} used twice")
        if not 0 <= unit_id <= 247:
            raise ConfigError(f"Modbus bus {self.name!r}: unit id {unit_id} is not in 0…247")
        self.devices[unit_id] = device

    def tcp_session(self) -> ModbusTcpSession:
        """A session speaking Modbus TCP (MBAP framing)."""
        return ModbusTcpSession(self)

    def rtu_session(self) -> ModbusRtuSession:
        """A session speaking Modbus RTU (CRC framing) on a serial line or over TCP."""
        return ModbusRtuSession(self)


class ModbusTcpSession:
    """One Modbus TCP connection: MBAP frames in, MBAP replies out."""

    def __init__(self, bus: ModbusBus) -> None:
        self._devices = bus.devices
        self._splitter = _Splitter(_mbap_request_length, _MBAP_STARTS, 8)
        self._reads: dict[bytes, Callable[[], bytes]] = {}

    @property
    def backlog(self) -> bool:
        """Bytes wait for another ``feed`` (the framing work of one call is bounded)."""
        return self._splitter.backlog

    def feed(self, data: bytes) -> list[bytes]:
        # Fast path: a whole register read seen before on this connection (polling).
        if len(data) == 12 and data[2:6] == _READ_LENGTH and not self._splitter.pending:
            respond = self._reads.get(data[6:])
            if respond is not None:
                timing.note("read")
                return [data[:4] + respond()]
        return [frame[:4] + self._answer(frame) for frame in self._splitter.feed(data)]

    def _answer(self, frame: bytes) -> bytes:
        """The MBAP length, unit id and response PDU for one request frame."""
        unit = frame[6]
        device = self._devices.get(unit)
        pdu = frame[7:]
        timing.note(_kind(pdu))
        if device is None:
            response = bytes((pdu[0] | 0x80, GATEWAY_TARGET_FAILED))
            return _MBAP_TAIL.pack(len(response) + 1, unit) + response
        read = device.read_responder(pdu)
        if read is None:
            response = device.execute(pdu)
            return _MBAP_TAIL.pack(len(response) + 1, unit) + response

        def respond() -> bytes:
            response = read()
            return _MBAP_TAIL.pack(len(response) + 1, unit) + response

        if len(self._reads) >= MAX_PLANS:
            self._reads.clear()
        self._reads[frame[6:]] = respond
        return respond()


class ModbusRtuSession:
    """One RTU line (or RTU-over-TCP connection): CRC-checked frames, silent for others.

    Like the TCP session it keeps a responder for every register read it has answered,
    keyed by the whole request frame (CRC included, so the bytes were checked once), and
    answers a repeated poll without splitting or parsing it; values are read live.
    """

    def __init__(self, bus: ModbusBus) -> None:
        self._devices = bus.devices
        self._splitter = _Splitter(
            _rtu_request_length, _rtu_starts(self._devices), MAX_UNKNOWN_RTU_FRAME
        )
        self._reads: dict[bytes, Callable[[], bytes]] = {}

    @property
    def backlog(self) -> bool:
        """Bytes wait for another ``feed`` (the framing work of one call is bounded)."""
        return self._splitter.backlog

    def feed(self, data: bytes) -> list[bytes]:
        if len(data) == _RTU_READ_LENGTH and not self._splitter.pending:
            respond = self._reads.get(data)
            if respond is not None:
                timing.note("read")
                return [respond()]
        replies = []
        for frame in self._splitter.feed(data):
            unit = frame[0]
            pdu = frame[1:-2]
            if unit == 0:
                if pdu[0] in (5, 6, 15, 16):
                    timing.note("write")
                    for each in self._devices.values():
                        each.execute(pdu)
                continue
            device = self._devices.get(unit)
            if device is None:
                continue
            timing.note(_kind(pdu))
            read = device.read_responder(pdu)
            if read is None:
                replies.append(rtu_frame(unit, device.execute(pdu)))
                continue
            respond = functools.partial(_rtu_reply, unit, read)
            if len(self._reads) >= MAX_PLANS:
                self._reads.clear()
            self._reads[bytes(frame)] = respond
            replies.append(respond())
        return replies


_RTU_READ_LENGTH: Final = 8  # unit, function, address, quantity, CRC
#: Function codes that read (coils, discrete inputs, holding and input registers).
_READ_FUNCTIONS: Final = frozenset((1, 2, 3, 4))


def _kind(pdu: bytes) -> str:
    """The timing kind of a request PDU (:mod:`.timing`): ``read`` or ``write``."""
    return "read" if pdu and pdu[0] in _READ_FUNCTIONS else "write"


def _rtu_reply(unit: int, read: Callable[[], bytes]) -> bytes:
    return rtu_frame(unit, read())
