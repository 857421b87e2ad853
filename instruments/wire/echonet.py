"""ECHONET Lite frames and the EV charger/discharger (class 0x027E) property table.

A pure codec (no I/O) shared by the ``echonet_v2h`` driver and the emulated V2H unit.

Frame (format 1, every number big-endian)::

    EHD1 0x10 | EHD2 0x81 | TID (2) | SEOJ (3) | DEOJ (3) | ESV | OPC | OPC x (EPC, PDC, EDT[PDC])

SetGet (0x6E) and its replies carry two lists: ``OPCSet`` and its properties, then ``OPCGet``
and its properties. Sources: ECHONET Lite Specification Part II (*ECHONET Lite Communications
Middleware*) §3.2 (frame format, ESV codes, SNA replies carry the refused properties, a
refused Get property comes back with PDC 0), the Machine Readable Appendix for class 0x027E,
and, independently, ``pychonet`` (``lib/const.py`` ESV codes, ``lib/functions.py``
``buildEchonetMsg``/``decodeEchonetMsg``, ``ElectricVehicleChargerDischarger.py`` property
sizes and signs). Part II §3.2.5: a node that receives a frame with a wrong EHD1/EHD2 or one
it cannot parse discards it silently.

Scaling: a table entry gives its raw type and the physical size of one LSB (``0xD4`` current
int16 0.1 A). ``encode_value`` refuses a value outside the entry's range with
``FieldRangeError`` naming the property; ``decode_value`` refuses a wrong PDC.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final, Literal

from instruments.errors import ConfigError

EHD1: Final = 0x10
EHD2_FORMAT1: Final = 0x81
#: UDP port of ECHONET Lite (Part II §3.1.3); the emulator may bind another (tests).
ECHONET_PORT: Final = 3610
HEADER_BYTES: Final = 12
#: Largest UDP payload accepted (a node need not handle more: Part II §3.1.3 keeps frames
#: inside one datagram; assumed bound for the codec).
MAX_FRAME_BYTES: Final = 1500


class FrameError(ValueError):
    """Bytes that are not an ECHONET Lite format-1 frame (a receiver discards them)."""


class FieldRangeError(ConfigError, ValueError):
    """A value that the property cannot carry (out of range, wrong type or size)."""


class Esv(IntEnum):
    """Service codes (Part II §3.2.5, pychonet ``lib/const.py``)."""

    SETI = 0x60
    SETC = 0x61
    GET = 0x62
    INF_REQ = 0x63
    SETGET = 0x6E
    SET_RES = 0x71
    GET_RES = 0x72
    INF = 0x73
    INFC = 0x74
    INFC_RES = 0x7A
    SETGET_RES = 0x7E
    SETI_SNA = 0x50
    SETC_SNA = 0x51
    GET_SNA = 0x52
    INF_SNA = 0x53
    SETGET_SNA = 0x5E


#: Requests a device answers, and the reply it sends when every property was accepted.
RESPONSE: Final[Mapping[Esv, Esv]] = MappingProxyType(
    {Esv.SETC: Esv.SET_RES, Esv.GET: Esv.GET_RES, Esv.INF_REQ: Esv.INF, Esv.SETGET: Esv.SETGET_RES}
)
#: The "service not available" reply of each request (SetI's is sent although SetI
#: otherwise gets no reply).
SNA: Final[Mapping[Esv, Esv]] = MappingProxyType(
    {
        Esv.SETI: Esv.SETI_SNA,
        Esv.SETC: Esv.SETC_SNA,
        Esv.GET: Esv.GET_SNA,
        Esv.INF_REQ: Esv.INF_SNA,
        Esv.SETGET: Esv.SETGET_SNA,
    }
)
TWO_LISTS: Final = frozenset({Esv.SETGET, Esv.SETGET_RES, Esv.SETGET_SNA})


@dataclass(frozen=True, order=True)
class Eoj:
    """An ECHONET object: class group, class and instance (``027E01``)."""

    group: int
    cls: int
    instance: int

    def __post_init__(self) -> None:
        for name in ("group", "cls", "instance"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise FieldRangeError(f"EOJ {name} {value!r} is not a byte")

    @classmethod
    def parse(cls, text: str) -> Eoj:
        """``"027E01"`` → ``Eoj(0x02, 0x7E, 0x01)``; ``FieldRangeError`` otherwise."""
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise FieldRangeError(f"EOJ {text!r} must be six hex digits, e.g. 027E01")
        raw = bytes.fromhex(text)
        return cls(raw[0], raw[1], raw[2])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Eoj:
        return cls(raw[0], raw[1], raw[2])

    def to_bytes(self) -> bytes:
        return bytes((self.group, self.cls, self.instance))

    @property
    def class_code(self) -> int:
        """Group and class as one number (``0x027E``)."""
        return self.group << 8 | self.cls

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()


#: A controller (Part II: management/control group 0x05, controller class 0xFF).
CONTROLLER: Final = Eoj(0x05, 0xFF, 0x01)
#: The node profile (0x0EF0, instance 01: general node).
NODE_PROFILE: Final = Eoj(0x0E, 0xF0, 0x01)
EV_CHARGER_DISCHARGER: Final = 0x027E


@dataclass(frozen=True)
class Property:
    """One (EPC, EDT) pair; PDC is ``len(edt)`` (0 in a Get request)."""

    epc: int
    edt: bytes = b""

    @property
    def pdc(self) -> int:
        return len(self.edt)


@dataclass(frozen=True)
class Frame:
    """One format-1 frame. ``gets`` is SetGet's second list (empty otherwise)."""

    tid: int
    seoj: Eoj
    deoj: Eoj
    esv: int
    props: tuple[Property, ...] = ()
    gets: tuple[Property, ...] = ()

    def prop(self, epc: int) -> Property | None:
        return next((p for p in self.props if p.epc == epc), None)


