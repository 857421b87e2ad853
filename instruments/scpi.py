"""The SCPI instrument base class and the descriptors that make drivers read like manuals.

A driver declares each instrument property once::

    class N5700(ScpiInstrument):
        voltage = ScpiNumber("VOLT", unit="V", limits=lambda psu: (0.0, psu.rating.voltage))
        output = ScpiSwitch("OUTP")
        measured_voltage = ScpiMeasurement("MEAS:VOLT?", unit="V")

``psu.voltage = 12.5`` checks the value against the limits *before* sending ``VOLT 12.5``
(short headers, no leading colon, no unit, ``.10g`` numbers: the wire format pinned by the
scripted tests); ``psu.voltage`` sends ``VOLT?`` and parses the number.

:class:`ScpiInstrument` adds identity parsing (``*IDN?``), ``*OPC?`` synchronisation, error
queue draining (``SYST:ERR?``) and a *strict* mode that reads the error queue after every
setting and raises :class:`~instruments.errors.InstrumentReportedError` with the instrument's own
error text. Every public call holds the driver's lock, so threads may share a driver;
:meth:`ScpiInstrument.locked` holds it across a sequence of calls.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from instruments.errors import ConfigError, InstrumentReportedError, MalformedReply

from .base import Identity, Rating, check_setpoint, format_number, rating_from_model_name
from .connection import DEFAULT_TIMEOUT_S, ScpiConnection

log = logging.getLogger(__name__)

MAX_ERROR_QUEUE = 32
OVER_RANGE = 9.9e37

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/%µ]*)\s*$")


@dataclass(frozen=True)
class ScpiError:
    """One entry of the instrument's error queue."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code},{self.message!r}"


def parse_error(reply: str, *, resource: str = "", command: str = "SYST:ERR?") -> ScpiError:
    """Parse ``-222,"Data out of range"`` (Keysight ``+0,"No error"``, Chroma unquoted)."""
    head, sep, tail = reply.partition(",")
    try:
        code = int(head.strip())
    except ValueError:
        raise MalformedReply(
            f"error queue entry {reply!r} has no numeric code", resource=resource, command=command
        ) from None
    message = tail.strip().strip('"').strip() if sep else ""
    return ScpiError(code, message)


def parse_number(reply: str, *, resource: str, command: str, unit: str = "") -> float:
    """A number from an NR1/NR2/NR3 reply, optionally followed by ``unit`` (``5.00 A``).

    ``9.9E+37`` (SCPI's over-range) and non-numeric text raise
    :class:`~instruments.errors.MalformedReply` naming the resource and the command.
    """
    if reply.isascii() and "_" not in reply:
        # The usual reply (``+4.80000E+01``). On ASCII text without underscores, float()
        # accepts exactly the unit-less numbers the pattern accepts, plus inf/nan, which the
        # range test sends on to the full parse (and its error message).
        try:
            value = float(reply)
        except ValueError:
            pass
        else:
            if -OVER_RANGE < value < OVER_RANGE:
                return value
    return _parse_with_pattern(reply, resource=resource, command=command, unit=unit)


def _parse_with_pattern(reply: str, *, resource: str, command: str, unit: str) -> float:
    """:func:`parse_number` by the full NR1/NR2/NR3 pattern (units, errors)."""
    match = _NUMBER.match(reply)
    if match is None:
        raise MalformedReply(f"reply {reply!r} is not a number", resource=resource, command=command)
    suffix = match.group(2)
    if suffix and (not unit or suffix.upper() != unit.upper()):
        raise MalformedReply(
            f"reply {reply!r} has unexpected unit {suffix!r}", resource=resource, command=command
        )
    value = float(match.group(1))
    if not math.isfinite(value) or abs(value) >= OVER_RANGE:
        raise MalformedReply(
            f"reply {reply!r} is an over-range or non-finite reading",
            resource=resource,
            command=command,
        )
    return value


def parse_bool(reply: str, *, resource: str, command: str) -> bool:
    """``1``/``0``/``ON``/``OFF`` (with optional sign) as a bool."""
    text = reply.strip().upper().lstrip("+")
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise MalformedReply(f"reply {reply!r} is not a boolean", resource=resource, command=command)


