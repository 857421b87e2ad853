"""APIS's JSON: standard JSON plus ``//`` and ``/* */`` comments, as APIS's own files carry.

APIS (Sony CSL's apis-main) reads ``scenario.json`` and ``policy.json`` with a parser that
accepts comments, and its sample files use them (in Japanese). :func:`strip_comments`
blanks every comment that lies outside a string with spaces, keeping every newline, so
that the standard ``json`` parser then reports errors at the line and column of the
original text. :func:`load_apis_json` parses such text; objects come back as
:class:`JsonObject` (a ``dict``) that also remembers which keys were written twice (the
last one wins, as in APIS), so a reader can refuse a duplicated time slot.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from hil.errors import ConfigError

#: A path of keys (and array indices) into a JSON document.
KeyPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Deepest nesting of arrays and objects accepted. APIS files need four; Python's parser
#: recurses once per level (a RecursionError near 1 000), so deeper text is refused first.
MAX_NESTING = 64
#: Longest integer accepted (digits). APIS numbers are milliseconds, watt-hours and
#: amperes; Python refuses to convert more than 4 300 digits with a bare ValueError.
MAX_INT_DIGITS = 30


def json_key_path(path: KeyPath) -> str:
    """``("00:00:00-12:00:00", "request", "short")`` → ``"00:00:00-12:00:00".request.short``;
    keys that are not plain identifiers are quoted, indices are ``[i]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _PLAIN_KEY.match(part) else json.dumps(part, ensure_ascii=False)
        out += f".{text}" if out else text
    return out or "(top level)"


class JsonObject(dict[str, Any]):
    """A parsed JSON object; ``duplicates`` names keys that appeared more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject()
    seen: list[str] = []
    for key, value in pairs:
        if key in obj and key not in seen:
            seen.append(key)
        obj[key] = value
    if seen:
        obj.duplicates = tuple(seen)
    return obj


def strip_comments(text: str, source: str = "<json>") -> str:
    """``text`` with every comment outside a string replaced by spaces (newlines kept).

    Raises ``ConfigError`` for a block comment that is never closed (naming its line).
    """
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            out.append(c)
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise ConfigError(f"{source}:{line}: a /* comment is never closed with */")
            block = text[i : end + 2]
            out.append("".join(ch if ch == "\n" else " " for ch in block))
            i = end + 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _check_nesting(text: str, source: str) -> None:
    """Refuse text (comments already blanked) that nests deeper than ``MAX_NESTING``."""
    depth, in_string, escaped = 0, False, False
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, i) + 1
                raise ConfigError(
                    f"{source}:{line}: arrays and objects nested more than {MAX_NESTING} "
                    f"deep; allowed: at most {MAX_NESTING} levels"
                )
        elif c in "]}":
            depth -= 1


def load_apis_json(text: str, source: str = "<json>") -> Any:
    """Parse APIS JSON text (comments allowed); ``ConfigError`` names line and column.

    ``NaN`` and ``Infinity`` are refused, as standard JSON (and APIS) refuses them; so are
    nesting deeper than ``MAX_NESTING`` and integers longer than ``MAX_INT_DIGITS``."""

    def no_constant(name: str) -> Any:
        raise ConfigError(f"{source}: {name} is not a JSON number")

    plain = strip_comments(text, source)
    _check_nesting(plain, source)

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            line = plain.count("\n", 0, max(plain.find(digits), 0)) + 1
            raise ConfigError(
                f"{source}:{line}: an integer of {len(digits.lstrip('-'))} digits; "
                f"allowed: at most {MAX_INT_DIGITS} digits"
            )
        return int(digits)

    def real(digits: str) -> float:
        value = float(digits)
        if not math.isfinite(value):
            line = plain.count("\n", 0, max(plain.find(digits), 0)) + 1
            raise ConfigError(f"{source}:{line}: {digits} overflows a float; allowed: finite")
        return value

    try:
        return json.loads(
            plain,
            object_pairs_hook=_object,
            parse_constant=no_constant,
            parse_int=integer,
            parse_float=real,
        )
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def read_apis_json(path: str | Path) -> Any:
    """Read and parse an APIS JSON file (UTF-8, comments allowed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc}") from None
    return load_apis_json(text, str(path))
