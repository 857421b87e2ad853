"""Typed, line-aware reading of TOML configuration files.

``tomllib`` parses, but forgets where each key was written. ``LineLocator`` scans the
(already valid) text once and maps every table header and key to its line, so that a schema
error can say ``bench.toml:42: units[2].instruments[0].model: …``. ``Table`` wraps one parsed
table: typed getters check type, finiteness and range, remember which keys the schema knows,
and ``finish()`` refuses every key the schema did not ask for, so a typo never passes
silently. Every error is a ``ConfigError`` of the form
``file:line: key.path: problem; allowed: …``.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from hil.errors import ConfigError

PathPart = str | int
KeyPath = tuple[PathPart, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: Deepest nesting of arrays and inline tables a configuration value may have. A bench
#: file needs three; ``tomllib`` recurses once per level and dies of a RecursionError
#: somewhere past 300, so deeper text is refused before it is parsed.
MAX_NESTING = 32
_DECODE_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def format_key_path(path: KeyPath) -> str:
    """``("units", 2, "model")`` → ``units[2].model``; quotes keys that are not bare."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out or "(top level)"


def _split_dotted_key(text: str) -> list[str]:
    """Split a TOML key (``a."b.c".d``) into its parts; whitespace around dots is allowed."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] in "\"'":
            quote = text[i]
            j = i + 1
            buf = []
            while j < n and text[j] != quote:
                if quote == '"' and text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ". \t":
                j += 1
            parts.append(text[i:j])
            i = j
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
    return parts


class _ValueScanner:
    """Follows strings, arrays and inline tables across lines, so continuation lines of a
    multi-line value are never mistaken for new keys."""

    def __init__(self) -> None:
        self.string: str | None = None  # the open string delimiter, if any
        self.depth = 0  # open [ and { outside strings
        self.deepest = 0  # the most ever open at once

    @property
    def idle(self) -> bool:
        return self.string is None and self.depth == 0

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if self.string is not None:
                delim = self.string
                if delim in ('"', '"""') and ch == "\\":
                    i += 2
                    continue
                if text.startswith(delim, i):
                    self.string = None
                    i += len(delim)
                    continue
                i += 1
                continue
            if ch == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.string = text[i : i + 3]
                i += 3
                continue
            if ch in "\"'":
                self.string = ch
            elif ch in "[{":
                self.depth += 1
                self.deepest = max(self.deepest, self.depth)
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
            i += 1
        if self.string in ('"', "'"):  # single-line strings never span lines
            self.string = None


def _find_unquoted(text: str, target: str) -> int:
    """Index of the first ``target`` character outside quotes, or -1."""
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == target:
            return i
    return -1


def _too_deep(text: str) -> int | None:
    """The first line where a value nests more than ``MAX_NESTING`` arrays or inline
    tables, or None. Table headers (``[a.b]``, ``[[units]]``) are not values."""
    scanner = _ValueScanner()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if scanner.idle:
            line = raw.strip()
            if line.startswith("["):
                continue
            eq = _find_unquoted(line, "=")
            scanner.feed(line[eq + 1 :] if eq >= 0 else line)
        else:
            scanner.feed(raw)
        if scanner.deepest > MAX_NESTING:
            return lineno
    return None


class LineLocator:
    """Maps key paths of a valid TOML text to the line where each was written."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}  # array-of-tables path -> last index
        self._scan(text)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or of its longest prefix that was written in the file."""
        for n in range(len(path), 0, -1):
            line = self._lines.get(path[:n])
            if line is not None:
                return line
        return None

    def _resolve(self, keys: Sequence[str]) -> KeyPath:
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            if path in self._arrays:
                path = (*path, self._arrays[path])
        return path

    def _scan(self, text: str) -> None:
        scanner = _ValueScanner()
        current: KeyPath = ()
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if not scanner.idle:
                scanner.feed(raw)
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                end = _find_unquoted(line, "]")
                keys = _split_dotted_key(line[2:end])
                parent = self._resolve(keys[:-1])
                array = (*parent, keys[-1])
                index = self._arrays.get(array, -1) + 1
                self._arrays[array] = index
                current = (*array, index)
                self._lines.setdefault(array, lineno)
                self._lines[current] = lineno
            elif line.startswith("["):
                end = _find_unquoted(line, "]")
                current = self._resolve(_split_dotted_key(line[1:end]))
                self._lines.setdefault(current, lineno)
            else:
                eq = _find_unquoted(line, "=")
                if eq < 0:
                    continue
                keys = _split_dotted_key(line[:eq])
                for n in range(1, len(keys) + 1):
                    self._lines.setdefault((*current, *keys[:n]), lineno)
                self._record_inline(line[eq + 1 :], (*current, *keys), lineno)
                scanner.feed(line[eq + 1 :])

    def _record_inline(self, value: str, path: KeyPath, lineno: int) -> None:
        """Record keys of a one-line inline table (``settings = { device_id = 1 }``)."""
        value = value.strip()
        if not (value.startswith("{") and value.rstrip().endswith("}")):
            return
        for item in value[1:-1].split(","):
            eq = _find_unquoted(item, "=")
            if eq > 0:
                keys = _split_dotted_key(item[:eq])
                self._lines.setdefault((*path, *keys), lineno)


