"""Transports: a resource string opened with the right library, and one error vocabulary.

Three kinds of line, one class each:

- :class:`ScpiConnection` — text messages through pyvisa. The pyvisa-py backend (``"@py"``)
  is the default; ``visa_library="@ivi"`` (NI-VISA, Keysight IO Libraries) or a path to a
  VISA shared library selects a vendor VISA. Resource strings are plain VISA:
  ``TCPIP0::10.0.0.5::5025::SOCKET``, ``ASRL/dev/ttyUSB0::INSTR``,
  ``ASRLsocket://127.0.0.1:5601::INSTR`` (serial over TCP, used by the emulator),
  ``USB0::…::INSTR``, ``GPIB0::5::INSTR``. Both terminators are always set explicitly
  (``"\\n"`` unless told otherwise): a pyvisa socket session has no read terminator by
  default and its first query would time out.
- :class:`ModbusConnection` — pymodbus 3.16 synchronous clients (a driver is used from
  plain threads, one lock per driver, so the sync clients are the simpler choice).
  Resource strings: ``modbus-tcp://HOST[:PORT]`` (Modbus TCP, port 502 by default),
  ``modbus-rtu-tcp://HOST:PORT`` (RTU framing over a TCP socket),
  ``modbus-rtu:DEVICE`` (RTU on a serial line: ``modbus-rtu:/dev/ttyUSB0``, a pty path such
  as ``modbus-rtu:/dev/pts/5``, or any pyserial URL such as ``modbus-rtu:socket://h:p``).
  The bench file's shorthands work too: ``HOST:PORT`` is Modbus TCP, a bare device path or
  pyserial URL is RTU on that line.
- :class:`SerialConnection` — raw bytes through pyserial ``serial_for_url``: a device path,
  a pty path, or a URL such as ``socket://127.0.0.1:PORT``.

Errors: every failure becomes a :class:`~instruments.errors.CommunicationError` subclass
carrying the resource and the command — :class:`~instruments.errors.InstrumentTimeout` when
no (complete) reply came, :class:`~instruments.errors.MalformedReply` when it could not be
decoded, the base class when the line dropped or could not be opened; a Modbus exception
response becomes
:class:`~instruments.errors.InstrumentReportedError`. After a timeout or a dropped line the
connection is *stale*: the failing call raises, and the next call (or an explicit
:meth:`reopen`) closes and reopens the line first, so a late reply can never be taken for
the answer to a later command. Nothing is retried silently.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import serial
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from instruments.errors import (
    CommunicationError,
    ConfigError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_VISA_LIBRARY = "@py"
DEFAULT_MODBUS_TCP_PORT = 502

T = TypeVar("T")


def _check_timeout(timeout: float, resource: str) -> float:
    value = float(timeout)
    if not value > 0:
        raise ConfigError(f"timeout for {resource} must be positive, got {timeout!r} s")
    return value


@dataclass(frozen=True)
class SerialSettings:
    """Serial line parameters (used for ASRL VISA resources, RTU and raw serial lines)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ConfigError(f"baud rate must be positive, got {self.baudrate}")
        if self.parity not in ("N", "E", "O"):
            raise ConfigError(f"parity must be N, E or O, got {self.parity!r}")
        if self.bytesize not in (7, 8):
            raise ConfigError(f"byte size must be 7 or 8, got {self.bytesize}")
        if self.stopbits not in (1, 1.5, 2):
            raise ConfigError(f"stop bits must be 1, 1.5 or 2, got {self.stopbits}")


def _tcp_socket(handle: object) -> socket.socket | None:
    """The TCP socket under a pyvisa-py resource (its session's ``interface``), a pymodbus
    client (``socket``) or a pyserial ``socket://`` port (``_socket``), if there is one."""
    found: list[object] = [handle]
    sessions = getattr(getattr(handle, "visalib", None), "sessions", None)
    session = getattr(handle, "session", None)
    if isinstance(sessions, dict) and session in sessions:
        found.append(sessions[session])
    for _ in range(3):
        deeper: list[object] = []
        for item in found:
            if isinstance(item, socket.socket):
                stream = item.type == socket.SOCK_STREAM
                return item if stream and item.family != socket.AF_UNIX else None
            deeper += [getattr(item, n, None) for n in ("socket", "_socket", "interface")]
        found = [item for item in deeper if item is not None]
    return None


