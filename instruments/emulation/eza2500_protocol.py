"""The emulated EZA-2500 converter's protocol front: binary request frames in, replies out.

One :class:`Eza2500Front` per emulated converter holds the converter's register state (the
last value written to every field, so a read echoes what was set) and talks to the physics
through :class:`ConverterBackend`. Each connection (TCP client or pty opening) gets its own
:class:`Eza2500Session` from :meth:`Eza2500Front.session`, which is a session factory for
``instruments.emulation.transport``::

    front = Eza2500Front(backend, instrument="E001-conv")
    port = await group.serve_tcp(front.session, instrument="E001-conv", faults=faults)
    path = await group.serve_pty(front.session, instrument="E001-conv", faults=faults)

Behaviour, as the real converter on an RS-485 multidrop line:

- frames with a bad checksum, reply frames and frames for another AD1/AD2 are ignored
  silently (no reply); the reply carries the request's AD1/AD2;
- a read (LEN 0) answers the current values; a write answers the echo of what was set
  (after quantisation to the wire's fixed point);
- NAK codes: 0xFFFF for an unknown command or a write to a read-only one (status, meters,
  temperatures); 0xFFFE for a write whose LEN does not fit the command, a value outside the
  range APIS accepts (``FieldSpec.minimum``/``maximum``) or an unknown mode code; whatever code
  the backend raises with :class:`Refused` (e.g. 0xFFFD, valid but not accepted now); 0xFFFB
  when the backend fails unexpectedly (logged).

``cvb`` lives in both 0x18 and 0x1D: it is one register, so writing either updates both.
Meters outside the 16-bit range saturate, as an ADC does. Command 0x0A (temperatures and
fans) is answered from the meters' ``tmp`` (``ts``, ``tp``), a 5.0 V ``v5s`` and fans at 0.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from instruments.emulation import timing
from instruments.wire.eza2500 import (
    APIS_AD1,
    APIS_AD2,
    COMMANDS,
    FIELDS,
    START_REQUEST,
    Command,
    ErrorCode,
    Frame,
    FrameSplitter,
    Mode,
    build_nak,
    build_reply,
    layout,
    unpack_raw,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Command 0x1C: battery current limit, grid current set-point and voltage trips."""

    cib: float
    dig: float
    ubv: float
    ugv: float
    obv: float
    ogv: float


@dataclass(frozen=True)
class Meters:
    """Command 0x09 in physical units (APIS convention: ``ig`` > 0 when charging)."""

    vg: float
    ig: float
    vb: float
    ib: float
    wg: float
    wb: float
    ic: int = 0
    tmp: float = 25.0


@dataclass(frozen=True)
class ConverterStatus:
    """Command 0x01 and the alarm words of 0x12.

    ``running``: 0 off, 1 charging, 2 discharging; ``alarm_level``: 0 none, 1 light,
    2 heavy.
    """

    running: int = 0
    alarm_level: int = 0
    ext: int = 0
    alarms: tuple[int, int, int] = (0, 0, 0)

    @property
    def cst(self) -> int:
        """The ``cst`` word: bits 0-1 running state, bits 2-3 alarm level."""
        return (self.running & 0x3) | ((self.alarm_level & 0x3) << 2)


class Refused(Exception):
    """Raised by a backend to refuse a command; the front answers a NAK with ``code``."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        super().__init__(f"refused with 0x{code:04X}" + (f": {reason}" if reason else ""))


class ConverterBackend(Protocol):
    """What the protocol front needs from the converter's physics (one plant port)."""

    def apply_mode(self, mode: Mode) -> None:
        """Enter ``mode``; raise :class:`Refused` to NAK it."""
        ...

    def apply_voltage_reference(self, dvg: float, drg: float) -> None:
        """Bus voltage set-point (V) and droop, used in VOLTAGE_REFERENCE mode."""
        ...

    def apply_limits(self, limits: Limits) -> None:
        """Current limit and set-point (``dig``, a magnitude) and the voltage trips."""
        ...

    def meters(self) -> Meters:
        """Measured values now."""
        ...

    def status(self) -> ConverterStatus:
        """Running state and alarms now."""
        ...

    def clear_alarms(self) -> None:
        """Clear latched alarms (command 0x12 written)."""
        ...


DEFAULT_REGISTERS: Mapping[str, float] = {
    "mode": Mode.WAIT,
    "cvb": 57.6,
    "drb": 0.0,
    "dvg": 350.0,
    "drg": 0.0,
    "pdz": 0.0,
    "mdz": 0.0,
    "cib": 52.0,
    "dig": 0.0,
    "ubv": 40.0,
    "ugv": 300.0,
    "obv": 59.0,
    "ogv": 400.0,
    "bcf": 0x0003,
    "dlb": 49.0,
    "cdb": 1.2,
    "ddb": 1.8,
    "ccr": 0.0,
    "ddr": 0.0,
    "d0": 0,
    "d1": 0,
}
"""Power-on register values: APIS's default converter configuration (dcdc_batt_comm.yml)."""

_READ_ONLY_FROM_BACKEND = (Command.STATUS, Command.METERS, Command.TEMPERATURES, Command.ALARMS)
# Meters and ConverterStatus name their attributes after the wire fields.
_METERS = operator.attrgetter(*COMMANDS[Command.METERS].read_fields)
_STATUS = operator.attrgetter(*COMMANDS[Command.STATUS].read_fields)


