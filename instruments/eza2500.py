"""TDK-Lambda EZA-2500 bidirectional DC/DC converter (APIS's converter): binary frames.

Resources (pyserial ``serial_for_url``, 19200 8N1): a device path (``/dev/ttyUSB0`` on the
RS-485 adapter), a pty path (``/dev/pts/5``) or ``socket://127.0.0.1:PORT`` (emulator).

The frames, checksum, NAK codes and fixed-point scaling are the codec's
(:mod:`instruments.wire.eza2500`, confirmed against the APIS sources). This driver adds the
behaviour APIS's converter service has:

- one request, one reply, read in at most two calls (the shortest possible reply, then the
  rest once LEN is known); a reply for another command or of the wrong size is malformed, and
  input left over from any failed exchange is flushed before the next request;
- a NAK with a retryable code (0xFFFD not accepted now, 0xFFFC busy) is retried — at most
  ``retries`` tries in all (APIS: 3) — with ``pacing`` seconds (APIS: about 62 ms) between
  commands; other NAK codes raise :class:`~instruments.errors.InstrumentReportedError` at once;
- after every mode change the mode is read back; a mismatch is a hardware error
  (:class:`~instruments.errors.InstrumentReportedError`), as in APIS;
- :meth:`Eza2500.apply` orders a combined change as APIS does: starting from WAIT it sends
  the voltage reference (0x1A), then the limits (0x1C), then the mode (0x00); otherwise the
  mode goes first.

Set-points are checked against APIS's accepted ranges (the codec's field limits) and the
instrument ``rating`` (grid voltage, grid current magnitude, power) before sending; APIS
refuses a negative ``dig`` and so does this driver. Measured ``ig`` keeps APIS's sign
(positive while charging, i.e. drawing from the bus).

How the converter adapter (role ``Converter``, APIS's order) drives it: a mode change goes
through :meth:`Eza2500.apply` (from WAIT: 0x1A, 0x1C, then 0x00; otherwise 0x00 first; the
mode is read back), a ramp step in the same mode rewrites only the limits word 0x1C; arming
writes WAIT then 0x1C (``ugv``/``ogv``, ``ubv``/``obv``, ``cib``, ``dig = 0``); a reading is
0x09 (meters), 0x00 (mode) and 0x01 (status). The EZA-2500 has no communication watchdog
that APIS uses.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import NoReturn

from instruments.clock import Clock, WallClock
from instruments.errors import (
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)
from instruments.families import SERIAL_BAUDS, Family, SettingSpec, register

from .base import Identity, Rating, check_setpoint
from .connection import DEFAULT_TIMEOUT_S, SerialConnection, SerialPort, SerialSettings
from .roles import Alarm, Limits, Meters
from .wire.eza2500 import (
    APIS_AD1,
    APIS_AD2,
    FIELDS,
    OVERHEAD_BYTES,
    START_REPLY,
    Command,
    ErrorCode,
    Frame,
    Layout,
    Mode,
    build_read,
    build_request,
    command_spec,
    encode_payload,
    frame_length,
    is_retryable,
    parse_frame,
)

log = logging.getLogger(__name__)

BAUDRATE = 19200
APIS_RETRIES = 3
APIS_PACING_S = 0.062
MAX_REPLY_PAYLOAD = 64
NAK_PAYLOAD_BYTES = 2

#: The EZA-2500's own limits as APIS accepts them (codec field ranges) and its 2.5 kW.
DEFAULT_RATING = Rating(voltage=390.0, current=8.5162, power=2500.0)


class Operation(IntEnum):
    """``cst`` bits 0-1."""

    OFF = 0
    CHARGE = 1
    DISCHARGE = 2


@dataclass(frozen=True)
class ConverterStatus:
    """Command 0x01."""

    cst: int
    ext: int

    @property
    def operation(self) -> Operation:
        try:
            return Operation(self.cst & 0b11)
        except ValueError:
            return Operation.OFF

    @property
    def alarm(self) -> Alarm:
        try:
            return Alarm((self.cst >> 2) & 0b11)
        except ValueError:
            return Alarm.HEAVY


@dataclass(frozen=True)
class VoltageReference:
    """Command 0x1A: bus voltage reference and droop."""

    dvg: float
    drg: float


@dataclass(frozen=True)
class Alarms:
    """Command 0x12 (read)."""

    alm1: int
    alm2: int
    alm3: int

    @property
    def any(self) -> bool:
        return bool(self.alm1 or self.alm2 or self.alm3)


@functools.cache
def _label(code: Command, write: bool) -> str:
    """How a request is named in messages: ``0x09 METERS read``."""
    return f"0x{code:02X} {code.name} {'write' if write else 'read'}"


@functools.cache
def _where(code: Command) -> str:
    """How a command is named in codec messages: ``command 0x09 (METERS)``."""
    return f"command 0x{code:02X} ({code.name})"


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return "unknown code"


class Eza2500:
    """One EZA-2500 on a serial line. Every public call holds the driver's lock."""

    def __init__(
        self,
        connection: SerialConnection,
        *,
        rating: Rating = DEFAULT_RATING,
        ad1: int = APIS_AD1,
        ad2: int = APIS_AD2,
        retries: int = APIS_RETRIES,
        pacing: float = APIS_PACING_S,
        clock: Clock | None = None,
        name: str = "",
        serial: str = "",
    ) -> None:
        if retries < 1:
            raise ConfigError(f"EZA-2500 {name or connection.resource}: retries must be >= 1")
        if pacing < 0:
            raise ConfigError(f"EZA-2500 {name or connection.resource}: pacing must be >= 0")
        self.connection = connection
        self.rating = rating
        self.ad1 = ad1
        self.ad2 = ad2
        self.retries = retries
        self.pacing = pacing
        self.clock: Clock = clock or WallClock()
        self.name = name or connection.resource
        self.serial = serial
        self._lock = threading.RLock()
        self._last_command: float | None = None
        self._read_requests: dict[tuple[int, int, int], bytes] = {}

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        rating: Rating = DEFAULT_RATING,
        timeout: float = DEFAULT_TIMEOUT_S,
        ad1: int = APIS_AD1,
        ad2: int = APIS_AD2,
        baudrate: int = BAUDRATE,
        retries: int = APIS_RETRIES,
        pacing: float = APIS_PACING_S,
        clock: Clock | None = None,
        name: str = "",
        serial: str = "",
    ) -> Eza2500:
        """Open ``resource`` at ``baudrate`` (19200) 8N1 and wrap it."""
        connection = SerialConnection(
            resource, timeout=timeout, serial_settings=SerialSettings(baudrate=baudrate)
        )
        return cls(
            connection,
            rating=rating,
            ad1=ad1,
            ad2=ad2,
            retries=retries,
            pacing=pacing,
            clock=clock,
            name=name,
            serial=serial,
        )

    @property
    def resource(self) -> str:
        return self.connection.resource

    def __repr__(self) -> str:
        return f"Eza2500({self.name!r}, resource={self.resource!r})"

    # frames -----------------------------------------------------------------------------

    def _pace(self) -> None:
        if self._last_command is None or self.pacing == 0:
            return
        wait = self.pacing - (self.clock.now() - self._last_command)
        if wait > 0:
            self.clock.sleep(wait)

    def _read_reply(self, port: SerialPort, command: str, code: int, expected: int) -> Frame:
        """Read the reply to command ``code``: a NAK, or an ACK of ``expected`` payload bytes.

        Stray bytes before the start byte are skipped. The first read asks for the shortest
        reply possible (the ACK or a NAK), so a NAK is never waited for past its end; the
        rest of a longer frame is one more read once LEN is known. A reply for another
        command or of the wrong size is :class:`MalformedReply` (the line then flushes).
        """
        deadline = time.monotonic() + self.connection.timeout
        buf = bytearray()
        skipped = 0
        shortest = OVERHEAD_BYTES + min(expected, NAK_PAYLOAD_BYTES)
        while len(buf) < shortest:
            chunk = port.read(shortest - len(buf))
            if chunk:
                buf += chunk
                if buf[0] != START_REPLY:
                    at = buf.find(START_REPLY)
                    drop = len(buf) if at < 0 else at
                    skipped += drop
                    del buf[:drop]
            elif time.monotonic() >= deadline:
                if not buf:
                    detail = f" ({skipped} stray bytes skipped)" if skipped else ""
                    raise InstrumentTimeout(
                        f"no reply within {self.connection.timeout:g} s{detail}",
                        resource=self.resource,
                        command=command,
                    )
                self._truncated(command, "header", len(buf), shortest)
        length = buf[1]
        if length > MAX_REPLY_PAYLOAD:
            raise MalformedReply(
                f"reply LEN {length} is implausible", resource=self.resource, command=command
            )
        total = frame_length(length)
        while len(buf) < total:
            chunk = port.read(total - len(buf))
            if chunk:
                buf += chunk
            elif time.monotonic() >= deadline:
                self._truncated(command, "payload and checksum", len(buf), total)
        try:
            reply = parse_frame(bytes(buf[:total]))
        except MalformedReply as exc:
            raise MalformedReply(str(exc), resource=self.resource, command=command) from exc
        if reply.command != code:
            raise MalformedReply(
                f"reply is for command 0x{reply.command:02X}",
                resource=self.resource,
                command=command,
            )
        size = NAK_PAYLOAD_BYTES if reply.is_nak else expected
        if length != size:
            what = "NAK" if reply.is_nak else "reply"
            raise MalformedReply(
                f"{what} payload has {length} bytes, expected {size}",
                resource=self.resource,
                command=command,
            )
        return reply

    def _truncated(self, command: str, what: str, got: int, count: int) -> NoReturn:
        raise MalformedReply(
            f"truncated reply: {what} incomplete ({got} of {count} bytes) "
            f"after {self.connection.timeout:g} s",
            resource=self.resource,
            command=command,
        )

    def _request(self, cmd: int, payload: bytes) -> bytes:
        """The request frame; a read's bytes are built once per command and address."""
        if payload:
            return build_request(cmd, payload, ad1=self.ad1, ad2=self.ad2)
        key = (cmd, self.ad1, self.ad2)
        request = self._read_requests.get(key)
        if request is None:
            request = self._read_requests[key] = build_read(cmd, ad1=self.ad1, ad2=self.ad2)
        return request

    def transact(self, cmd: int, payload: bytes = b"") -> Frame:
        """Send one request (a read when ``payload`` is empty) and return the ACK frame.

        Retryable NAKs are retried (``retries`` tries in all, ``pacing`` apart); fatal NAKs
        and exhausted retries raise :class:`InstrumentReportedError`.
        """
        spec = command_spec(cmd)
        label = _label(spec.code, bool(payload))
        expected = spec.read_length if not payload else spec.write_length or 0
        request = self._request(cmd, payload)
        with self._lock:
            for attempt in range(1, self.retries + 1):
                self._pace()
                try:
                    reply = self.connection.exchange(
                        request,
                        lambda port: self._read_reply(port, label, spec.code, expected),
                        label,
                    )
                finally:
                    self._last_command = self.clock.now()
                if not reply.is_nak:
                    return reply
                code = reply.error_code
                known = _error_name(code)
                if not is_retryable(code):
                    raise InstrumentReportedError(
                        f"{self.name} (resource {self.resource}) refused {label}: "
                        f"NAK 0x{code:04X} ({known})"
                    )
                log.info(
                    "%s: %s NAK 0x%04X (%s), try %d of %d",
                    self.name,
                    label,
                    code,
                    known,
                    attempt,
                    self.retries,
                )
            raise InstrumentReportedError(
                f"{self.name} (resource {self.resource}) kept refusing {label}: "
                f"NAK 0x{code:04X} ({known}) after {self.retries} tries"
            )

    def read_values(self, cmd: int) -> dict[str, float]:
        """Read command ``cmd`` and decode its payload into named physical values."""
        spec = command_spec(cmd)
        reply = self.transact(cmd)
        return self._decode(spec.code, spec.read_layout, reply, write=False)

    def write_values(self, cmd: int, values: Mapping[str, float]) -> dict[str, float]:
        """Write command ``cmd`` and return the decoded echo."""
        spec = command_spec(cmd)
        reply = self.transact(cmd, encode_payload(cmd, values))
        echo = spec.write_layout
        assert echo is not None  # encode_payload refused a read-only command
        return self._decode(spec.code, echo, reply, write=True)

    def _decode(
        self, code: Command, layout: Layout, reply: Frame, *, write: bool
    ) -> dict[str, float]:
        try:
            return layout.decode(reply.payload, where=_where(code))
        except MalformedReply as exc:
            label = f"0x{code:02X} {'write' if write else 'read'}"
            raise MalformedReply(str(exc), resource=self.resource, command=label) from exc

    # checks -----------------------------------------------------------------------------

    def _check(self, field: str, value: float, maximum: float | None = None) -> float:
        low, high = FIELDS[field].accepted
        if maximum is not None:
            high = min(high, maximum)
        unit = {
            "dvg": "V",
            "ugv": "V",
            "ogv": "V",
            "ubv": "V",
            "obv": "V",
            "dig": "A",
            "cib": "A",
        }.get(field, "")
        return check_setpoint(self.name, field, value, low, high, unit)

    def _check_reference(self, dvg: float, drg: float) -> tuple[float, float]:
        return self._check("dvg", dvg, self.rating.voltage), self._check("drg", drg)

    def _check_limits(self, limits: Limits) -> Limits:
        return Limits(
            cib=self._check("cib", limits.cib),
            dig=self._check("dig", limits.dig, self.rating.current),
            ubv=self._check("ubv", limits.ubv),
            ugv=self._check("ugv", limits.ugv),
            obv=self._check("obv", limits.obv),
            ogv=self._check("ogv", limits.ogv),
        )

    # commands ---------------------------------------------------------------------------

    def mode(self) -> Mode:
        """Command 0x00 read: the operation mode."""
        raw = int(self.read_values(Command.MODE)["mode"])
        try:
            return Mode(raw)
        except ValueError:
            raise MalformedReply(
                f"unknown operation mode 0x{raw:04X}", resource=self.resource, command="0x00 read"
            ) from None

    def set_mode(self, mode: Mode) -> None:
        """Command 0x00 write, then read back; a mismatch raises (APIS: hardware error)."""
        with self._lock:
            self.write_values(Command.MODE, {"mode": int(mode)})
            actual = self.mode()
            if actual is not mode:
                raise InstrumentReportedError(
                    f"{self.name} (resource {self.resource}): mode read back as {actual.name} "
                    f"(0x{int(actual):04X}) after setting {mode.name} (0x{int(mode):04X})"
                )

    def status(self) -> ConverterStatus:
        """Command 0x01: operation and alarm level."""
        values = self.read_values(Command.STATUS)
        return ConverterStatus(cst=int(values["cst"]), ext=int(values["ext"]))

    def meters(self) -> Meters:
        """Command 0x09: grid and battery voltages, currents, powers, temperature."""
        return Meters(**self.read_values(Command.METERS))

    def voltage_reference(self) -> VoltageReference:
        """Command 0x1A read."""
        return VoltageReference(**self.read_values(Command.VOLTAGE_REFERENCE))

    def set_voltage_reference(self, dvg: float, drg: float = 0.0) -> VoltageReference:
        """Command 0x1A write (checked first); returns the echo."""
        volts, droop = self._check_reference(dvg, drg)
        echo = self.write_values(Command.VOLTAGE_REFERENCE, {"dvg": volts, "drg": droop})
        return VoltageReference(**echo)

    def limits(self) -> Limits:
        """Command 0x1C read."""
        return Limits(**self.read_values(Command.LIMITS))

    def set_limits(self, limits: Limits) -> Limits:
        """Command 0x1C write (every field checked first); returns the echo."""
        checked = self._check_limits(limits)
        echo = self.write_values(Command.LIMITS, vars(checked))
        return Limits(**echo)

    def set_grid_current(self, dig: float) -> Limits:
        """Change only ``dig``: read 0x1C, write it back with the new grid current."""
        amps = self._check("dig", dig, self.rating.current)
        with self._lock:
            current = self.limits()
            return self.set_limits(Limits(**{**vars(current), "dig": amps}))

    def alarms(self) -> Alarms:
        """Command 0x12 read."""
        values = self.read_values(Command.ALARMS)
        return Alarms(int(values["alm1"]), int(values["alm2"]), int(values["alm3"]))

    @property
    def battery_current_rating(self) -> float:
        """Full scale of ``cib`` (A), from the wire table."""
        return FIELDS["cib"].rating

    def field_range(self, name: str) -> tuple[float, float]:
        """APIS's accepted range of field ``name`` (unbounded sides are infinite)."""
        return FIELDS[name].accepted

    def clear_alarms(self) -> None:
        """Command 0x12 write (two zero bytes)."""
        self.write_values(Command.ALARMS, {"d0": 0, "d1": 0})

    def temperatures(self) -> dict[str, float]:
        """Command 0x0A: ``ts``, ``tp``, ``v5s`` and the five fans."""
        return self.read_values(Command.TEMPERATURES)

    def apply(
        self,
        *,
        mode: Mode | None = None,
        dvg: float | None = None,
        drg: float | None = None,
        dig: float | None = None,
    ) -> None:
        """Change any of mode, ``dvg``, ``drg``, ``dig`` in APIS's order.

        Every value is checked before the first frame goes out. From WAIT to an active mode:
        0x1A, 0x1C, then 0x00; otherwise 0x00 first. ``drg`` without ``dvg`` keeps the
        present ``dvg`` (and vice versa).
        """
        if dig is not None:
            self._check("dig", dig, self.rating.current)
        if dvg is not None:
            self._check("dvg", dvg, self.rating.voltage)
        if drg is not None:
            self._check("drg", drg)
        with self._lock:
            starting = mode is not None and mode is not Mode.WAIT and self.mode() is Mode.WAIT
            if mode is not None and not starting:
                self.set_mode(mode)
            if dvg is not None or drg is not None:
                if dvg is None or drg is None:
                    present = self.voltage_reference()
                    dvg = present.dvg if dvg is None else dvg
                    drg = present.drg if drg is None else drg
                self.set_voltage_reference(dvg, drg)
            if dig is not None:
                self.set_grid_current(dig)
            if mode is not None and starting:
                self.set_mode(mode)

    def probe(self) -> Identity:
        """The identity, after reading the mode: the EZA-2500 has no identity command, so
        the mode read proves that it answers."""
        self.mode()
        return self.identify()

    def identify(self) -> Identity:
        """The EZA-2500 has no identity command in APIS's set: a fixed description."""
        return Identity("TDK-Lambda", "EZA-2500", self.serial, "")

    def read_request(self, cmd: int) -> bytes:
        """The exact bytes of a read request for ``cmd`` (for logs and tests)."""
        return build_read(cmd, ad1=self.ad1, ad2=self.ad2)

    def reconnect(self) -> None:
        with self._lock:
            self.connection.reopen()

    def close(self) -> None:
        with self._lock:
            self.connection.close()


#: The family a bench file names ``driver = "eza2500"`` (ratings: ``instruments/eza2500.toml``).
#: Emulated benches drop APIS's 62 ms pause between frames (it is for the real RS-485 line).
FAMILY = register(
    Family(
        name="eza2500",
        function="converter",
        transport="serial",
        description="TDK-Lambda EZA-2500 DC/DC converter (binary frames, RS-485)",
        opener=Eza2500.open,
        ratings="eza2500.toml",
        settings=(
            SettingSpec("ad1", "int", "frame address byte AD1", APIS_AD1, 0, 255),
            SettingSpec("ad2", "int", "frame address byte AD2", APIS_AD2, 0, 255),
            SettingSpec(
                "baudrate",
                "int",
                "serial speed",
                BAUDRATE,
                choices=SERIAL_BAUDS,
            ),
        ),
        open_keywords=frozenset({"rating", "retries"}),
        emulated_options={"pacing": 0.0},
    )
)