class TomlSource:
    """One configuration file: its name for messages, its parsed data and its locator."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.text = text
        deep = _too_deep(text)
        if deep is not None:
            raise ConfigError(
                f"{name}:{deep}: a value nests arrays or inline tables more than "
                f"{MAX_NESTING} deep; allowed: at most {MAX_NESTING} levels"
            )
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self._syntax_error(exc) from None
        self.locator = LineLocator(text)

    @classmethod
    def from_path(cls, path: Path) -> tuple[TomlSource, bytes]:
        """Read ``path``; returns the source and the raw bytes (for hashing)."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the file ({exc.strerror or exc}); "
                "allowed: a readable TOML file"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: byte {exc.start} is not UTF-8; allowed: a UTF-8 encoded TOML file"
            ) from None
        return cls(text, str(path)), raw

    def _syntax_error(self, exc: tomllib.TOMLDecodeError) -> ConfigError:
        message = str(exc)
        match = _DECODE_POSITION.search(message)
        where = f"{self.name}:{match.group(1)}:{match.group(2)}" if match else self.name
        problem = _DECODE_POSITION.sub("", message).strip()
        return ConfigError(f"{where}: TOML syntax error: {problem}; allowed: TOML 1.0 syntax")

    def error(self, path: KeyPath, problem: str, allowed: str) -> ConfigError:
        """A ``ConfigError`` naming file, line, key path, the problem and what is allowed."""
        line = self.locator.line_of(path)
        where = f"{self.name}:{line}" if line is not None else self.name
        return ConfigError(f"{where}: {format_key_path(path)}: {problem}; allowed: {allowed}")

    def root(self) -> Table:
        return Table(self, self.data, ())


_MISSING: Final = object()


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _range_text(
    minimum: float | None, maximum: float | None, min_open: bool, max_open: bool
) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if min_open else '≥'} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if max_open else '≤'} {maximum:g}")
    return " and ".join(parts)


