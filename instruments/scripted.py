"""Scripted stand-ins for the transport libraries, for tests that pin the exact wire traffic.

Each fake plays a script of expected requests and canned replies, in order, and fails loudly
(``ScriptMismatch``) when the driver sends anything else. They plug in *under* the real
connection classes (``opener=`` / ``client_factory=``), so the connection's own logic —
terminators, timeouts, error mapping — runs in every scripted test:

- :class:`ScriptedVisaResource` — a pyvisa resource (``write``/``query``/``read``);
- :class:`ScriptedModbusClient` — a pymodbus sync client returning real pymodbus responses;
- :class:`ScriptedSerialPort` — a pyserial port (bytes in, bytes out).

A reply may be an exception instance: it is raised in place of the reply (a timeout, a
dropped line). ``assert_done()`` checks that the whole script was used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.bit_message import ReadCoilsResponse, WriteSingleCoilResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)


class ScriptMismatch(AssertionError):
    """The driver did something other than the script expected."""


# --------------------------------------------------------------------------------------
# pyvisa


@dataclass
class VisaStep:
    """One expected message: ``write`` (reply None) or ``query`` (reply text or exception)."""

    kind: str
    message: str
    reply: str | BaseException | None = None


def write(message: str) -> VisaStep:
    """Expect ``write(message)``."""
    return VisaStep("write", message)


def query(message: str, reply: str | BaseException) -> VisaStep:
    """Expect ``query(message)`` and answer ``reply`` (or raise it)."""
    return VisaStep("query", message, reply)


class ScriptedVisaResource:
    """A fake pyvisa message-based resource that follows a script."""

    def __init__(self, steps: Iterable[VisaStep] = ()) -> None:
        self.steps: deque[VisaStep] = deque(steps)
        self.log: list[tuple[str, str]] = []
        self.timeout: Any = None
        self.read_termination: Any = None
        self.write_termination: Any = None
        self.closed = False
        self.open_count = 0

    def expect(self, *steps: VisaStep) -> None:
        """Append more steps."""
        self.steps.extend(steps)

    def _next(self, kind: str, message: str) -> VisaStep:
        self.log.append((kind, message))
        if self.closed:
            raise ScriptMismatch(f"{kind}({message!r}) on a closed resource")
        if not self.steps:
            raise ScriptMismatch(f"unexpected {kind}({message!r}): script exhausted")
        step = self.steps.popleft()
        if (step.kind, step.message) != (kind, message):
            raise ScriptMismatch(f"expected {step.kind}({step.message!r}), got {kind}({message!r})")
        return step

    def write(self, message: str) -> int:
        step = self._next("write", message)
        if isinstance(step.reply, BaseException):
            raise step.reply
        return len(message)

    def query(self, message: str) -> str:
        step = self._next("query", message)
        if isinstance(step.reply, BaseException):
            raise step.reply
        assert step.reply is not None
        return step.reply

    def close(self) -> None:
        self.closed = True

    @property
    def sent(self) -> list[str]:
        """Every message sent so far, in order."""
        return [message for _, message in self.log]

    def assert_done(self) -> None:
        if self.steps:
            raise ScriptMismatch(f"{len(self.steps)} scripted steps unused, next: {self.steps[0]}")


class VisaScript:
    """An opener for :class:`~instruments.connection.ScpiConnection` that hands out one
    scripted resource per (re)open, so reconnect behaviour can be scripted too."""

    def __init__(self, *resources: ScriptedVisaResource) -> None:
        self.resources: deque[ScriptedVisaResource] = deque(resources)
        self.opened: list[ScriptedVisaResource] = []

    def __call__(self) -> ScriptedVisaResource:
        if not self.resources:
            raise ScriptMismatch("unexpected (re)open: no scripted resource left")
        resource = self.resources.popleft()
        resource.closed = False
        resource.open_count += 1
        self.opened.append(resource)
        return resource

    def assert_done(self) -> None:
        for resource in self.opened:
            resource.assert_done()
        if self.resources:
            raise ScriptMismatch(f"{len(self.resources)} scripted resources never opened")


# --------------------------------------------------------------------------------------
# pymodbus


@dataclass
class ModbusStep:
    """One expected client call and its reply (registers, bits, None, or an exception)."""

    call: str
    address: int
    value: Any
    device_id: int
    reply: Any = None


def modbus(
    call: str, address: int, value: Any, *, device_id: int = 1, reply: Any = None
) -> ModbusStep:
    """Expect ``call`` (``read_input_registers``, ``write_coil``…) with ``value`` (a count
    for reads, the value for writes) and answer ``reply``.

    A reply that is an ``int`` for a write call, or ``("exception", code)``, answers with a
    Modbus exception response of that code.
    """
    return ModbusStep(call, address, value, device_id, reply)


class ScriptedModbusClient:
    """A fake pymodbus synchronous client that follows a script."""

    def __init__(self, steps: Iterable[ModbusStep] = (), *, connects: bool = True) -> None:
        self.steps: deque[ModbusStep] = deque(steps)
        self.log: list[tuple[str, int, Any, int]] = []
        self.connects = connects
        self.connected = False

    def connect(self) -> bool:
        self.connected = self.connects
        return self.connects

    def close(self) -> None:
        self.connected = False

    def _next(self, call: str, address: int, value: Any, device_id: int) -> ModbusStep:
        self.log.append((call, address, value, device_id))
        if not self.steps:
            raise ScriptMismatch(f"unexpected {call}({address}, {value!r}): script exhausted")
        step = self.steps.popleft()
        got = (call, address, value, device_id)
        want = (step.call, step.address, step.value, step.device_id)
        if got != want:
            raise ScriptMismatch(f"expected {want}, got {got}")
        if isinstance(step.reply, BaseException):
            raise step.reply
        return step

    @staticmethod
    def _exception(step: ModbusStep, function_code: int) -> ExceptionResponse | None:
        reply = step.reply
        if isinstance(reply, tuple) and reply and reply[0] == "exception":
            return ExceptionResponse(function_code, int(reply[1]), device_id=step.device_id)
        return None

    def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Any:
        step = self._next("read_input_registers", address, count, device_id)
        return self._exception(step, 4) or ReadInputRegistersResponse(
            registers=list(step.reply), dev_id=device_id
        )

    def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Any:
        step = self._next("read_holding_registers", address, count, device_id)
        return self._exception(step, 3) or ReadHoldingRegistersResponse(
            registers=list(step.reply), dev_id=device_id
        )

    def read_coils(self, address: int, *, count: int = 1, device_id: int = 1) -> Any:
        step = self._next("read_coils", address, count, device_id)
        return self._exception(step, 1) or ReadCoilsResponse(
            bits=list(step.reply), dev_id=device_id
        )

    def write_register(self, address: int, value: int, *, device_id: int = 1) -> Any:
        step = self._next("write_register", address, value, device_id)
        return self._exception(step, 6) or WriteSingleRegisterResponse(
            address=address, registers=[value], dev_id=device_id
        )

    def write_registers(self, address: int, values: Sequence[int], *, device_id: int = 1) -> Any:
        step = self._next("write_registers", address, list(values), device_id)
        return self._exception(step, 16) or WriteMultipleRegistersResponse(
            address=address, count=len(values), dev_id=device_id
        )

    def write_coil(self, address: int, value: bool, *, device_id: int = 1) -> Any:
        step = self._next("write_coil", address, value, device_id)
        return self._exception(step, 5) or WriteSingleCoilResponse(
            address=address, bits=[value], dev_id=device_id
        )

    def assert_done(self) -> None:
        if self.steps:
            raise ScriptMismatch(f"{len(self.steps)} scripted steps unused, next: {self.steps[0]}")


# --------------------------------------------------------------------------------------
# pyserial


@dataclass
class SerialStep:
    """Expect ``request`` bytes, then make ``reply`` bytes readable (or raise it)."""

    request: bytes
    reply: bytes | BaseException = b""


@dataclass
class ScriptedSerialPort:
    """A fake pyserial port: each write must match the next step's request exactly."""

    steps: deque[SerialStep] = field(default_factory=deque)
    written: list[bytes] = field(default_factory=list)
    closed: bool = False
    _pending: bytearray = field(default_factory=bytearray)

    @classmethod
    def of(cls, *steps: SerialStep) -> ScriptedSerialPort:
        return cls(deque(steps))

    def write(self, data: bytes) -> int:
        self.written.append(bytes(data))
        if not self.steps:
            raise ScriptMismatch(f"unexpected write {bytes(data).hex(' ')}: script exhausted")
        step = self.steps.popleft()
        if bytes(data) != step.request:
            raise ScriptMismatch(
                f"expected write {step.request.hex(' ')}, got {bytes(data).hex(' ')}"
            )
        if isinstance(step.reply, BaseException):
            raise step.reply
        self._pending += step.reply
        return len(data)

    def read(self, size: int = 1) -> bytes:
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        return chunk

    @property
    def in_waiting(self) -> int:
        return len(self._pending)

    def reset_input_buffer(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self.steps:
            raise ScriptMismatch(f"{len(self.steps)} scripted steps unused, next: {self.steps[0]}")