def no_delay(handle: object) -> None:
    """``TCP_NODELAY`` on the line's socket, if it has one: a set-only command leaves at
    once instead of waiting in Nagle's buffer for the previous segment's ACK, so an
    emulator's ``advance`` sent just after it on another connection cannot overtake it
    (``docs/emulator-control.md``). Best effort: a line without a TCP socket is left alone."""
    sock = _tcp_socket(handle)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            log.debug("TCP_NODELAY not set: %s", exc)


class _Line:
    """Shared bookkeeping: the resource, a lock, and the stale/reopen rule."""

    kind = "line"

    def __init__(self, resource: str, timeout: float) -> None:
        self.resource = resource
        self.timeout = _check_timeout(timeout, resource)
        self._lock = threading.RLock()
        self._stale = False
        self._closed = True

    @property
    def is_open(self) -> bool:
        """True while the line is open and not marked stale."""
        return not self._closed and not self._stale

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def open(self) -> None:
        """Open the line (no-op if open and healthy)."""
        with self._lock:
            if self.is_open:
                return
            if not self._closed:
                self._safe_close()
            self._open()
            self._closed = False
            self._stale = False
            no_delay(self._handle())
            log.debug("opened %s %s", self.kind, self.resource)

    def _handle(self) -> object:
        """The open library object (pyvisa resource, pymodbus client, pyserial port)."""
        return None

    def reopen(self) -> None:
        """Close and open again (explicit reconnect after a dropped line)."""
        with self._lock:
            self._safe_close()
            self.open()
            log.info("reconnected %s %s", self.kind, self.resource)

    def close(self) -> None:
        """Close the line; idempotent and never raises."""
        with self._lock:
            self._safe_close()

    def _safe_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stale = False
        try:
            self._close()
        except Exception as exc:
            log.warning("closing %s %s failed: %s", self.kind, self.resource, exc)

    def _ensure_open(self) -> None:
        if self._stale:
            log.warning(
                "%s %s failed earlier; reopening before the next command", self.kind, self.resource
            )
            self._safe_close()
        if self._closed:
            self.open()

    def _mark_stale(self) -> None:
        self._stale = True


# --------------------------------------------------------------------------------------
# SCPI through pyvisa


class VisaResource(Protocol):
    """The part of a pyvisa message-based resource a connection uses."""

    timeout: Any
    read_termination: Any
    write_termination: Any

    def write(self, message: str) -> Any: ...

    def query(self, message: str) -> str: ...

    def close(self) -> None: ...


VisaOpener = Callable[[], VisaResource]

_resource_managers: dict[str, Any] = {}
_rm_lock = threading.Lock()


def resource_manager(visa_library: str = DEFAULT_VISA_LIBRARY) -> Any:
    """One shared pyvisa ``ResourceManager`` per VISA library (``"@py"``, ``"@ivi"``, path)."""
    import pyvisa

    with _rm_lock:
        manager = _resource_managers.get(visa_library)
        if manager is not None:
            try:
                manager.session  # noqa: B018 - raises once someone closed the shared manager
            except pyvisa.errors.InvalidSession:
                manager = None  # pyvisa hands out one manager per library; open a new one
        if manager is None:
            try:
                manager = pyvisa.ResourceManager(visa_library)
            except (OSError, ValueError, pyvisa.errors.Error) as exc:
                raise CommunicationError(
                    f"cannot load VISA library {visa_library!r}: {exc}; use '@py' for pyvisa-py"
                ) from exc
            _resource_managers[visa_library] = manager
        return manager