@dataclass
class Eza2500Front:
    """One emulated converter's protocol state; shared by all its connections."""

    backend: ConverterBackend
    instrument: str = "eza2500"
    ad1: int = APIS_AD1
    ad2: int = APIS_AD2
    registers: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in DEFAULT_REGISTERS.items():
            self.registers.setdefault(name, FIELDS[name].encode(value))

    def session(self) -> Eza2500Session:
        """A new per-connection session (the factory handed to transport.py)."""
        return Eza2500Session(self)

    def register(self, name: str) -> float:
        """A register's physical value as last written."""
        return FIELDS[name].decode(self.registers[name])

    def set_register(self, name: str, value: float) -> None:
        """Change a register from the model side (e.g. a trip forcing mode to WAIT)."""
        self.registers[name] = FIELDS[name].encode(value)

    def handle(self, frame: Frame) -> bytes | None:
        """The reply to one checksum-valid frame, or ``None`` when the converter stays silent."""
        if not frame.is_request or (frame.ad1, frame.ad2) != (self.ad1, self.ad2):
            return None
        spec = COMMANDS.get(frame.cmd)
        if spec is None:
            log.debug("%s: unknown command 0x%02X", self.instrument, frame.cmd)
            return self._nak(frame, ErrorCode.UNSUPPORTED_COMMAND)
        try:
            if not frame.payload:
                return self._reply(frame, self._read_payload(spec.code))
            return self._write(frame)
        except Refused as refusal:
            log.debug("%s: command 0x%02X %s", self.instrument, frame.cmd, refusal)
            return self._nak(frame, refusal.code)
        except Exception:
            log.exception("%s: backend failed on command 0x%02X", self.instrument, frame.cmd)
            return self._nak(frame, ErrorCode.INTERNAL_COMMUNICATION)

    # ---- reads ---------------------------------------------------------------------
    def _read_payload(self, code: Command) -> bytes:
        spec = COMMANDS[code]
        if code not in _READ_ONLY_FROM_BACKEND:
            return self._pack_registers(spec.read_fields)
        values: dict[str, float]
        if code is Command.METERS:
            return spec.read_layout.pack_saturated(_METERS(self.backend.meters()))
        if code is Command.STATUS:
            return spec.read_layout.pack_saturated(_STATUS(self.backend.status()))
        if code is Command.TEMPERATURES:
            tmp = round(self.backend.meters().tmp)
            values = {"ts": tmp, "tp": tmp, "v5s": 5.0}
            values.update({f"fan{i}": 0 for i in range(1, 6)})
        else:
            alarms = self.backend.status().alarms
            values = {"alm1": alarms[0], "alm2": alarms[1], "alm3": alarms[2]}
        return _pack_saturated(spec.read_fields, values)

    def _pack_registers(self, names: tuple[str, ...]) -> bytes:
        registers = self.registers
        return layout(names).pack_raw([registers[name] for name in names])

    # ---- writes --------------------------------------------------------------------
    def _write(self, frame: Frame) -> bytes:
        spec = COMMANDS[frame.cmd]
        where = f"{self.instrument} command 0x{frame.cmd:02X}"
        if spec.write_fields is None:
            raise Refused(ErrorCode.UNSUPPORTED_COMMAND, f"{where} is read-only")
        if len(frame.payload) != spec.write_length:
            raise Refused(ErrorCode.BAD_PARAMETER, f"{where}: LEN {len(frame.payload)}")
        raws = unpack_raw(spec.write_fields, frame.payload, where=where)
        values = {name: FIELDS[name].decode(raw) for name, raw in raws.items()}
        for name, value in values.items():
            if not FIELDS[name].in_range(value):
                raise Refused(ErrorCode.BAD_PARAMETER, f"{where}: {name} = {value:g} out of range")
        self._apply(spec.code, values)
        self.registers.update(raws)
        return self._reply(frame, self._pack_registers(spec.write_fields))

    def _apply(self, code: Command, values: Mapping[str, float]) -> None:
        backend = self.backend
        if code is Command.MODE:
            raw = int(values["mode"])
            try:
                mode = Mode(raw)
            except ValueError:
                raise Refused(ErrorCode.BAD_PARAMETER, f"unknown mode 0x{raw:04X}") from None
            backend.apply_mode(mode)
        elif code is Command.VOLTAGE_REFERENCE:
            backend.apply_voltage_reference(values["dvg"], values["drg"])
        elif code is Command.LIMITS:
            backend.apply_limits(Limits(**values))
        elif code is Command.ALARMS:
            backend.clear_alarms()

    # ---- framing -------------------------------------------------------------------
    def _reply(self, frame: Frame, payload: bytes) -> bytes:
        return build_reply(frame.cmd, payload, ad1=frame.ad1, ad2=frame.ad2)

    def _nak(self, frame: Frame, code: int) -> bytes:
        return build_nak(frame.cmd, code, ad1=frame.ad1, ad2=frame.ad2)


def _pack_saturated(names: tuple[str, ...], values: Mapping[str, float]) -> bytes:
    """Pack measured values, clamping each raw word to its field's range (ADC saturation)."""
    return layout(names).pack_saturated([values[name] for name in names])


class Eza2500Session:
    """One connection: splits request frames and answers each through the front."""

    def __init__(self, front: Eza2500Front) -> None:
        self._front = front
        self._splitter = FrameSplitter(START_REQUEST)

    def feed(self, data: bytes) -> list[bytes]:
        replies = []
        for frame in self._splitter.feed(data):
            reply = self._front.handle(frame)
            if reply is not None:
                timing.note("write" if frame.payload else "read")
                replies.append(reply)
        return replies
