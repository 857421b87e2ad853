"""TDK-Lambda EZA-2500 binary frames: building, parsing, splitting and fixed-point scaling.

A pure codec (no I/O) shared by the EZA-2500 driver and the emulated converter.

Frame layout (every multi-byte number little-endian)::

    request  05 LEN AD1 AD2 CMD payload[LEN] CKS_lo CKS_hi
    reply    02 LEN AD1 AD2 CMD payload[LEN] CKS_lo CKS_hi
    NAK      02 02  AD1 AD2 CMD|0x80 ERCD_lo ERCD_hi CKS_lo CKS_hi

LEN counts payload bytes only (a read request has LEN 0 and its checksum follows CMD). The
checksum is the 16-bit sum of AD1, AD2, CMD and the payload (every byte except the start byte,
LEN and the checksum itself).

Confirmed against the public APIS sources, repository SonyCSL/apis-dcdc_batt_comm:

- ``drivers/eza2500/eza_util.py`` (``calc_check_sum``/``replace_check_sum``): the sum runs over
  ``data[2:-2]`` and is stored as two bytes, low byte first.
- ``drivers/eza2500/command*.py``: replies are unpacked as ``"<…H"`` with a trailing 16-bit
  checksum, so the reply checksum is **two bytes**, exactly like the request's (the reference's
  ``CKS`` is shorthand). A NAK has LEN 2 and CMD|0x80 followed by a 16-bit ``ercd``.
- ``drivers/eza2500/c*.yml``: the command words, the field order, their Q format, rating and
  APIS's accepted ranges (kept here as ``FieldSpec.minimum``/``maximum``); meters (0x09) and
  temperatures (0x0A) are signed (``h``), every other word unsigned (``H``). ``ic``, ``ts``
  and ``tp`` carry no scaling in APIS; ``v5s`` is Q10/1 and the fans Q0/1; the ratios
  ``ccr``/``ddr`` are Q14/48. Clearing alarms (0x12) writes two single *bytes* ``d0``, ``d1``.
- ``drivers/essx/essx_type_oes.py``: error codes 0xFFFF command not supported, 0xFFFE bad
  parameter, 0xFFFD valid but not accepted now, 0xFFFC busy, 0xFFFB internal communication
  error; APIS retries on 0xFFFD/0xFFFC and gives up on the others.
- ``drivers/dcdc_batt_comm.yml``: AD1 = 0 (converter side), AD2 = 16 (controller side).

Scaling: ``raw = round(value * 2**Q / rating)`` (APIS truncates with ``int()``; we round, so a
value survives a round trip within half an LSB). A value whose raw word does not fit its 16
(or 8) bits raises ``FieldRangeError`` naming the field.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from instruments.errors import ConfigError, MalformedReply

START_REQUEST = 0x05
START_REPLY = 0x02
NAK_FLAG = 0x80
HEADER_BYTES = 5
CHECKSUM_BYTES = 2
OVERHEAD_BYTES = HEADER_BYTES + CHECKSUM_BYTES
APIS_AD1 = 0
APIS_AD2 = 16
DEFAULT_MAX_PAYLOAD = 32


class FieldRangeError(ConfigError, ValueError):
    """A physical value cannot be represented in its field's raw word."""


class Mode(IntEnum):
    """Operation modes (command 0x00) used by APIS."""

    WAIT = 0x0000
    DISCHARGE = 0x0002
    VOLTAGE_REFERENCE = 0x0014
    CHARGE = 0x0041


class Command(IntEnum):
    """Command words."""

    MODE = 0x00
    STATUS = 0x01
    METERS = 0x09
    TEMPERATURES = 0x0A
    ALARMS = 0x12
    RATIOS = 0x16
    DEAD_BAND = 0x17
    BATTERY_CV = 0x18
    VOLTAGE_REFERENCE = 0x1A
    LIMITS = 0x1C
    BATTERY_CONFIG = 0x1D