class ScpiConnection(_Line):
    """A SCPI text line through pyvisa, with explicit terminators and a timeout.

    ``serial`` configures ``ASRL…::INSTR`` resources (ignored for others). ``opener``
    replaces the pyvisa open call (scripted tests pass a fake resource through it).
    """

    kind = "SCPI resource"

    def __init__(
        self,
        resource: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        visa_library: str = DEFAULT_VISA_LIBRARY,
        termination: str = "\n",
        serial: SerialSettings | None = None,
        opener: VisaOpener | None = None,
        connect: bool = True,
    ) -> None:
        super().__init__(resource, timeout)
        if not termination:
            raise ConfigError(f"SCPI resource {resource}: the terminator must not be empty")
        self.visa_library = visa_library
        self.termination = termination
        self.serial = serial
        self._opener = opener
        self._resource: VisaResource | None = None
        if connect:
            self.open()

    def _open(self) -> None:
        resource = self._opener() if self._opener is not None else self._open_with_pyvisa()
        resource.read_termination = self.termination
        resource.write_termination = self.termination
        resource.timeout = round(self.timeout * 1000)
        self._resource = resource

    def _handle(self) -> object:
        return self._resource

    def _open_with_pyvisa(self) -> VisaResource:
        import pyvisa

        manager = resource_manager(self.visa_library)
        try:
            resource = manager.open_resource(self.resource)
        except (pyvisa.errors.Error, OSError, ValueError) as exc:
            raise CommunicationError(
                f"cannot open SCPI resource with VISA library {self.visa_library!r}: {exc}",
                resource=self.resource,
            ) from exc
        if self.resource.upper().startswith("ASRL"):
            settings = self.serial or SerialSettings()
            parity = {
                "N": pyvisa.constants.Parity.none,
                "E": pyvisa.constants.Parity.even,
                "O": pyvisa.constants.Parity.odd,
            }[settings.parity]
            stop = {
                1: pyvisa.constants.StopBits.one,
                1.5: pyvisa.constants.StopBits.one_and_a_half,
                2: pyvisa.constants.StopBits.two,
            }[settings.stopbits]
            resource.baud_rate = settings.baudrate
            resource.data_bits = settings.bytesize
            resource.parity = parity
            resource.stop_bits = stop
        return cast(VisaResource, resource)

    def _close(self) -> None:
        resource, self._resource = self._resource, None
        if resource is not None:
            resource.close()

    def write(self, command: str) -> None:
        """Send one command (the terminator is appended by the VISA layer)."""
        with self._lock:
            self._ensure_open()
            self._call(command, lambda resource: resource.write(command))

    def query(self, command: str) -> str:
        """Send a query and return its reply without the terminator or surrounding blanks."""
        with self._lock:
            self._ensure_open()
            resource = self._resource
            if resource is None:
                raise self._not_open(command)
            try:
                reply = resource.query(command)
            except Exception as exc:
                self._raise_line_error(command, exc)
                raise
            if not isinstance(reply, str):
                raise MalformedReply(
                    f"reply is not text: {reply!r}", resource=self.resource, command=command
                )
            return reply.strip()

    def _not_open(self, command: str) -> CommunicationError:
        return CommunicationError(
            "SCPI resource is not open", resource=self.resource, command=command
        )

    def _call(self, command: str, action: Callable[[VisaResource], T]) -> T:
        resource = self._resource
        if resource is None:
            raise self._not_open(command)
        try:
            return action(resource)
        except Exception as exc:
            self._raise_line_error(command, exc)
            raise

    def _raise_line_error(self, command: str, exc: Exception) -> None:
        """Raise the connection's own error for ``exc`` from the VISA layer; return (the
        caller re-raises ``exc``) when it is none of a line's failures."""
        import pyvisa

        if isinstance(exc, pyvisa.errors.VisaIOError):
            self._mark_stale()
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(
                    f"no reply within {self.timeout:g} s",
                    resource=self.resource,
                    command=command,
                ) from exc
            raise CommunicationError(
                f"VISA I/O error: {exc.description}", resource=self.resource, command=command
            ) from exc
        if isinstance(exc, UnicodeDecodeError):
            raise MalformedReply(
                f"reply is not ASCII text: {exc}", resource=self.resource, command=command
            ) from exc
        if isinstance(exc, OSError | EOFError | pyvisa.errors.Error | serial.SerialException):
            self._mark_stale()
            raise CommunicationError(
                f"connection failed: {exc}", resource=self.resource, command=command
            ) from exc


# --------------------------------------------------------------------------------------
# Modbus through pymodbus


class ModbusResponse(Protocol):
    """The part of a pymodbus response a connection reads."""

    registers: list[int]
    bits: list[bool]

    def isError(self) -> bool: ...


class ModbusClient(Protocol):
    """The part of a pymodbus synchronous client a connection uses."""

    def connect(self) -> bool: ...

    def close(self) -> None: ...

    def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Any: ...

    def read_holding_registers(
        self, address: int, *, count: int = 1, device_id: int = 1
    ) -> Any: ...

    def read_coils(self, address: int, *, count: int = 1, device_id: int = 1) -> Any: ...

    def write_register(self, address: int, value: int, *, device_id: int = 1) -> Any: ...

    def write_registers(
        self, address: int, values: Sequence[int], *, device_id: int = 1
    ) -> Any: ...

    def write_coil(self, address: int, value: bool, *, device_id: int = 1) -> Any: ...