Limits = Callable[[Any], tuple[float, float]]
Validator = Callable[[Any, float], None]


class ScpiNumber:
    """A numeric setting: ``HEADER <value>`` to set, ``HEADER?`` to read.

    ``limits(instrument)`` gives the allowed range (checked before sending);
    ``validate(instrument, value)`` may add coupled checks (it raises to refuse).
    ``reply_unit`` accepts replies that carry a unit (EA's ``5.00 A``).
    """

    def __init__(
        self,
        header: str,
        *,
        unit: str = "",
        limits: Limits | None = None,
        validate: Validator | None = None,
        reply_unit: str = "",
        doc: str = "",
    ) -> None:
        self.header = header
        self.unit = unit
        self.limits = limits
        self.validate = validate
        self.reply_unit = reply_unit
        self.name = header
        self.__doc__ = doc or f"``{header}`` in {unit or 'instrument units'}."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...

    @overload
    def __get__(self, obj: ScpiInstrument, owner: type) -> float: ...

    def __get__(self, obj: ScpiInstrument | None, owner: type) -> Self | float:
        if obj is None:
            return self
        return obj.query_number(f"{self.header}?", unit=self.reply_unit)

    def __set__(self, obj: ScpiInstrument, value: float) -> None:
        number = self.check(obj, value)
        obj.write_setting(f"{self.header} {format_number(number)}")

    def check(self, obj: ScpiInstrument, value: float) -> float:
        """The value as sent, after the range and coupled checks; raises to refuse."""
        low, high = self.limits(obj) if self.limits else (-math.inf, math.inf)
        number = check_setpoint(obj.name, self.name, value, low, high, self.unit)
        if self.validate is not None:
            self.validate(obj, number)
        return number


class ScpiSwitch:
    """An on/off setting: ``HEADER ON|OFF`` to set, ``HEADER?`` → ``0|1|ON|OFF``."""

    def __init__(self, header: str, *, doc: str = "") -> None:
        self.header = header
        self.name = header
        self.__doc__ = doc or f"``{header} ON|OFF``."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...

    @overload
    def __get__(self, obj: ScpiInstrument, owner: type) -> bool: ...

    def __get__(self, obj: ScpiInstrument | None, owner: type) -> Self | bool:
        if obj is None:
            return self
        return obj.query_bool(f"{self.header}?")

    def __set__(self, obj: ScpiInstrument, value: bool) -> None:
        obj.write_setting(f"{self.header} {'ON' if value else 'OFF'}")


E = TypeVar("E", bound=Enum)


class ScpiChoice(Generic[E]):
    """A setting from a fixed set: ``HEADER <word>``; the enum's values are the wire words.

    Replies are matched case-insensitively against the values and against ``aliases``
    (long forms such as ``VOLTAGE`` for ``VOLT``).
    """

    def __init__(
        self,
        header: str,
        choices: type[E],
        *,
        aliases: Mapping[str, E] | None = None,
        doc: str = "",
    ) -> None:
        self.header = header
        self.choices = choices
        self.aliases = {key.upper(): value for key, value in (aliases or {}).items()}
        self.name = header
        self.__doc__ = doc or f"``{header}`` one of {', '.join(str(c.value) for c in choices)}."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...

    @overload
    def __get__(self, obj: ScpiInstrument, owner: type) -> E: ...

    def __get__(self, obj: ScpiInstrument | None, owner: type) -> Self | E:
        if obj is None:
            return self
        command = f"{self.header}?"
        reply = obj.query(command).strip().strip('"').upper()
        for choice in self.choices:
            if str(choice.value).upper() == reply:
                return choice
        if reply in self.aliases:
            return self.aliases[reply]
        raise MalformedReply(
            f"reply {reply!r} is none of {', '.join(str(c.value) for c in self.choices)}",
            resource=obj.resource,
            command=command,
        )

    def __set__(self, obj: ScpiInstrument, value: E) -> None:
        if not isinstance(value, self.choices):
            raise TypeError(
                f"{obj.name}: {self.name} must be a {self.choices.__name__}, got {value!r}"
            )
        obj.write_setting(f"{self.header} {value.value}")