class ErrorCode(IntEnum):
    """NAK error codes (``ercd``)."""

    INTERNAL_COMMUNICATION = 0xFFFB
    BUSY = 0xFFFC
    NOT_ACCEPTED = 0xFFFD
    BAD_PARAMETER = 0xFFFE
    UNSUPPORTED_COMMAND = 0xFFFF

    @property
    def retryable(self) -> bool:
        """True when the converter may accept the same request a little later."""
        return self in (ErrorCode.BUSY, ErrorCode.NOT_ACCEPTED)


def is_retryable(code: int) -> bool:
    """True for the NAK codes APIS retries (0xFFFD, 0xFFFC); unknown codes are fatal."""
    return code in (ErrorCode.BUSY, ErrorCode.NOT_ACCEPTED)


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: its fixed-point format and APIS's accepted physical range."""

    name: str
    q: int = 0
    rating: float = 1.0
    signed: bool = False
    size: int = 2
    minimum: float | None = None
    maximum: float | None = None

    @property
    def accepted(self) -> tuple[float, float]:
        """APIS's accepted range, (low, high); an unbounded side is infinite."""
        low = self.minimum if self.minimum is not None else float("-inf")
        high = self.maximum if self.maximum is not None else float("inf")
        return low, high

    @property
    def lsb(self) -> float:
        """Physical value of one raw count."""
        return self.rating / (1 << self.q)

    @property
    def is_integer(self) -> bool:
        """True for plain integer words (codes, bit fields, counts)."""
        return self.q == 0 and self.rating == 1.0

    @property
    def raw_min(self) -> int:
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (8 * self.size - 1)) - 1 if self.signed else (1 << (8 * self.size)) - 1

    @property
    def struct_code(self) -> str:
        code = "h" if self.size == 2 else "b"
        return code if self.signed else code.upper()

    def encode(self, value: float) -> int:
        """Raw word for a physical value; ``FieldRangeError`` if it does not fit."""
        scaled = value * (1 << self.q) / self.rating
        if scaled != scaled or scaled in (float("inf"), float("-inf")):
            raise FieldRangeError(f"EZA-2500 field {self.name}: {value!r} is not a finite number")
        raw = round(scaled)
        if not self.raw_min <= raw <= self.raw_max:
            raise FieldRangeError(
                f"EZA-2500 field {self.name}: {value!r} is outside the representable range "
                f"{self.raw_min * self.lsb:g} … {self.raw_max * self.lsb:g}"
            )
        return raw

    def decode(self, raw: int) -> float:
        """Physical value of a raw word (an ``int`` for plain integer fields)."""
        if not self.raw_min <= raw <= self.raw_max:
            raise FieldRangeError(
                f"EZA-2500 field {self.name}: raw {raw} is outside {self.raw_min} … {self.raw_max}"
            )
        if self.is_integer:
            return raw
        return raw * self.rating / (1 << self.q)

    def in_range(self, value: float) -> bool:
        """True when ``value`` lies inside APIS's accepted range (no range: always)."""
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in specs}