ModbusClientFactory = Callable[[], ModbusClient]


@dataclass(frozen=True)
class ModbusEndpoint:
    """A parsed Modbus resource string."""

    kind: str  # "tcp", "rtu-tcp" or "rtu"
    host: str = ""
    port: int = 0
    device: str = ""


_SERIAL_DEVICE = re.compile(r"(/dev/\S+|COM\d+|\\\\\.\\COM\d+)", re.IGNORECASE)
_SERIAL_URL = re.compile(r"[a-z0-9]+://\S+", re.IGNORECASE)
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")


def parse_modbus_resource(resource: str) -> ModbusEndpoint:
    """Split a Modbus resource string into its kind and address.

    Explicit forms: ``modbus-tcp://h[:p]``, ``modbus-rtu-tcp://h:p``, ``modbus-rtu:DEVICE``.
    Bench-file shorthands: ``HOST:PORT`` is Modbus TCP; a serial device (``/dev/…``,
    ``COMn``) or a pyserial URL (``socket://h:p``, ``rfc2217://…``) is RTU on that line.
    """
    text = resource.strip()
    lowered = text.lower()
    if lowered.startswith(("modbus-tcp://", "modbus-rtu-tcp://")):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"Modbus resource {resource!r}: bad port ({exc})") from exc
        if not parts.hostname:
            raise ConfigError(f"Modbus resource {resource!r} names no host")
        kind = "tcp" if lowered.startswith("modbus-tcp://") else "rtu-tcp"
        if port is None:
            if kind == "rtu-tcp":
                raise ConfigError(f"Modbus resource {resource!r}: RTU over TCP needs a port")
            port = DEFAULT_MODBUS_TCP_PORT
        return ModbusEndpoint(kind, host=parts.hostname, port=port)
    if lowered.startswith("modbus-rtu:"):
        device = text[len("modbus-rtu:") :]
        if not device:
            raise ConfigError(f"Modbus resource {resource!r} names no serial device")
        return ModbusEndpoint("rtu", device=device)
    if _SERIAL_DEVICE.fullmatch(text) or _SERIAL_URL.fullmatch(text):
        return ModbusEndpoint("rtu", device=text)
    match = _HOST_PORT.fullmatch(text)
    if match is not None and 0 < int(match["port"]) < 65536:
        return ModbusEndpoint("tcp", host=match["host"], port=int(match["port"]))
    raise ConfigError(
        f"Modbus resource {resource!r} is none of modbus-tcp://HOST[:PORT], HOST:PORT, "
        "modbus-rtu-tcp://HOST:PORT, modbus-rtu:DEVICE, a serial device or a pyserial URL"
    )