def _encode_list(props: Iterable[Property]) -> bytes:
    items = tuple(props)
    if len(items) > 0xFF:
        raise FieldRangeError(f"{len(items)} properties do not fit one OPC byte")
    out = bytearray((len(items),))
    for p in items:
        if not 0 <= p.epc <= 0xFF or len(p.edt) > 0xFF:
            raise FieldRangeError(f"property EPC {p.epc!r} with {len(p.edt)} bytes of EDT")
        out += bytes((p.epc, len(p.edt))) + p.edt
    return bytes(out)


def encode(frame: Frame) -> bytes:
    """The bytes of ``frame`` (``FieldRangeError`` if a field does not fit)."""
    if not 0 <= frame.tid <= 0xFFFF:
        raise FieldRangeError(f"TID {frame.tid!r} is not 16 bits")
    if not 0 <= frame.esv <= 0xFF:
        raise FieldRangeError(f"ESV {frame.esv!r} is not a byte")
    head = bytes((EHD1, EHD2_FORMAT1)) + struct.pack(">H", frame.tid)
    head += frame.seoj.to_bytes() + frame.deoj.to_bytes() + bytes((frame.esv,))
    body = _encode_list(frame.props)
    if frame.esv in TWO_LISTS:
        body += _encode_list(frame.gets)
    elif frame.gets:
        raise FieldRangeError(f"ESV 0x{frame.esv:02X} carries one property list, not two")
    return head + body


def _decode_list(data: bytes, at: int) -> tuple[tuple[Property, ...], int]:
    if at >= len(data):
        raise FrameError(f"frame ends before its OPC at byte {at}")
    count = data[at]
    at += 1
    props = []
    for k in range(count):
        if at + 2 > len(data):
            raise FrameError(f"frame ends inside property {k + 1} of {count}")
        epc, pdc = data[at], data[at + 1]
        at += 2
        if at + pdc > len(data):
            raise FrameError(
                f"property 0x{epc:02X} says PDC {pdc} but only {len(data) - at} bytes remain"
            )
        props.append(Property(epc, bytes(data[at : at + pdc])))
        at += pdc
    return tuple(props), at