class Table:
    """One parsed TOML table with typed, checked getters and an unknown-key check."""

    def __init__(self, source: TomlSource, data: Mapping[str, Any], path: KeyPath) -> None:
        self.source = source
        self.data = data
        self.path = path
        self._known: set[str] = set()
        self._forbidden: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------------------
    def key_path(self, key: str | None = None) -> KeyPath:
        return self.path if key is None else (*self.path, key)

    def error(self, key: str | None, problem: str, allowed: str) -> ConfigError:
        return self.source.error(self.key_path(key), problem, allowed)

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self.data

    def _get(self, key: str, default: Any, expected: str) -> Any:
        self._known.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            typo = difflib.get_close_matches(key, [k for k in self.data if k not in self._known])
            if typo:  # report the misspelt key where it was written
                raise self.error(typo[0], f"unknown key (did you mean {key!r}?)", expected)
            raise self.error(key, "required key is missing", expected)
        return default

    # -- scalars -------------------------------------------------------------------------
    def number(
        self,
        key: str,
        default: float | object | None = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
    ) -> float | None:
        """A finite number (integers accepted) within the given bounds, or ``default``."""
        bounds = _range_text(minimum, maximum, min_open, max_open)
        expected = f"a finite number {bounds}".strip()
        value = self._get(key, default, expected)
        if key not in self.data:  # the default, which the caller supplies
            return None if value is None else float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_describe(value)}", expected)
        try:
            number = float(value)
        except OverflowError:
            raise self.error(key, f"number {value} is too large", expected) from None
        if not math.isfinite(number):
            raise self.error(key, f"{value!r} is not a finite number", expected)
        too_low = minimum is not None and (number <= minimum if min_open else number < minimum)
        too_high = maximum is not None and (number >= maximum if max_open else number > maximum)
        if too_low or too_high:
            raise self.error(key, f"{number:g} is out of range", expected)
        return number

    def req_number(self, key: str, **bounds: Any) -> float:
        value = self.number(key, _MISSING, **bounds)
        assert value is not None
        return value

    def opt_number(self, key: str, default: float, **bounds: Any) -> float:
        value = self.number(key, default, **bounds)
        assert value is not None
        return value

    def integer(
        self,
        key: str,
        default: int | object = _MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        choices: Sequence[int] | None = None,
    ) -> int:
        """An integer (not a float, not a boolean) within bounds or among ``choices``."""
        if choices is not None:
            expected = "one of " + ", ".join(str(c) for c in choices)
        else:
            bounds = [
                f"≥ {minimum}" if minimum is not None else "",
                f"≤ {maximum}" if maximum is not None else "",
            ]
            expected = f"an integer {' and '.join(b for b in bounds if b)}".strip()
        value = self._get(key, default, expected)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_describe(value)}", expected)
        if choices is not None and value not in choices:
            raise self.error(key, f"{value} is not an accepted value", expected)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.error(key, f"{value} is out of range", expected)
        return value

    def string(
        self,
        key: str,
        default: str | object = _MISSING,
        *,
        choices: Sequence[str] | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
    ) -> str:
        """A string, optionally one of ``choices`` or matching ``pattern``."""
        if choices is not None:
            expected = "one of " + ", ".join(repr(c) for c in choices)
        elif pattern is not None:
            expected = pattern_text or f"a string matching {pattern.pattern}"
        else:
            expected = "a string"
        value = self._get(key, default, expected)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_describe(value)}", expected)
        if choices is not None and value not in choices:
            hint = difflib.get_close_matches(value, list(choices), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.error(key, f"{value!r} is not accepted{suggestion}", expected)
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not accepted", expected)
        return value

    def opt_string(self, key: str) -> str | None:
        if not self.has(key):
            return None
        return self.string(key)

    def opt_date(self, key: str) -> datetime.date | None:
        """A date: a TOML local date (``2027-03-31``) or the same as a string; None if absent."""
        if not self.has(key):
            return None
        value = self.data[key]
        expected = "a date, e.g. 2027-03-31"
        if isinstance(value, datetime.datetime):
            value = value.date()
        if isinstance(value, datetime.date):
            return value
        if isinstance(value, str):
            try:
                return datetime.date.fromisoformat(value)
            except ValueError:
                raise self.error(key, f"{value!r} is not a date", expected) from None
        raise self.error(key, f"expected a date, got {_describe(value)}", expected)

    def boolean(self, key: str, default: bool | object = _MISSING) -> bool:
        value = self._get(key, default, "true or false")
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_describe(value)}", "true, false")
        return value

    def string_list(
        self, key: str, *, pattern: re.Pattern[str] | None = None, pattern_text: str = ""
    ) -> list[str]:
        expected = f"an array of strings{(' (' + pattern_text + ')') if pattern_text else ''}"
        value = self._get(key, [], expected)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected an array of strings, got {_describe(value)}", expected)
        if pattern is not None:
            for item in value:
                if not pattern.fullmatch(item):
                    raise self.error(key, f"{item!r} is not accepted", expected)
        return list(value)

    # -- nested tables -------------------------------------------------------------------
    def table(self, key: str, *, required: bool = False) -> Table | None:
        """The sub-table ``key`` (``[a.key]`` or an inline table), or None if absent."""
        self._known.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "required table is missing", f"a [{key}] table")
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_describe(value)}", f"a [{key}] table")
        return Table(self.source, value, self.key_path(key))

    def tables(self, key: str, *, required: bool = False) -> list[Table]:
        """The array of tables ``key`` (``[[a.key]]``), empty if absent."""
        self._known.add(key)
        expected = f"one or more [[{format_key_path(self.key_path(key))}]] tables"
        if key not in self.data:
            if required:
                raise self.error(key, "required array of tables is missing", expected)
            return []
        value = self.data[key]
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(key, f"expected an array of tables, got {_describe(value)}", expected)
        if required and not value:
            raise self.error(key, "the array is empty", expected)
        return [Table(self.source, v, (*self.key_path(key), i)) for i, v in enumerate(value)]

    def named_tables(self, key: str) -> Iterator[tuple[str, Table]]:
        """Sub-tables keyed by name (``[a.key.NAME]``), in file order."""
        outer = self.table(key)
        if outer is None:
            return
        for name in list(outer.data):
            sub = outer.table(name)
            assert sub is not None
            yield name, sub
        outer.finish()

    # -- unknown keys --------------------------------------------------------------------
    def forbid(self, key: str, reason: str) -> None:
        """Mark ``key`` as known but not applicable here; ``finish`` reports ``reason``."""
        self._forbidden[key] = reason

    def finish(self) -> None:
        """Refuse any key the schema did not ask for (typos must not pass silently)."""
        for key in self.data:
            if key in self._forbidden:
                allowed = ", ".join(sorted(self._known)) or "no keys"
                raise self.error(key, self._forbidden[key], allowed)
            if key not in self._known:
                hint = difflib.get_close_matches(key, sorted(self._known), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                allowed = ", ".join(sorted(self._known)) or "no keys in this table"
                raise self.error(key, f"unknown key{suggestion}", allowed)
