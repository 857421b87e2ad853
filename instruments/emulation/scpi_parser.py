"""SCPI 1999 / IEEE 488.2 parsing: errors, headers, command patterns and parameters.

Everything here is pure text handling; :mod:`instruments.emulation.scpi_device` executes.

- **Patterns** are written as in the manuals: ``[SOURce:]VOLTage[:LEVel][:IMMediate]``,
  ``MEASure[:SCALar]:VOLTage[:DC]?``, ``OUTPut<n>:STATe``, ``*IDN?``. Upper-case letters
  (and digits) give the short form; ``[...]`` marks an optional node; ``<n>`` (or
  ``[<n>]``) allows a numeric suffix that defaults to 1; a trailing ``?`` makes the
  pattern query-only. A typed mnemonic must be exactly the short or the long form, in any
  case (``VOLT``, ``voltage``; not ``VOLTA``).
- **Headers** as typed: a leading ``:`` restarts at the root, ``*XXX`` are common commands.
- **Parameters** are parsed by small spec objects (:class:`Number`, :class:`Boolean`,
  :class:`Choice`, :class:`String`, :class:`Raw`) that raise :class:`ScpiError` with the
  standard code when a token is wrong: -104 wrong type, -222 out of range, -131/-138 bad
  suffix, -224 value not in the list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# ---- errors ---------------------------------------------------------------------------

NO_ERROR = 0
COMMAND_ERROR = -100
INVALID_CHARACTER = -101
SYNTAX_ERROR = -102
DATA_TYPE_ERROR = -104
PARAMETER_NOT_ALLOWED = -108
MISSING_PARAMETER = -109
MNEMONIC_TOO_LONG = -112
UNDEFINED_HEADER = -113
HEADER_SUFFIX_OUT_OF_RANGE = -114
NUMERIC_DATA_ERROR = -120
INVALID_CHARACTER_IN_NUMBER = -121
EXPONENT_TOO_LARGE = -123
TOO_MANY_DIGITS = -124
INVALID_SUFFIX = -131
SUFFIX_NOT_ALLOWED = -138
INVALID_STRING_DATA = -151
BLOCK_DATA_NOT_ALLOWED = -168
EXECUTION_ERROR = -200
SETTINGS_CONFLICT = -221
DATA_OUT_OF_RANGE = -222
TOO_MUCH_DATA = -223
ILLEGAL_PARAMETER_VALUE = -224
DEVICE_ERROR = -300
QUEUE_OVERFLOW = -350
QUERY_ERROR = -400
QUERY_INTERRUPTED = -410
QUERY_UNTERMINATED = -420

ERROR_MESSAGES: dict[int, str] = {
    NO_ERROR: "No error",
    COMMAND_ERROR: "Command error",
    INVALID_CHARACTER: "Invalid character",
    SYNTAX_ERROR: "Syntax error",
    -103: "Invalid separator",
    DATA_TYPE_ERROR: "Data type error",
    PARAMETER_NOT_ALLOWED: "Parameter not allowed",
    MISSING_PARAMETER: "Missing parameter",
    MNEMONIC_TOO_LONG: "Program mnemonic too long",
    UNDEFINED_HEADER: "Undefined header",
    HEADER_SUFFIX_OUT_OF_RANGE: "Header suffix out of range",
    NUMERIC_DATA_ERROR: "Numeric data error",
    INVALID_CHARACTER_IN_NUMBER: "Invalid character in number",
    EXPONENT_TOO_LARGE: "Exponent too large",
    TOO_MANY_DIGITS: "Too many digits",
    INVALID_SUFFIX: "Invalid suffix",
    SUFFIX_NOT_ALLOWED: "Suffix not allowed",
    INVALID_STRING_DATA: "Invalid string data",
    BLOCK_DATA_NOT_ALLOWED: "Block data not allowed",
    EXECUTION_ERROR: "Execution error",
    SETTINGS_CONFLICT: "Settings conflict",
    DATA_OUT_OF_RANGE: "Data out of range",
    TOO_MUCH_DATA: "Too much data",
    ILLEGAL_PARAMETER_VALUE: "Illegal parameter value",
    DEVICE_ERROR: "Device-specific error",
    -330: "Self-test failed",
    QUEUE_OVERFLOW: "Queue overflow",
    QUERY_ERROR: "Query error",
    QUERY_INTERRUPTED: "Query INTERRUPTED",
    QUERY_UNTERMINATED: "Query UNTERMINATED",
}


class ScpiError(Exception):
    """A standard SCPI error: queued by the device, never answered on the wire.

    ``detail`` is the optional device-dependent text SCPI allows after the standard
    message (``-221,"Settings conflict;VOLT:LIM needs CC priority"``).
    """

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code},{self.text!r}")

    @property
    def text(self) -> str:
        """The message as it goes into the error queue."""
        base = ERROR_MESSAGES.get(self.code, "Error")
        return f"{base};{self.detail}" if self.detail else base

    @property
    def is_command_error(self) -> bool:
        """Parse errors (-100 to -199) abandon the rest of the program message."""
        return -199 <= self.code <= -100


# ---- headers ---------------------------------------------------------------------------

MAX_MNEMONIC = 12
_HEADER = re.compile(r":?(?:\*[A-Za-z]+|[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*)\??")


@dataclass(frozen=True, slots=True)
class Header:
    """A header as typed: its mnemonics upper-cased, and how it sits in the path."""

    words: tuple[str, ...]
    query: bool
    absolute: bool
    common: bool


#: Cache bounds (every SCPI cache): entries, bytes of keys in all, bytes of one key. A key
#: longer than the last is never cached (compiling it again is cheap next to holding it):
#: random or hostile input can no longer fill memory (issue 13: 60 KB messages held 1.2 MB
#: each, 4096 of them per model).
CACHE_ENTRIES = 4096
CACHE_BYTES = 128 * 1024
CACHE_ENTRY_BYTES = 1024
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A dict bounded by entry count and by the summed size of its keys, oldest out first.

    Reads are plain ``dict`` lookups (the hot path); writes go through :meth:`put`.
    """

    def __init__(
        self,
        size: Callable[[K], int],
        *,
        max_entries: int = CACHE_ENTRIES,
        max_bytes: int = CACHE_BYTES,
        max_entry_bytes: int = CACHE_ENTRY_BYTES,
    ) -> None:
        super().__init__()
        self._size = size
        self._sizes: dict[K, int] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.bytes = 0

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` under ``key`` unless the key is too long; evict the oldest."""
        if key in self:
            return
        size = self._size(key)
        if size > self.max_entry_bytes:
            return
        while self and (len(self) >= self.max_entries or self.bytes + size > self.max_bytes):
            oldest = next(iter(self))
            del self[oldest]
            self.bytes -= self._sizes.pop(oldest)
        self[key] = value
        self._sizes[key] = size
        self.bytes += size

    def clear(self) -> None:
        super().clear()
        self._sizes.clear()
        self.bytes = 0


def words_size(words: tuple[tuple[str, ...], bool]) -> int:
    """Size of a resolved-path key: its characters and one separator per word."""
    return sum(len(word) + 1 for word in words[0])


_header_cache: BoundedCache[str, Header] = BoundedCache(len)


def parse_header(text: str) -> Header:
    """Split a typed header; raise -102 (malformed) or -112 (mnemonic over 12 characters)."""
    cached = _header_cache.get(text)
    if cached is not None:
        return cached
    if not _HEADER.fullmatch(text):
        raise ScpiError(SYNTAX_ERROR, f"bad header {text[:40]!r}")
    query = text.endswith("?")
    body = text[:-1] if query else text
    absolute = body.startswith(":")
    if absolute:
        body = body[1:]
    words = tuple(body.upper().split(":"))
    for word in words:
        if len(word.lstrip("*")) > MAX_MNEMONIC:
            raise ScpiError(MNEMONIC_TOO_LONG, word[:40])
    header = Header(words, query, absolute, body.startswith("*"))
    _header_cache.put(text, header)
    return header


# ---- patterns --------------------------------------------------------------------------

_NODE = re.compile(
    r"\[:?(?P<opt>\*?[A-Za-z][A-Za-z0-9_]*)(?P<osfx>\[<n>\]|<n>)?:?\]"
    r"|:?(?P<req>\*?[A-Za-z][A-Za-z0-9_]*)(?P<rsfx>\[<n>\]|<n>)?"
)
_SHORT = re.compile(r"\*?[A-Z0-9]*")


@dataclass(frozen=True, slots=True)
class Node:
    """One mnemonic of a pattern: its short and long forms, upper-cased."""

    short: str
    long: str
    optional: bool
    suffix: bool

    def match(self, word: str) -> int | None:
        """The numeric suffix ``word`` carries (1 when absent) if it names this node."""
        if word == self.short or word == self.long:
            return 1
        if not self.suffix:
            return None
        base = word.rstrip("0123456789")
        if base == word or (base != self.short and base != self.long):
            return None
        return int(word[len(base) :])


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled manual-style pattern; :meth:`match` gives the suffixes of a typed path."""

    text: str
    nodes: tuple[Node, ...]
    query_only: bool

    @property
    def common(self) -> bool:
        return self.nodes[0].long.startswith("*")

    @property
    def has_suffix(self) -> bool:
        return any(node.suffix for node in self.nodes)

    def match(self, words: tuple[str, ...]) -> tuple[int, ...] | None:
        """Suffixes of the suffix-bearing nodes if ``words`` names this pattern, else None."""
        return _match(self.nodes, 0, words, 0)


def _match(
    nodes: tuple[Node, ...], i: int, words: tuple[str, ...], j: int
) -> tuple[int, ...] | None:
    if i == len(nodes):
        return () if j == len(words) else None
    node = nodes[i]
    if j < len(words):
        value = node.match(words[j])
        if value is not None:
            rest = _match(nodes, i + 1, words, j + 1)
            if rest is not None:
                return (value, *rest) if node.suffix else rest
    if node.optional:
        rest = _match(nodes, i + 1, words, j)
        if rest is not None:
            return (1, *rest) if node.suffix else rest
    return None


def compile_pattern(text: str) -> Pattern:
    """Compile ``[SOURce:]VOLTage[:LEVel]``-style text; ValueError names a bad pattern."""
    body = text.strip()
    query_only = body.endswith("?")
    if query_only:
        body = body[:-1]
    nodes: list[Node] = []
    pos = 0
    while pos < len(body):
        found = _NODE.match(body, pos)
        if found is None or found.end() == pos:
            raise ValueError(f"SCPI pattern {text!r}: cannot read it at column {pos}")
        name = found.group("opt") or found.group("req")
        suffix = bool(found.group("osfx") or found.group("rsfx"))
        short_match = _SHORT.match(name)
        short = short_match.group(0) if short_match else ""
        if not short.lstrip("*"):
            raise ValueError(f"SCPI pattern {text!r}: node {name!r} has no upper-case short form")
        nodes.append(Node(short.upper(), name.upper(), found.group("opt") is not None, suffix))
        pos = found.end()
    if not nodes or all(node.optional for node in nodes):
        raise ValueError(f"SCPI pattern {text!r}: needs at least one required node")
    return Pattern(text, tuple(nodes), query_only)


# ---- splitting messages ----------------------------------------------------------------


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    if '"' not in text and "'" not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
    if quote:
        raise ScpiError(INVALID_STRING_DATA, "unterminated string")
    parts.append(text[start:])
    return parts


def split_units(message: str) -> list[str]:
    """Split a program message at ``;`` (not inside strings); drop a trailing empty unit."""
    units = _split_outside_quotes(message, ";")
    if len(units) > 1 and not units[-1].strip():
        units.pop()
    return units


def split_unit(unit: str) -> tuple[str, str]:
    """Header and parameter text of one message unit (either may be empty)."""
    text = unit.strip()
    for index, char in enumerate(text):
        if char in " \t":
            return text[:index], text[index + 1 :].strip()
    return text, ""


def split_params(text: str) -> list[str]:
    """Parameter tokens, stripped; an empty token is a syntax error."""
    if not text:
        return []
    tokens = [token.strip() for token in _split_outside_quotes(text, ",")]
    if any(not token for token in tokens):
        raise ScpiError(SYNTAX_ERROR, "empty parameter")
    return tokens


# ---- parameters ------------------------------------------------------------------------

Bound = float | Callable[[Any], float]
"""A limit: a number, or a function of the device (``lambda dev: 1.05 * dev.voltage``)."""

_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z/%]*)")
MAX_NUMBER_CHARS = 256
"""IEEE 488.2 asks devices to take mantissas of up to 255 digits; longer is -124."""
_NONDECIMAL = re.compile(r"#([HhQqBb])([0-9A-Fa-f]+)")
_BASES = {"H": 16, "Q": 8, "B": 2}
_PREFIXES = {
    "": 1.0,
    "EX": 1e18,
    "PE": 1e15,
    "T": 1e12,
    "G": 1e9,
    "MA": 1e6,
    "K": 1e3,
    "M": 1e-3,
    "U": 1e-6,
    "N": 1e-9,
    "P": 1e-12,
    "F": 1e-15,
}
_SPECIAL = {"MIN": "MIN", "MINIMUM": "MIN", "MAX": "MAX", "MAXIMUM": "MAX"}
_SPECIAL.update({"DEF": "DEF", "DEFAULT": "DEF"})


class Param(Protocol):
    """Parses one parameter token for a device; raises :class:`ScpiError` when it is wrong."""

    @property
    def optional(self) -> bool:
        """A missing optional parameter reaches the handler as None."""
        ...

    def parse(self, token: str, device: Any) -> Any: ...


def _resolve(bound: Bound | None, device: Any) -> float | None:
    if bound is None:
        return None
    if isinstance(bound, int | float):
        return float(bound)
    return float(bound(device))


def parse_decimal(token: str) -> tuple[float, str]:
    """A decimal (NR1/NR2/NR3) or ``#H``/``#Q``/``#B`` number and its suffix text."""
    if len(token) > MAX_NUMBER_CHARS:
        raise ScpiError(TOO_MANY_DIGITS, f"{len(token)} characters")
    found = _NUMBER.fullmatch(token)
    if found is not None:
        value = float(found.group(1))
        if math.isinf(value):
            raise ScpiError(EXPONENT_TOO_LARGE, token[:40])
        return value, found.group(2)
    nondecimal = _NONDECIMAL.fullmatch(token)
    if nondecimal is not None:
        try:
            return float(int(nondecimal.group(2), _BASES[nondecimal.group(1).upper()])), ""
        except ValueError:
            raise ScpiError(INVALID_CHARACTER_IN_NUMBER, token[:40]) from None
    if token[:1] in "\"'":
        raise ScpiError(DATA_TYPE_ERROR, f"string {token[:40]} where a number is expected")
    if token[:1].isdigit() or token[:1] in "+-.":
        raise ScpiError(INVALID_CHARACTER_IN_NUMBER, token[:40])
    raise ScpiError(DATA_TYPE_ERROR, f"{token[:40]!r} is not a number")


@dataclass(frozen=True)
class Number:
    """A numeric parameter: NR1/NR2/NR3, ``MIN``/``MAX``/``DEF``, SI-prefixed unit suffix.

    ``unit`` is the base unit (``"V"``, ``"A"``, ``"W"``, ``"S"``); a suffix must name it,
    with an optional SI prefix (``mV``, ``kW``, ``uA``; SCPI is case-insensitive, so ``M``
    is milli and ``MA`` is mega except in ``MA`` = milliampere). Out of ``[min, max]``
    raises -222 unless ``clamp`` (for instruments that really clamp). ``integer`` rounds
    to the nearest integer as IEEE 488.2 asks of NR1-only parameters.
    """

    unit: str = ""
    min: Bound | None = None
    max: Bound | None = None
    default: float | None = None
    clamp: bool = False
    integer: bool = False
    optional: bool = False

    def __post_init__(self) -> None:
        if self.default is not None:
            object.__setattr__(self, "default", float(self.default))

    def bound(self, which: str, device: Any) -> float:
        """``MIN``, ``MAX`` or ``DEF`` for this parameter on ``device``; -224 if undeclared."""
        value = {"MIN": self.min, "MAX": self.max, "DEF": self.default}[which]
        resolved = _resolve(value, device)
        if resolved is None:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"{which} is not defined here")
        return float(round(resolved)) if self.integer else resolved

    def parse(self, token: str, device: Any) -> float:
        special = _SPECIAL.get(token.upper())
        if special is not None:
            return self.bound(special, device)
        value, suffix = parse_decimal(token)
        if suffix:
            value *= self._multiplier(suffix)
        if self.integer:
            value = float(round(value))
        low = _resolve(self.min, device)
        high = _resolve(self.max, device)
        if low is not None and value < low:
            if not self.clamp:
                raise ScpiError(DATA_OUT_OF_RANGE, f"{token} below {low:g}{self.unit}")
            value = low
        if high is not None and value > high:
            if not self.clamp:
                raise ScpiError(DATA_OUT_OF_RANGE, f"{token} above {high:g}{self.unit}")
            value = high
        return value

    def _multiplier(self, suffix: str) -> float:
        if not self.unit:
            raise ScpiError(SUFFIX_NOT_ALLOWED, suffix[:20])
        text = suffix.upper()
        unit = self.unit.upper()
        if not text.endswith(unit):
            raise ScpiError(INVALID_SUFFIX, f"{suffix[:20]} (expected {self.unit})")
        prefix = text[: -len(unit)]
        factor = _PREFIXES.get(prefix)
        if factor is None:
            raise ScpiError(INVALID_SUFFIX, f"{suffix[:20]} (expected {self.unit})")
        return factor


@dataclass(frozen=True)
class Boolean:
    """``ON``/``OFF`` or a number (non-zero after rounding is ON); parses to bool."""

    default: bool | None = None
    optional: bool = False

    def parse(self, token: str, device: Any) -> bool:
        word = token.upper()
        if word == "ON":
            return True
        if word == "OFF":
            return False
        if word.isalpha():
            raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"{token[:40]} is not ON or OFF")
        value, suffix = parse_decimal(token)
        if suffix:
            raise ScpiError(SUFFIX_NOT_ALLOWED, suffix[:20])
        return round(value) != 0


class Choice:
    """Character data from a list written like the manual (``FIXed``, ``LIST``).

    Accepts the short or long form in any case and parses to the short form upper-cased
    (``"FIX"``), which is how instruments answer the query.
    """

    def __init__(self, *options: str, default: str | None = None, optional: bool = False):
        if not options:
            raise ValueError("a SCPI Choice needs at least one option")
        self.optional = optional
        self._lookup: dict[str, str] = {}
        for option in options:
            found = _SHORT.match(option)
            short = (found.group(0) if found else "") or option.upper()
            self._lookup[short.upper()] = short.upper()
            self._lookup[option.upper()] = short.upper()
        self.options = tuple(options)
        self.default = None if default is None else self.parse(default, None)

    def parse(self, token: str, device: Any) -> str:
        found = self._lookup.get(token.upper())
        if found is not None:
            return found
        if token[:1] in "\"'" or token[:1].isdigit() or token[:1] in "+-.#":
            raise ScpiError(
                DATA_TYPE_ERROR, f"{token[:40]} where one of {self.options} is expected"
            )
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"{token[:40]} is not one of {self.options}")


@dataclass(frozen=True)
class String:
    """A quoted string (``"..."`` or ``'...'``, doubled quote inside); parses to str."""

    optional: bool = False

    def parse(self, token: str, device: Any) -> str:
        quote = token[:1]
        if quote not in ("'", '"') or len(token) < 2 or token[-1] != quote:
            raise ScpiError(DATA_TYPE_ERROR, f"{token[:40]} is not a quoted string")
        inner = token[1:-1]
        if inner.replace(quote * 2, "").count(quote):
            raise ScpiError(INVALID_STRING_DATA, token[:40])
        return inner.replace(quote * 2, quote)


@dataclass(frozen=True)
class Raw:
    """The token as typed (for models that parse something unusual themselves)."""

    optional: bool = False

    def parse(self, token: str, device: Any) -> str:
        return token


@dataclass(frozen=True)
class BoundQuery:
    """The optional ``MIN``/``MAX``/``DEF`` after a setting's query (``VOLT? MAX``)."""

    optional: bool = True

    def parse(self, token: str, device: Any) -> str:
        special = _SPECIAL.get(token.upper())
        if special is None:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"{token[:40]} is not MIN, MAX or DEF")
        return special