def decode(data: bytes) -> Frame:
    """Parse one datagram; ``FrameError`` names what is wrong (trailing bytes included)."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"{len(data)} bytes exceed {MAX_FRAME_BYTES}")
    if len(data) < HEADER_BYTES:
        raise FrameError(f"{len(data)} bytes are shorter than the {HEADER_BYTES}-byte header")
    if data[0] != EHD1 or data[1] != EHD2_FORMAT1:
        raise FrameError(f"EHD {data[0]:02X} {data[1]:02X} is not 10 81 (format 1)")
    tid = struct.unpack_from(">H", data, 2)[0]
    seoj = Eoj.from_bytes(data[4:7])
    deoj = Eoj.from_bytes(data[7:10])
    esv = data[10]
    props, at = _decode_list(data, 11)
    gets: tuple[Property, ...] = ()
    if esv in TWO_LISTS:
        gets, at = _decode_list(data, at)
    if at != len(data):
        raise FrameError(f"{len(data) - at} bytes follow the last property")
    return Frame(tid, seoj, deoj, esv, props, gets)


# ---- the 0x027E property table ------------------------------------------------------

RawKind = Literal["u8", "u16", "u32", "s16", "s32", "pair16", "ascii", "bytes"]
Access = Literal["get", "set", "getset"]
_STRUCT = {"u8": ">B", "u16": ">H", "u32": ">I", "s16": ">h", "s32": ">i"}
_SIZE = {"u8": 1, "u16": 2, "u32": 4, "s16": 2, "s32": 4, "pair16": 4}
PhysicalValue = float | int | tuple[float, float] | str | bytes


@dataclass(frozen=True)
class PropertySpec:
    """One property of the table: raw type, scaling, access, range and announcement.

    ``lsb`` is the physical size of one raw step (0.1 A); ``values`` lists the allowed codes
    of an enumeration; ``minimum``/``maximum`` bound the raw number; ``size`` is the EDT
    length of ``ascii``/``bytes`` (0: any length up to ``maximum``). ``announce``: the
    device sends INF when it changes (Appendix, "status change announcement" column).
    ``release`` says where a fact is release-specific.
    """

    epc: int
    name: str
    kind: RawKind
    access: Access
    unit: str = ""
    lsb: float = 1.0
    values: Mapping[int, str] | None = None
    minimum: int | None = None
    maximum: int | None = None
    size: int = 0
    announce: bool = False
    release: str = ""

    @property
    def pdc(self) -> int | None:
        """The EDT length the property must have (None: variable)."""
        if self.kind in _SIZE:
            return _SIZE[self.kind]
        return self.size or None

    @property
    def readable(self) -> bool:
        return self.access in ("get", "getset")

    @property
    def writable(self) -> bool:
        return self.access in ("set", "getset")

    def where(self) -> str:
        return f"EPC 0x{self.epc:02X} ({self.name})"

    def _check_raw(self, raw: int) -> int:
        kind = self.kind if self.kind != "pair16" else "u16"
        low, high = _raw_bounds(kind)
        low = low if self.minimum is None else max(low, self.minimum)
        high = high if self.maximum is None else min(high, self.maximum)
        if self.values is not None and raw not in self.values:
            allowed = ", ".join(f"0x{v:02X} {n}" for v, n in self.values.items())
            raise FieldRangeError(f"{self.where()}: 0x{raw:02X} is not one of {allowed}")
        if not low <= raw <= high:
            raise FieldRangeError(
                f"{self.where()}: {raw * self.lsb:g} {self.unit} is outside "
                f"{low * self.lsb:g}..{high * self.lsb:g} {self.unit}".rstrip()
            )
        return raw

    def _to_raw(self, value: float) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldRangeError(f"{self.where()}: {value!r} is not a number")
        if not math.isfinite(value):
            raise FieldRangeError(f"{self.where()}: {value!r} is not finite")
        return self._check_raw(round(value / self.lsb))

    def encode_value(self, value: PhysicalValue) -> bytes:
        """The EDT of a physical value (``FieldRangeError`` before anything is sent)."""
        if self.kind == "ascii":
            if not isinstance(value, str) or not value.isascii():
                raise FieldRangeError(f"{self.where()}: {value!r} is not ASCII text")
            raw = value.encode("ascii")
            if self.size:
                raw = raw.ljust(self.size, b" ")
            return self._check_length(raw)
        if self.kind == "bytes":
            if not isinstance(value, bytes):
                raise FieldRangeError(f"{self.where()}: {value!r} is not bytes")
            return self._check_length(value)
        if self.kind == "pair16":
            if not isinstance(value, tuple) or len(value) != 2:
                raise FieldRangeError(f"{self.where()}: {value!r} is not a (minimum, maximum)")
            low, high = (self._to_raw(v) for v in value)
            return struct.pack(">HH", low, high)
        if isinstance(value, tuple | str | bytes):
            raise FieldRangeError(f"{self.where()}: {value!r} is not a number")
        return struct.pack(_STRUCT[self.kind], self._to_raw(value))

    def _check_length(self, raw: bytes) -> bytes:
        limit = self.size or (self.maximum if self.maximum is not None else 0xFF)
        if (self.size and len(raw) != self.size) or len(raw) > limit:
            raise FieldRangeError(f"{self.where()}: {len(raw)} bytes, expected {limit}")
        return raw

    def decode_value(self, edt: bytes) -> PhysicalValue:
        """The physical value of an EDT; ``FieldRangeError`` on a wrong PDC or value."""
        expected = self.pdc
        if expected is not None and len(edt) != expected:
            raise FieldRangeError(f"{self.where()}: PDC {len(edt)}, expected {expected}")
        if self.kind == "ascii":
            return edt.decode("ascii", errors="replace").rstrip(" \x00")
        if self.kind == "bytes":
            return bytes(edt)
        if self.kind == "pair16":
            low, high = struct.unpack(">HH", edt)
            return (self._check_raw(low) * self.lsb, self._check_raw(high) * self.lsb)
        raw = self._check_raw(struct.unpack(_STRUCT[self.kind], edt)[0])
        if self.values is not None or self.lsb == 1.0:
            return raw
        return raw * self.lsb


def _raw_bounds(kind: str) -> tuple[int, int]:
    """Raw range of a numeric kind, without the codes the Appendix reserves for "overflow"
    and "underflow" at the top of each type (0xFE/0xFF, 0xFFFE/0xFFFF, ...)."""
    if kind == "u8":
        return 0, 0xFD
    if kind == "u16":
        return 0, 0xFFFD
    if kind == "u32":
        return 0, 0xFFFFFFFD
    if kind == "s16":
        return -0x7FFF, 0x7FFD
    return -0x7FFFFFFF, 0x7FFFFFFD


class OperationStatus(IntEnum):
    """EPC 0x80 (every device object, Appendix "Device object super class")."""

    ON = 0x30
    OFF = 0x31


class Connection(IntEnum):
    """EPC 0xC7: vehicle connection and chargeable/dischargeable status."""

    NOT_CONNECTED = 0x30
    CONNECTED = 0x40
    CHARGEABLE = 0x41
    DISCHARGEABLE = 0x42
    BOTH = 0x43

    @property
    def may_charge(self) -> bool:
        return self in (Connection.CHARGEABLE, Connection.BOTH)

    @property
    def may_discharge(self) -> bool:
        return self in (Connection.DISCHARGEABLE, Connection.BOTH)


class OperationMode(IntEnum):
    """EPC 0xDA operation mode setting.

    0x42 charge, 0x43 discharge, 0x44 standby and 0x40 other are in every release (pychonet
    and the Appendix agree); 0x41 rapid charge and 0x45 test are earlier releases' (pychonet
    lists them), 0x47 idle is a later release's (the Appendix; pychonet has it only under the
    actual-mode property 0xE1). The emulated unit accepts 0x42, 0x43, 0x44 and 0x47.
    """

    OTHER = 0x40
    RAPID_CHARGE = 0x41
    CHARGE = 0x42
    DISCHARGE = 0x43
    STANDBY = 0x44
    TEST = 0x45
    IDLE = 0x47


class Method(IntEnum):
    """EPC 0xDC / 0xDD charging / discharging method (pychonet's table)."""

    OTHER = 0x00
    MAXIMUM_POWER = 0x01
    SURPLUS_OR_LOAD_FOLLOWING = 0x02
    DESIGNATED_POWER = 0x03
    DESIGNATED_CURRENT = 0x04


#: EPC 0xCD: the value that asks the device to confirm the vehicle connection.
CONNECTION_CHECK: Final = 0x10

_ON_OFF = {0x30: "on", 0x31: "off"}
_METHODS = {m.value: m.name.lower() for m in Method}

SUPER_CLASS: tuple[PropertySpec, ...] = (
    PropertySpec(0x80, "operation status", "u8", "getset", values=_ON_OFF, announce=True),
    PropertySpec(0x81, "installation location", "u8", "getset", announce=True),
    PropertySpec(0x82, "standard version", "bytes", "get", size=4),
    PropertySpec(0x83, "identification number", "bytes", "get", size=17),
    PropertySpec(
        0x88, "fault status", "u8", "get", values={0x41: "fault", 0x42: "no fault"}, announce=True
    ),
    PropertySpec(0x8A, "maker code", "bytes", "get", size=3),
    PropertySpec(0x8C, "product code", "ascii", "get", size=12),
    PropertySpec(0x8D, "serial number", "ascii", "get", size=12),
    PropertySpec(0x9D, "status change announcement map", "bytes", "get", maximum=17),
    PropertySpec(0x9E, "set property map", "bytes", "get", maximum=17),
    PropertySpec(0x9F, "get property map", "bytes", "get", maximum=17),
)
"""Device super class (Appendix; pychonet ``EPC_SUPER_FUNCTIONS``): maker code is 3 bytes,
product code and serial 12 ASCII bytes, the identification number 17 bytes."""

EV_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(0xC0, "dischargeable capacity", "u32", "get", "Wh", maximum=999_999_999),
    PropertySpec(0xC2, "remaining dischargeable capacity", "u32", "get", "Wh", maximum=999_999_999),
    PropertySpec(0xC4, "remaining dischargeable capacity", "u8", "get", "%", maximum=100),
    PropertySpec(0xC5, "rated charge power", "u32", "get", "W", maximum=999_999_999),
    PropertySpec(0xC6, "rated discharge power", "u32", "get", "W", maximum=999_999_999),
    PropertySpec(
        0xC7,
        "vehicle connection status",
        "u8",
        "get",
        values={c.value: c.name.lower() for c in Connection},
        announce=True,
    ),
    PropertySpec(0xCA, "min/max charge current", "pair16", "get", "A", lsb=0.1),
    PropertySpec(0xCB, "min/max discharge current", "pair16", "get", "A", lsb=0.1),
    PropertySpec(0xCD, "vehicle connection check", "u8", "set", values={0x10: "check"}),
    PropertySpec(0xD3, "instantaneous power", "s32", "get", "W"),
    PropertySpec(0xD4, "instantaneous current", "s16", "get", "A", lsb=0.1),
    PropertySpec(0xD5, "instantaneous voltage", "s16", "get", "V"),
    PropertySpec(
        0xD6, "cumulative discharged energy", "u32", "get", "kWh", lsb=0.001, maximum=999_999_999
    ),
    PropertySpec(
        0xD8, "cumulative charged energy", "u32", "get", "kWh", lsb=0.001, maximum=999_999_999
    ),
    PropertySpec(
        0xDA,
        "operation mode",
        "u8",
        "getset",
        values={m.value: m.name.lower() for m in OperationMode},
        announce=True,
        release="0x41/0x45 early releases, 0x47 later releases (see OperationMode)",
    ),
    PropertySpec(0xDC, "charging method", "u8", "getset", values=_METHODS),
    PropertySpec(0xDD, "discharging method", "u8", "getset", values=_METHODS),
    PropertySpec(0xE2, "remaining capacity", "u32", "get", "Wh", maximum=999_999_999),
    PropertySpec(0xE4, "remaining capacity", "u8", "get", "%", maximum=100),
    PropertySpec(0xE7, "charging amount", "u32", "getset", "Wh", maximum=999_999_999),
    PropertySpec(0xEA, "discharging amount", "u32", "getset", "Wh", maximum=999_999_999),
    PropertySpec(0xED, "charging current", "u16", "getset", "A", lsb=0.1, maximum=0x7FFD),
    PropertySpec(0xEE, "discharging current", "u16", "getset", "A", lsb=0.1, maximum=0x7FFD),
)
"""Class 0x027E (Appendix "EV charger/discharger class"; sizes and signs as in pychonet's
``ElectricVehicleChargerDischarger.py``: 0xD3 signed 32-bit W, 0xD4 signed 16-bit 0.1 A,
0xCA/0xCB two unsigned 16-bit 0.1 A values — pychonet reads these as one 32-bit number).
0xD5 is signed 16-bit V in pychonet; the sign is kept although a voltage is positive."""