class ScpiMeasurement:
    """A read-only numeric query (``MEAS:VOLT?``)."""

    def __init__(self, query: str, *, unit: str = "", reply_unit: str = "", doc: str = "") -> None:
        self.query = query
        self.unit = unit
        self.reply_unit = reply_unit
        self.__doc__ = doc or f"``{query}`` in {unit or 'instrument units'}."

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...

    @overload
    def __get__(self, obj: ScpiInstrument, owner: type) -> float: ...

    def __get__(self, obj: ScpiInstrument | None, owner: type) -> Self | float:
        if obj is None:
            return self
        return obj.query_number(self.query, unit=self.reply_unit)


@functools.lru_cache(maxsize=64)
def compound(queries: tuple[str, ...]) -> str:
    """``("MEAS:VOLT?", "OUTP?")`` as the compound message ``MEAS:VOLT?;:OUTP?``."""
    return ";:".join(query.lstrip(":") for query in queries)


def parse_identity(reply: str, *, resource: str) -> Identity:
    """``*IDN?`` → vendor, model, serial, firmware (extra commas stay in the firmware)."""
    fields = [part.strip() for part in reply.split(",")]
    if len(fields) < 4 or not fields[0] or not fields[1]:
        raise MalformedReply(
            f"identity {reply!r} does not have vendor,model,serial,firmware",
            resource=resource,
            command="*IDN?",
        )
    return Identity(fields[0], fields[1], fields[2], ",".join(fields[3:]))