class ModbusConnection(_Line):
    """A Modbus line (TCP, RTU over TCP, RTU on a serial line) through pymodbus.

    Register and coil addresses are the literal protocol addresses on the wire; a driver
    whose manual numbers registers otherwise converts first (the APIS battery's input register
    30030 goes out as 29, see ``instruments.wire.apis_bms``). ``client_factory`` replaces the
    pymodbus client (scripted tests).
    """

    kind = "Modbus resource"

    def __init__(
        self,
        resource: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        serial: SerialSettings | None = None,
        client_factory: ModbusClientFactory | None = None,
        connect: bool = True,
    ) -> None:
        super().__init__(resource, timeout)
        self.endpoint = None if client_factory else parse_modbus_resource(resource)
        self.serial = serial or SerialSettings()
        self._factory = client_factory
        self._client: ModbusClient | None = None
        if connect:
            self.open()

    def _make_client(self) -> ModbusClient:
        if self._factory is not None:
            return self._factory()
        endpoint = self.endpoint
        assert endpoint is not None
        if endpoint.kind == "rtu":
            settings = self.serial
            return cast(
                ModbusClient,
                ModbusSerialClient(
                    endpoint.device,
                    framer=FramerType.RTU,
                    baudrate=settings.baudrate,
                    bytesize=settings.bytesize,
                    parity=settings.parity,
                    stopbits=int(settings.stopbits),
                    timeout=self.timeout,
                    retries=0,
                ),
            )
        framer = FramerType.SOCKET if endpoint.kind == "tcp" else FramerType.RTU
        return cast(
            ModbusClient,
            ModbusTcpClient(
                endpoint.host, port=endpoint.port, framer=framer, timeout=self.timeout, retries=0
            ),
        )

    def _open(self) -> None:
        client = self._make_client()
        try:
            connected = client.connect()
        except (ModbusException, OSError, serial.SerialException) as exc:
            raise CommunicationError(f"cannot connect: {exc}", resource=self.resource) from exc
        if not connected:
            client.close()
            raise CommunicationError("cannot connect", resource=self.resource)
        self._client = client

    def _handle(self) -> object:
        return self._client

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def read_input_registers(self, address: int, count: int, *, device_id: int) -> list[int]:
        """Function 4: ``count`` input registers from ``address``."""
        command = f"read input registers {address}+{count} (device {device_id})"
        response = self._execute(
            command, lambda c: c.read_input_registers(address, count=count, device_id=device_id)
        )
        return self._registers(response, count, command)

    def read_holding_registers(self, address: int, count: int, *, device_id: int) -> list[int]:
        """Function 3: ``count`` holding registers from ``address``."""
        command = f"read holding registers {address}+{count} (device {device_id})"
        response = self._execute(
            command, lambda c: c.read_holding_registers(address, count=count, device_id=device_id)
        )
        return self._registers(response, count, command)

    def read_coils(self, address: int, count: int, *, device_id: int) -> list[bool]:
        """Function 1: ``count`` coils from ``address``."""
        command = f"read coils {address}+{count} (device {device_id})"
        response = self._execute(
            command, lambda c: c.read_coils(address, count=count, device_id=device_id)
        )
        bits = getattr(response, "bits", None)
        if not isinstance(bits, list) or len(bits) < count:
            raise MalformedReply(
                f"expected {count} coils, got {bits!r}", resource=self.resource, command=command
            )
        return [bool(bit) for bit in bits[:count]]

    def write_register(self, address: int, value: int, *, device_id: int) -> None:
        """Function 6: one holding register."""
        self._check_word(value, address)
        command = f"write register {address}={value} (device {device_id})"
        self._execute(command, lambda c: c.write_register(address, value, device_id=device_id))

    def write_registers(self, address: int, values: Sequence[int], *, device_id: int) -> None:
        """Function 16: consecutive holding registers."""
        for offset, value in enumerate(values):
            self._check_word(value, address + offset)
        command = f"write registers {address}={list(values)} (device {device_id})"
        self._execute(
            command, lambda c: c.write_registers(address, list(values), device_id=device_id)
        )

    def write_coil(self, address: int, value: bool, *, device_id: int) -> None:
        """Function 5: one coil (ON is sent as 0xFF00)."""
        command = f"write coil {address}={'ON' if value else 'OFF'} (device {device_id})"
        self._execute(command, lambda c: c.write_coil(address, bool(value), device_id=device_id))

    def _check_word(self, value: int, address: int) -> None:
        if not 0 <= int(value) <= 0xFFFF:
            raise ConfigError(
                f"Modbus resource {self.resource}: value {value} for register {address} "
                "does not fit 16 bits"
            )

    def _execute(self, command: str, action: Callable[[ModbusClient], Any]) -> Any:
        with self._lock:
            self._ensure_open()
            client = self._client
            if client is None:
                raise CommunicationError(
                    "Modbus resource is not open", resource=self.resource, command=command
                )
            try:
                response = action(client)
            except ModbusIOException as exc:
                self._mark_stale()
                raise InstrumentTimeout(
                    f"no valid reply within {self.timeout:g} s ({exc})",
                    resource=self.resource,
                    command=command,
                ) from exc
            except ConnectionException as exc:
                self._mark_stale()
                raise CommunicationError(
                    f"connection failed: {exc}", resource=self.resource, command=command
                ) from exc
            except ModbusException as exc:
                self._mark_stale()
                raise MalformedReply(
                    f"bad Modbus reply: {exc}", resource=self.resource, command=command
                ) from exc
            except (OSError, serial.SerialException) as exc:
                self._mark_stale()
                raise CommunicationError(
                    f"connection failed: {exc}", resource=self.resource, command=command
                ) from exc
            if response is None:
                raise MalformedReply("no response object", resource=self.resource, command=command)
            if response.isError():
                code = int(getattr(response, "exception_code", -1))
                raise InstrumentReportedError(
                    f"Modbus exception {code} ({_MODBUS_EXCEPTIONS.get(code, 'unknown')}) from "
                    f"resource {self.resource} for {command}"
                )
            return response

    def _registers(self, response: Any, count: int, command: str) -> list[int]:
        registers = getattr(response, "registers", None)
        if not isinstance(registers, list) or len(registers) != count:
            raise MalformedReply(
                f"expected {count} registers, got {registers!r}",
                resource=self.resource,
                command=command,
            )
        return [int(word) for word in registers]


_MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


# --------------------------------------------------------------------------------------
# Raw bytes through pyserial


class SerialPort(Protocol):
    """The part of a pyserial port a connection uses."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


SerialOpener = Callable[[], SerialPort]


class SerialConnection(_Line):
    """A raw byte line through pyserial ``serial_for_url`` (path, pty or ``socket://``)."""

    kind = "serial resource"

    def __init__(
        self,
        resource: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        serial_settings: SerialSettings | None = None,
        opener: SerialOpener | None = None,
        connect: bool = True,
    ) -> None:
        super().__init__(resource, timeout)
        self.settings = serial_settings or SerialSettings()
        self._opener = opener
        self._port: SerialPort | None = None
        self._flush_due = True
        if connect:
            self.open()

    def _open(self) -> None:
        self._flush_due = True
        if self._opener is not None:
            self._port = self._opener()
            return
        settings = self.settings
        try:
            port = serial.serial_for_url(
                self.resource,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                timeout=self.timeout,
                write_timeout=self._write_timeout(),
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise CommunicationError(
                f"cannot open serial line: {exc}", resource=self.resource
            ) from exc
        self._port = cast(SerialPort, port)

    def _handle(self) -> object:
        return self._port

    def _write_timeout(self) -> float | None:
        """pyserial's write timeout: 0 (send at once) on a TCP line, None on an RFC 2217
        line (pyserial's ``rfc2217`` client refuses any write timeout: ``serial/rfc2217.py``,
        ``_reconfigure_port``; ser2net behind a labgrid place), the timeout elsewhere.

        pyserial waits in ``select`` for writability after every send unless the write
        timeout is 0. On ``socket://`` one request of a few dozen bytes is in flight at a
        time and a line that timed out is reopened, so the socket's send buffer always has
        room and that wait (a syscall per request) buys nothing; a short send is still
        caught in :meth:`exchange`.
        """
        lowered = self.resource.lower()
        if lowered.startswith("rfc2217://"):
            return None
        return 0.0 if lowered.startswith("socket://") else self.timeout

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def exchange(self, request: bytes, read_reply: Callable[[SerialPort], T], command: str) -> T:
        """Send ``request`` and let ``read_reply`` read the answer; flush stale input first
        when some may be waiting.

        ``read_reply`` raises :class:`~instruments.errors.InstrumentTimeout` or
        :class:`~instruments.errors.MalformedReply` itself (it knows the framing) and returns only
        for a complete, consistent reply; any I/O failure marks the line stale.

        The input is flushed after the line opens and after every exchange that did not end
        with such a reply (a bad, partial or missing one), so what is left of it never meets
        the next request. After a clean exchange nothing of ours is pending and the flush
        (a syscall) is skipped: a stray byte arriving between exchanges is skipped by the
        framing or fails its checksum, and the exchange after that failure flushes again.
        """
        with self._lock:
            self._ensure_open()
            port = self._port
            if port is None:
                raise CommunicationError(
                    "serial line is not open", resource=self.resource, command=command
                )
            try:
                if self._flush_due:
                    port.reset_input_buffer()
                self._flush_due = True
                sent = port.write(request)
                if sent is not None and sent != len(request):
                    raise serial.SerialException(f"only {sent} of {len(request)} bytes sent")
                reply = read_reply(port)
            except InstrumentTimeout:
                self._mark_stale()
                raise
            except (serial.SerialException, OSError) as exc:
                self._mark_stale()
                raise CommunicationError(
                    f"connection failed: {exc}", resource=self.resource, command=command
                ) from exc
            self._flush_due = False
            return reply