NODE_PROFILE_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(0x80, "operation status", "u8", "get", values=_ON_OFF),
    PropertySpec(0x82, "version information", "bytes", "get", size=4),
    PropertySpec(0x83, "identification number", "bytes", "get", size=17),
    PropertySpec(0x8A, "maker code", "bytes", "get", size=3),
    PropertySpec(0x8C, "product code", "ascii", "get", size=12),
    PropertySpec(0x8D, "serial number", "ascii", "get", size=12),
    PropertySpec(0xD3, "number of instances", "bytes", "get", size=3),
    PropertySpec(0xD6, "self-node instance list S", "bytes", "get", maximum=253),
    PropertySpec(0xD7, "self-node class list S", "bytes", "get", maximum=17),
    PropertySpec(0x9D, "status change announcement map", "bytes", "get", maximum=17),
    PropertySpec(0x9E, "set property map", "bytes", "get", maximum=17),
    PropertySpec(0x9F, "get property map", "bytes", "get", maximum=17),
)
"""Node profile 0x0EF001 (Part II §6.11): what a controller reads to find the device's
instances (0xD6: count, then 3-byte EOJs) and identity."""


def table(specs: Iterable[PropertySpec]) -> Mapping[int, PropertySpec]:
    """Specs keyed by EPC (a later entry overrides an earlier one)."""
    return MappingProxyType({s.epc: s for s in specs})