class ScpiInstrument:
    """Base of every SCPI driver: locked I/O, identity, ``*OPC?``, error queue, strict mode.

    ``name`` labels the instrument in messages (the bench's unit name, say ``E001-psu``);
    ``strict`` reads ``SYST:ERR?`` after every setting and raises the instrument's own text.
    """

    error_query = "SYST:ERR?"
    vendor_hint = ""

    def __init__(self, connection: ScpiConnection, *, name: str = "", strict: bool = False) -> None:
        self.connection = connection
        self.name = name or connection.resource
        self.strict = strict
        self._lock = threading.RLock()

    @property
    def resource(self) -> str:
        return self.connection.resource

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, resource={self.resource!r})"

    @contextmanager
    def locked(self) -> Iterator[Self]:
        """Hold the driver's lock across several calls (no other thread interleaves)."""
        with self._lock:
            yield self

    # raw I/O --------------------------------------------------------------------------

    def write(self, command: str) -> None:
        """Send a command as is (no error check)."""
        with self._lock:
            log.debug("%s <- %s", self.name, command)
            self.connection.write(command)

    def query(self, command: str) -> str:
        """Send a query and return the stripped reply."""
        with self._lock:
            reply = self.connection.query(command)
            log.debug("%s <- %s -> %s", self.name, command, reply)
            return reply

    def query_number(self, command: str, *, unit: str = "") -> float:
        """Send a query and parse a number (``MalformedReply`` if it is not one)."""
        return parse_number(self.query(command), resource=self.resource, command=command, unit=unit)

    def query_bool(self, command: str) -> bool:
        """Send a query and parse ``0|1|ON|OFF``."""
        return parse_bool(self.query(command), resource=self.resource, command=command)

    def query_int(self, command: str) -> int:
        """Send a query and parse an integer (status registers)."""
        reply = self.query(command)
        try:
            return int(reply.strip().lstrip("+"))
        except ValueError:
            number = parse_number(reply, resource=self.resource, command=command)
            if number != int(number):
                raise MalformedReply(
                    f"reply {reply!r} is not an integer", resource=self.resource, command=command
                ) from None
            return int(number)

    def write_setting(self, command: str) -> None:
        """Send a setting; in strict mode, raise the instrument's error if it refused it."""
        with self._lock:
            self.write(command)
            if self.strict:
                self.check_errors(command)

    # common commands ------------------------------------------------------------------

    def query_fields(self, queries: Sequence[str]) -> list[str]:
        """Send several queries as one compound message; return one reply per query.

        ``MEAS:VOLT?;:MEAS:CURR?`` costs one round trip instead of two (SCPI 1999: ``;``
        separates commands, a leading ``:`` restarts at the root; the replies come back on
        one line separated by ``;``). A reply with the wrong number of fields is
        ``MalformedReply``.
        """
        message = compound(tuple(queries))
        reply = self.query(message)
        fields = [field.strip() for field in reply.split(";")]
        if len(fields) != len(queries):
            raise MalformedReply(
                f"expected {len(queries)} replies separated by ';', got {reply!r}",
                resource=self.resource,
                command=message,
            )
        return fields

    def probe(self) -> Identity:
        """The identity (``*IDN?`` proves that the instrument answers)."""
        return self.identify()

    def identify(self) -> Identity:
        """``*IDN?`` parsed into vendor, model, serial and firmware."""
        return parse_identity(self.query("*IDN?"), resource=self.resource)

    def wait_complete(self) -> None:
        """``*OPC?``: block until every pending operation has finished."""
        reply = self.query("*OPC?")
        if reply.lstrip("+") != "1":
            raise MalformedReply(
                f"*OPC? answered {reply!r}, expected 1", resource=self.resource, command="*OPC?"
            )

    def reset(self) -> None:
        """``*RST``, then ``*OPC?`` (the instrument is back in its reset state on return)."""
        with self._lock:
            self.write("*RST")
            self.wait_complete()

    def clear_status(self) -> None:
        """``*CLS``: clear the status registers and the error queue."""
        self.write("*CLS")

    def errors(self) -> list[ScpiError]:
        """Drain the error queue (at most 32 entries); empty when there was no error."""
        found: list[ScpiError] = []
        with self._lock:
            for _ in range(MAX_ERROR_QUEUE):
                entry = parse_error(
                    self.query(self.error_query), resource=self.resource, command=self.error_query
                )
                if entry.code == 0:
                    return found
                found.append(entry)
        log.warning("%s: error queue still not empty after %d reads", self.name, MAX_ERROR_QUEUE)
        return found

    def check_errors(self, command: str = "") -> None:
        """Raise :class:`InstrumentReportedError` with the queued errors, if any."""
        found = self.errors()
        if found:
            after = f" after {command!r}" if command else ""
            raise InstrumentReportedError(
                f"{self.name} (resource {self.resource}) reported "
                + "; ".join(str(error) for error in found)
                + after
            )

    # connection -----------------------------------------------------------------------

    def reconnect(self) -> None:
        """Close and reopen the connection."""
        with self._lock:
            self.connection.reopen()

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self.connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RatedScpiInstrument(ScpiInstrument):
    """A SCPI instrument with a rating: given, or looked up from its model name.

    ``family`` names the instrument family in messages; a family whose model names do not
    encode the rating overrides :meth:`model_rating` with its own table.
    """

    family: ClassVar[str] = "SCPI instrument"

    def __init__(
        self,
        connection: ScpiConnection,
        *,
        rating: Rating | None = None,
        model: str = "",
        name: str = "",
        strict: bool = False,
    ) -> None:
        super().__init__(connection, name=name, strict=strict)
        if rating is None:
            if not model:
                raise ConfigError(f"{self.family} {self.name}: give a rating or a model")
            rating = self.model_rating(model)
        self.rating = rating

    @staticmethod
    def model_rating(model: str) -> Rating:
        """The rating a ``SERIES<kW>X-<volts>-<amps>`` model name encodes."""
        return rating_from_model_name(model)

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        rating: Rating | None = None,
        model: str = "",
        name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        visa_library: str = "@py",
        strict: bool = False,
    ) -> Self:
        """Open ``resource`` (e.g. ``TCPIP0::10.0.0.5::5025::SOCKET``) and wrap it."""
        connection = ScpiConnection(resource, timeout=timeout, visa_library=visa_library)
        return cls(connection, rating=rating, model=model, name=name, strict=strict)
