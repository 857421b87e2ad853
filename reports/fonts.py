"""Fonts of the report, so that Japanese (and other CJK) unit names print.

Latin text uses the PDF base fonts (Helvetica, Courier), which reportlab completes with
Symbol and ZapfDingbats for arrows, Greek and maths signs. Characters none of those can
encode go to a CJK font: a Japanese TrueType font embedded in the PDF when one is found on
this machine (``HIL_REPORT_CJK_FONT`` names one explicitly), otherwise reportlab's CID font
``HeiseiKakuGo-W5`` (Adobe-Japan1, nothing to download, not embedded: the PDF viewer
supplies the glyphs, as Acrobat and poppler with a Japanese font do).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

log = logging.getLogger(__name__)

SANS = "Helvetica"
SANS_BOLD = "Helvetica-Bold"
MONO = "Courier"
CID_FONT = "HeiseiKakuGo-W5"
EMBEDDED_CJK = "ReportCJK"
ENV_FONT = "HIL_REPORT_CJK_FONT"

#: Japanese TrueType fonts that Debian/Ubuntu packages install (first found wins).
CANDIDATE_FONTS = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/vlgothic/VL-Gothic-Regular.ttf",
    "/usr/share/fonts/truetype/takao-gothic/TakaoGothic.ttf",
)

#: Encodings of the base font and of reportlab's substitution fonts (Symbol, ZapfDingbats).
_BASE_ENCODINGS = ("cp1252", "SymbolEncoding", "ZapfDingbatsEncoding")


@dataclass(frozen=True)
class ReportFonts:
    """The CJK font in use and where it comes from (printed in the report's appendix)."""

    cjk: str
    source: str


def _try_embed(path: Path) -> bool:
    try:
        pdfmetrics.registerFont(TTFont(EMBEDDED_CJK, str(path)))
    except (TTFError, OSError) as exc:
        log.warning("CJK font %s cannot be embedded: %s", path, exc)
        return False
    return True


@functools.cache
def report_fonts() -> ReportFonts:
    """Register the report's fonts once and say which CJK font is used."""
    chosen = os.environ.get(ENV_FONT)
    candidates = [chosen] if chosen else list(CANDIDATE_FONTS)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and _try_embed(path):
            return ReportFonts(EMBEDDED_CJK, f"{path.name} (embedded)")
    pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
    return ReportFonts(CID_FONT, f"{CID_FONT} (CID font, supplied by the PDF viewer)")


@functools.lru_cache(maxsize=4096)
def needs_cjk(char: str) -> bool:
    """True if neither the base fonts nor their substitutes can print ``char``."""
    for encoding in _BASE_ENCODINGS:
        try:
            char.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            continue
        return False
    return True


def runs(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into runs of (needs the CJK font, characters)."""
    out: list[tuple[bool, str]] = []
    for char in text:
        cjk = needs_cjk(char)
        if out and out[-1][0] == cjk:
            out[-1] = (cjk, out[-1][1] + char)
        else:
            out.append((cjk, char))
    return out


def markup(text: str) -> str:
    """``text`` as reportlab paragraph markup: escaped, CJK runs in the CJK font."""
    if text.isascii():
        return escape(text)
    font = report_fonts().cjk
    return "".join(
        f'<font name="{font}">{escape(part)}</font>' if cjk else escape(part)
        for cjk, part in runs(text)
    )


def string_width(text: str, font: str, size: float) -> float:
    """Width in points of ``text`` drawn with :func:`draw_string` in ``font``."""
    cjk = report_fonts().cjk
    return sum(
        float(pdfmetrics.stringWidth(part, cjk if is_cjk else font, size))
        for is_cjk, part in runs(text)
    )


def draw_string(canvas: Canvas, x: float, y: float, text: str, font: str, size: float) -> float:
    """Draw ``text`` at (x, y) on a reportlab canvas, CJK runs in the CJK font; returns the
    width drawn."""
    cjk = report_fonts().cjk
    start = x
    for is_cjk, part in runs(text):
        name = cjk if is_cjk else font
        canvas.setFont(name, size)
        canvas.drawString(x, y, part)
        x += float(pdfmetrics.stringWidth(part, name, size))
    return x - start