FIELDS: dict[str, FieldSpec] = _fields(
    FieldSpec("mode"),
    FieldSpec("cst"),
    FieldSpec("ext"),
    FieldSpec("cvb", 14, 48.0, minimum=32.0, maximum=62.0),
    FieldSpec("drb", 13, 1.0, minimum=0.0, maximum=3.999),
    FieldSpec("dvg", 14, 380.0, minimum=260.0, maximum=390.0),
    FieldSpec("drg", 13, 1.0, minimum=0.0, maximum=3.999),
    FieldSpec("pdz", 14, 380.0, minimum=0.0, maximum=57.0),
    FieldSpec("mdz", 14, 380.0, minimum=0.0, maximum=57.0),
    FieldSpec("cib", 13, 52.08, minimum=0.0, maximum=56.77),
    FieldSpec("dig", 13, 7.8125, minimum=0.0, maximum=8.5162),
    FieldSpec("ubv", 14, 48.0, minimum=32.0, maximum=68.0),
    FieldSpec("ugv", 14, 380.0, minimum=260.0, maximum=425.0),
    FieldSpec("obv", 14, 48.0, minimum=32.0, maximum=68.0),
    FieldSpec("ogv", 14, 380.0, minimum=260.0, maximum=425.0),
    FieldSpec("bcf"),
    FieldSpec("dlb", 14, 48.0, minimum=32.0, maximum=64.0),
    FieldSpec("cdb", 14, 48.0, minimum=0.0, maximum=12.0),
    FieldSpec("ddb", 14, 48.0, minimum=0.0, maximum=12.0),
    FieldSpec("ccr", 14, 48.0, minimum=0.0, maximum=12.0),
    FieldSpec("ddr", 14, 48.0, minimum=0.0, maximum=12.0),
    FieldSpec("alm1"),
    FieldSpec("alm2"),
    FieldSpec("alm3"),
    FieldSpec("d0", size=1),
    FieldSpec("d1", size=1),
    FieldSpec("vg", 14, 380.0, signed=True),
    FieldSpec("ig", 13, 7.8125, signed=True),
    FieldSpec("vb", 14, 48.0, signed=True),
    FieldSpec("ib", 13, 52.08, signed=True),
    FieldSpec("wg", 11, 2500.0, signed=True),
    FieldSpec("wb", 11, 2500.0, signed=True),
    FieldSpec("ic", signed=True),
    FieldSpec("tmp", 7, 1.0, signed=True),
    FieldSpec("ts", signed=True),
    FieldSpec("tp", signed=True),
    FieldSpec("v5s", 10, 1.0, signed=True),
    FieldSpec("fan1", signed=True),
    FieldSpec("fan2", signed=True),
    FieldSpec("fan3", signed=True),
    FieldSpec("fan4", signed=True),
    FieldSpec("fan5", signed=True),
)