#: Every property of an EV charger/discharger object, by EPC.
EV_TABLE: Final = table((*SUPER_CLASS, *EV_PROPERTIES))
NODE_TABLE: Final = table(NODE_PROFILE_PROPERTIES)


def property_map(epcs: Iterable[int]) -> bytes:
    """A property map EDT (Part II Appendix 1): fewer than 16 EPCs are listed after the
    count; 16 or more are given as a 16-byte bitmap (bit ``epc >> 4 - 8`` of byte
    ``epc & 0x0F``)."""
    codes = sorted(set(epcs))
    if len(codes) < 16:
        return bytes((len(codes), *codes))
    bitmap = bytearray(16)
    for epc in codes:
        bitmap[epc & 0x0F] |= 1 << ((epc >> 4) - 8)
    return bytes((len(codes),)) + bytes(bitmap)


def parse_property_map(edt: bytes) -> frozenset[int]:
    """The EPCs of a property map EDT (either form); ``FieldRangeError`` if malformed."""
    if not edt:
        raise FieldRangeError("property map is empty")
    count = edt[0]
    if count < 16:
        if len(edt) != count + 1:
            raise FieldRangeError(f"property map lists {len(edt) - 1} EPCs, says {count}")
        return frozenset(edt[1:])
    if len(edt) != 17:
        raise FieldRangeError(f"property map bitmap has {len(edt) - 1} bytes, expected 16")
    return frozenset(
        ((bit + 8) << 4) | low for low in range(16) for bit in range(8) if edt[1 + low] >> bit & 1
    )


