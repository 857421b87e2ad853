"""What a report PDF says, page by page, without poppler: for checks in tests and tools.

Reads the PDFs this package writes (reportlab: page content streams encoded
ASCII85 + Flate, text drawn with ``Tj`` from literal strings) and returns, for each page,
the bytes of every literal string drawn on it, concatenated. Strings in the base fonts
are cp1252, in the CID font UTF-16BE; :func:`page_strings` keeps the bytes so that a check
can look for either. Pages are the content streams that carry the footer
``page N of M``, in page order. Not a general PDF parser.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_FOOTER = re.compile(rb"page (\d+) of (\d+)")
_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("f"): b"\f",
}


def _decode(body: bytes) -> bytes | None:
    data = body.strip()
    if data.endswith(b"~>"):
        try:
            data = base64.a85decode(data[:-2])
        except (ValueError, binascii.Error):
            return None
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data


def literal_strings(content: bytes) -> list[bytes]:
    """The literal ``( … )`` strings of a content stream, unescaped."""
    out: list[bytes] = []
    i, n = 0, len(content)
    while i < n:
        if content[i] != ord("("):
            i += 1
            continue
        depth, i, buf = 1, i + 1, bytearray()
        while i < n and depth:
            c = content[i]
            if c == ord("\\") and i + 1 < n:
                nxt = content[i + 1]
                if nxt in _ESCAPES:
                    buf += _ESCAPES[nxt]
                    i += 2
                elif ord("0") <= nxt <= ord("7"):
                    digits = content[i + 1 : i + 4]
                    octal = re.match(rb"[0-7]{1,3}", digits)
                    assert octal is not None
                    buf.append(int(octal.group(), 8) & 0xFF)
                    i += 1 + len(octal.group())
                else:
                    buf.append(nxt)
                    i += 2
                continue
            if c == ord("("):
                depth += 1
            elif c == ord(")"):
                depth -= 1
                if not depth:
                    i += 1
                    break
            buf.append(c)
            i += 1
        out.append(bytes(buf))
    return out


def page_strings(pdf: bytes) -> list[bytes]:
    """Per page (in order), every literal string drawn on it, joined by newlines."""
    pages: dict[int, bytes] = {}
    for match in _STREAM.finditer(pdf):
        content = _decode(match.group(1))
        if content is None or b"Tj" not in content:
            continue
        strings = literal_strings(content)
        joined = b"\n".join(strings)
        footer = _FOOTER.search(joined)
        if footer is not None:
            pages[int(footer.group(1))] = joined
    return [pages[k] for k in sorted(pages)]


def page_texts(pdf: bytes) -> list[str]:
    """Per page, the strings drawn in the base fonts as text (CID strings come out as
    mojibake; look for those with :func:`page_strings`)."""
    return [page.decode("cp1252", errors="replace") for page in page_strings(pdf)]