class Layout:
    """A payload layout compiled once: its field names, one ``struct`` and each field's scale.

    Decoding a reply is then one ``unpack`` and one multiply-divide per field, with the same
    arithmetic as :meth:`FieldSpec.decode` (so the values are bit-identical). The raw words
    ``unpack`` returns always fit their field (the struct codes are the fields' widths).
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        specs = [field_spec(name) for name in names]
        self.names = names
        self.struct = struct.Struct("<" + "".join(spec.struct_code for spec in specs))
        self.size = self.struct.size
        self._scales = tuple(
            None if spec.is_integer else (spec.rating, float(1 << spec.q)) for spec in specs
        )
        self._saturation = tuple(
            (spec.raw_min, spec.raw_max, float(1 << spec.q), spec.rating) for spec in specs
        )

    def _check_size(self, payload: bytes, where: str) -> None:
        if len(payload) != self.size:
            raise MalformedReply(
                f"EZA-2500 {where}: payload has {len(payload)} bytes, expected {self.size}",
                command=where,
            )

    def unpack_raw(self, payload: bytes, *, where: str) -> dict[str, int]:
        """Raw words by field name (``MalformedReply`` if the size is wrong)."""
        self._check_size(payload, where)
        return dict(zip(self.names, self.struct.unpack(payload), strict=True))

    def decode(self, payload: bytes, *, where: str) -> dict[str, float]:
        """Physical values by field name (``MalformedReply`` if the size is wrong)."""
        self._check_size(payload, where)
        return {
            name: raw if scale is None else raw * scale[0] / scale[1]
            for name, raw, scale in zip(
                self.names, self.struct.unpack(payload), self._scales, strict=True
            )
        }

    def pack_raw(self, raws: Iterable[int]) -> bytes:
        """Payload bytes of raw words given in field order."""
        return self.struct.pack(*raws)

    def pack_saturated(self, values: Iterable[float]) -> bytes:
        """Payload of measured values in field order, each raw word clamped to its field's
        range as an ADC saturates; ``ValueError`` for a NaN."""
        raws = []
        for name, value, (low, high, scale, rating) in zip(
            self.names, values, self._saturation, strict=True
        ):
            if value != value:
                raise ValueError(f"EZA-2500 meter {name} is NaN")
            scaled = value * scale / rating
            raws.append(round(high if scaled > high else low if scaled < low else scaled))
        return self.struct.pack(*raws)


_LAYOUTS: dict[tuple[str, ...], Layout] = {}


def layout(names: tuple[str, ...]) -> Layout:
    """The compiled :class:`Layout` of ``names`` (built once per distinct tuple)."""
    compiled = _LAYOUTS.get(names)
    if compiled is None:
        compiled = _LAYOUTS[names] = Layout(names)
    return compiled


@dataclass(frozen=True)
class CommandSpec:
    """One command: the fields of its read reply and of its write (``None``: read-only)."""

    code: Command
    read_fields: tuple[str, ...]
    write_fields: tuple[str, ...] | None

    @functools.cached_property
    def read_layout(self) -> Layout:
        return layout(self.read_fields)

    @functools.cached_property
    def write_layout(self) -> Layout | None:
        return None if self.write_fields is None else layout(self.write_fields)

    @property
    def read_length(self) -> int:
        return self.read_layout.size

    @property
    def write_length(self) -> int | None:
        write = self.write_layout
        return None if write is None else write.size


def _rw(code: Command, *names: str) -> CommandSpec:
    return CommandSpec(code, names, names)


COMMANDS: dict[int, CommandSpec] = {
    spec.code: spec
    for spec in (
        _rw(Command.MODE, "mode"),
        CommandSpec(Command.STATUS, ("cst", "ext"), None),
        _rw(Command.BATTERY_CV, "cvb", "drb"),
        _rw(Command.VOLTAGE_REFERENCE, "dvg", "drg"),
        _rw(Command.DEAD_BAND, "pdz", "mdz"),
        _rw(Command.LIMITS, "cib", "dig", "ubv", "ugv", "obv", "ogv"),
        _rw(Command.BATTERY_CONFIG, "bcf", "cvb", "dlb", "cdb", "ddb"),
        _rw(Command.RATIOS, "ccr", "ddr"),
        CommandSpec(Command.ALARMS, ("alm1", "alm2", "alm3"), ("d0", "d1")),
        CommandSpec(Command.METERS, ("vg", "ig", "vb", "ib", "wg", "wb", "ic", "tmp"), None),
        CommandSpec(
            Command.TEMPERATURES,
            ("ts", "tp", "v5s", "fan1", "fan2", "fan3", "fan4", "fan5"),
            None,
        ),
    )
}


def field_spec(name: str) -> FieldSpec:
    """The spec of a field by name; ``ConfigError`` naming it if unknown."""
    try:
        return FIELDS[name]
    except KeyError:
        raise ConfigError(f"EZA-2500: unknown field {name!r}") from None


def command_spec(cmd: int) -> CommandSpec:
    """The spec of a command word (NAK flag ignored); ``ConfigError`` if unknown."""
    try:
        return COMMANDS[cmd & ~NAK_FLAG]
    except KeyError:
        raise ConfigError(f"EZA-2500: unknown command 0x{cmd:02X}") from None


def encode_field(name: str, value: float) -> int:
    """Raw word of ``value`` for field ``name``."""
    return field_spec(name).encode(value)


def decode_field(name: str, raw: int) -> float:
    """Physical value of raw word ``raw`` for field ``name``."""
    return field_spec(name).decode(raw)


def pack_fields(names: tuple[str, ...], values: Mapping[str, float], *, where: str) -> bytes:
    """Payload bytes for ``names`` in order; every name must be present in ``values``."""
    missing = [name for name in names if name not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        raise ConfigError(
            f"EZA-2500 {where}: fields must be exactly {', '.join(names)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(extra)}" if extra else "")
        )
    return layout(names).pack_raw(FIELDS[name].encode(values[name]) for name in names)


def unpack_raw(names: tuple[str, ...], payload: bytes, *, where: str) -> dict[str, int]:
    """Raw words of a payload laid out as ``names``."""
    return layout(names).unpack_raw(payload, where=where)


def unpack_fields(names: tuple[str, ...], payload: bytes, *, where: str) -> dict[str, float]:
    """Physical values of a payload laid out as ``names``."""
    return layout(names).decode(payload, where=where)


def encode_payload(cmd: int, values: Mapping[str, float], *, write: bool = True) -> bytes:
    """Payload of command ``cmd`` from named physical values.

    ``write=True`` lays out the write request (and its echo); ``write=False`` the read reply.
    """
    spec = command_spec(cmd)
    names = spec.write_fields if write else spec.read_fields
    if names is None:
        raise ConfigError(f"EZA-2500 command 0x{spec.code:02X} ({spec.code.name}) is read-only")
    return pack_fields(names, values, where=f"command 0x{spec.code:02X} ({spec.code.name})")


def decode_payload(cmd: int, payload: bytes, *, write: bool = False) -> dict[str, float]:
    """Named physical values of a payload of command ``cmd``.

    ``write=False`` reads the layout of a read reply, ``write=True`` that of a write request
    or its echo (they differ only for 0x12, alarms).
    """
    spec = command_spec(cmd)
    names = spec.write_fields if write else spec.read_fields
    where = f"command 0x{spec.code:02X} ({spec.code.name})"
    if names is None:
        raise MalformedReply(f"EZA-2500 {where} has no write layout", command=where)
    return unpack_fields(names, payload, where=where)


def checksum(body: bytes) -> int:
    """16-bit sum of ``body`` (AD1, AD2, CMD and the payload)."""
    return sum(body) & 0xFFFF


@dataclass(frozen=True)
class Frame:
    """One request or reply frame."""

    start: int
    ad1: int
    ad2: int
    cmd: int
    payload: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.start == START_REQUEST

    @property
    def is_nak(self) -> bool:
        return self.start == START_REPLY and bool(self.cmd & NAK_FLAG)

    @property
    def command(self) -> int:
        """The command word without the NAK flag."""
        return self.cmd & ~NAK_FLAG

    @property
    def error_code(self) -> int:
        """A NAK's 16-bit error code."""
        if not self.is_nak or len(self.payload) != 2:
            raise MalformedReply(
                f"EZA-2500 frame for command 0x{self.command:02X} is not a NAK",
                command=f"0x{self.command:02X}",
            )
        code: int = struct.unpack("<H", self.payload)[0]
        return code

    def encode(self) -> bytes:
        """The frame's bytes on the wire."""
        return encode_frame(self.start, self.ad1, self.ad2, self.cmd, self.payload)