@dataclass(frozen=True)
class Endpoint:
    """Where an ECHONET Lite object is reached: host, UDP port and EOJ."""

    host: str
    port: int
    eoj: Eoj

    def __str__(self) -> str:
        return f"echonet://{self.host}:{self.port}/{self.eoj}"


RESOURCE_FORM: Final = "echonet://HOST[:PORT]/EOJ (e.g. echonet://127.0.0.2/027E01; port 3610)"


def parse_resource(resource: str) -> Endpoint:
    """``echonet://HOST[:PORT]/EOJ`` → :class:`Endpoint`; ``FieldRangeError`` saying why not.

    Unicast only: a multicast address (224.0.0.0/4, ECHONET's 224.0.23.0) is refused.
    """
    prefix = "echonet://"
    if not resource.lower().startswith(prefix):
        raise FieldRangeError(f"{resource!r} does not start with {prefix}; form: {RESOURCE_FORM}")
    rest = resource[len(prefix) :]
    address, slash, eoj_text = rest.partition("/")
    if not slash or not eoj_text:
        raise FieldRangeError(f"{resource!r} names no object (…/027E01); form: {RESOURCE_FORM}")
    eoj = Eoj.parse(eoj_text)
    host, port = address, ECHONET_PORT
    if address.startswith("["):
        host, _, tail = address[1:].partition("]")
        if tail:
            port = _port(tail.removeprefix(":"), resource)
    elif ":" in address:
        host, _, port_text = address.rpartition(":")
        port = _port(port_text, resource)
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise FieldRangeError(f"{resource!r}: {host!r} is not a host name or address")
    first = host.split(".", 1)[0]
    if first.isdigit() and 224 <= int(first) <= 239:
        raise FieldRangeError(f"{resource!r}: {host} is a multicast address; unicast only")
    return Endpoint(host, port, eoj)


def _port(text: str, resource: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise FieldRangeError(f"{resource!r}: port {text!r} is not 1-65535")
    return int(text)