_WORD: Final = struct.Struct("<H")


def encode_frame(start: int, ad1: int, ad2: int, cmd: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame (request or reply), checksum included."""
    if len(payload) > 0xFF:
        raise ConfigError(f"EZA-2500 payload of {len(payload)} bytes exceeds 255")
    body = bytes((ad1, ad2, cmd)) + payload
    return bytes((start, len(payload))) + body + _WORD.pack(sum(body) & 0xFFFF)


def build_request(
    cmd: int, payload: bytes = b"", *, ad1: int = APIS_AD1, ad2: int = APIS_AD2
) -> bytes:
    """A request frame; an empty payload makes it a read."""
    return encode_frame(START_REQUEST, ad1, ad2, cmd, payload)


def build_read(cmd: int, *, ad1: int = APIS_AD1, ad2: int = APIS_AD2) -> bytes:
    """A read request (LEN 0)."""
    return build_request(cmd, ad1=ad1, ad2=ad2)


def build_write(
    cmd: int, values: Mapping[str, float], *, ad1: int = APIS_AD1, ad2: int = APIS_AD2
) -> bytes:
    """A write request from named physical values."""
    return build_request(cmd, encode_payload(cmd, values), ad1=ad1, ad2=ad2)


def build_reply(
    cmd: int, payload: bytes = b"", *, ad1: int = APIS_AD1, ad2: int = APIS_AD2
) -> bytes:
    """An ACK reply frame."""
    return encode_frame(START_REPLY, ad1, ad2, cmd, payload)


def build_nak(cmd: int, code: int, *, ad1: int = APIS_AD1, ad2: int = APIS_AD2) -> bytes:
    """A NAK reply: CMD|0x80 and the 16-bit error code."""
    return encode_frame(START_REPLY, ad1, ad2, cmd | NAK_FLAG, _WORD.pack(code))


def frame_length(len_byte: int) -> int:
    """Total frame size for a LEN byte (header, payload, checksum)."""
    return OVERHEAD_BYTES + len_byte


def parse_frame(data: bytes) -> Frame:
    """Parse exactly one complete frame; ``MalformedReply`` on any inconsistency."""
    if len(data) < OVERHEAD_BYTES:
        raise MalformedReply(f"EZA-2500 frame too short ({len(data)} bytes): {data.hex(' ')}")
    start, length = data[0], data[1]
    if start not in (START_REQUEST, START_REPLY):
        raise MalformedReply(f"EZA-2500 frame has bad start byte 0x{start:02X}")
    if len(data) != frame_length(length):
        raise MalformedReply(
            f"EZA-2500 frame is {len(data)} bytes but LEN {length} means {frame_length(length)}"
        )
    body = data[2:-CHECKSUM_BYTES]
    (received,) = struct.unpack("<H", data[-CHECKSUM_BYTES:])
    if received != checksum(body):
        raise MalformedReply(
            f"EZA-2500 frame checksum 0x{received:04X} != 0x{checksum(body):04X}: {data.hex(' ')}",
            command=f"0x{data[4]:02X}",
        )
    return Frame(start, body[0], body[1], body[2], bytes(body[3:]))


class FrameSplitter:
    """Cuts a byte stream into checksum-valid frames that begin with ``start``.

    Bytes before a start byte are dropped; a candidate whose LEN exceeds ``max_payload`` or
    whose checksum fails is dropped one byte at a time so that a real frame hidden behind
    garbage is still found. While a candidate is incomplete, a complete valid frame later in
    the buffer wins over it (a stray start byte must not stall the line).
    """

    def __init__(self, start: int, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if start not in (START_REQUEST, START_REPLY):
            raise ConfigError(f"EZA-2500 splitter: bad start byte 0x{start:02X}")
        self._start = start
        self._max_payload = max_payload
        self._buffer = bytearray()
        self.discarded = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def clear(self) -> None:
        """Forget any partial frame."""
        self.discarded += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete valid frame, in order."""
        if not self._buffer and len(data) >= OVERHEAD_BYTES and data[0] == self._start:
            # The usual case: exactly one whole, valid frame arrived on an empty buffer.
            length = data[1]
            if length <= self._max_payload and len(data) == OVERHEAD_BYTES + length:
                body = data[2:-CHECKSUM_BYTES]
                if data[-2] | (data[-1] << 8) == sum(body) & 0xFFFF:
                    return [Frame(self._start, body[0], body[1], body[2], bytes(body[3:]))]
        self._buffer += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _drop(self, count: int) -> None:
        self.discarded += count
        del self._buffer[:count]

    def _candidate(self, at: int) -> Frame | bool | None:
        """A valid frame at ``at``, ``False`` if impossible there, ``None`` if incomplete."""
        buf = self._buffer
        if len(buf) < at + 2:
            return None
        length = buf[at + 1]
        if length > self._max_payload:
            return False
        end = at + frame_length(length)
        if len(buf) < end:
            return None
        body = bytes(buf[at + 2 : end - CHECKSUM_BYTES])
        if buf[end - 2] | (buf[end - 1] << 8) != checksum(body):
            return False
        return Frame(self._start, body[0], body[1], body[2], body[3:])

    def _next(self) -> Frame | None:
        while True:
            at = self._buffer.find(self._start)
            if at < 0:
                self._drop(len(self._buffer))
                return None
            if at:
                self._drop(at)
            found = self._candidate(0)
            if found is False:
                self._drop(1)
                continue
            if isinstance(found, Frame):
                del self._buffer[: frame_length(len(found.payload))]
                return found
            later = self._later_frame()
            if later is None:
                return None
            self._drop(later)

    def _later_frame(self) -> int | None:
        """Offset of a complete valid frame after an incomplete candidate at 0, if any."""
        at = self._buffer.find(self._start, 1)
        while at > 0:
            if isinstance(self._candidate(at), Frame):
                return at
            at = self._buffer.find(self._start, at + 1)
        return None
