"""The report's page geometry, colours, paragraph styles and table helpers.

Shared by every part of the PDF (:mod:`reports.pdf` and the parts it calls, such as
:mod:`reports.community_pdf`), so that all tables and paragraphs look alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Table, TableStyle

from hil.records import ABORTED, INTERRUPTED
from reports.fonts import MONO, SANS, SANS_BOLD, markup

PAGE_W, PAGE_H = A4
MARGIN_X = 16 * mm
MARGIN_TOP = 26 * mm
MARGIN_BOTTOM = 16 * mm
FRAME_W = PAGE_W - 2 * MARGIN_X
FRAME_H = PAGE_H - MARGIN_TOP - MARGIN_BOTTOM

VERDICT_COLOURS: dict[str, str] = {
    "PASS": "#1B7F3B",
    "FAIL": "#C62828",
    "ERROR": "#E65100",
    "SAFETY TRIP": "#6A1B9A",
    "SKIPPED": "#757575",
    ABORTED: "#8E0000",
    INTERRUPTED: "#AD1457",
    "UNKNOWN": "#5D4037",
    "NO TESTS": "#757575",
}
FAIL_ROW = colors.HexColor("#FDE0DC")
WARN_ROW = colors.HexColor("#FFF4D6")
HEADER_ROW = colors.HexColor("#E6E9EE")
GRID = colors.HexColor("#B0B7C0")


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, "#37474F")


def fmt(value: float | None, digits: int = 6) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


# -- styles -------------------------------------------------------------------------------------


def style(name: str, size: float, *, bold: bool = False, **extra: Any) -> ParagraphStyle:
    return ParagraphStyle(
        name,
        fontName=SANS_BOLD if bold else SANS,
        fontSize=size,
        leading=size * 1.25,
        **extra,
    )


class Styles:
    """The report's paragraph styles."""

    def __init__(self) -> None:
        self.title = style("title", 24, bold=True, spaceAfter=4)
        self.subtitle = style("subtitle", 13, spaceAfter=2, textColor=colors.HexColor("#37474F"))
        self.h1 = style("h1", 15, bold=True, spaceBefore=4, spaceAfter=6)
        self.h2 = style("h2", 12, bold=True, spaceBefore=8, spaceAfter=4)
        self.h3 = style("h3", 9.5, bold=True, spaceBefore=6, spaceAfter=3)
        self.body = style("body", 9, spaceAfter=4)
        self.small = style("small", 7.5, spaceAfter=2)
        self.cell = style("cell", 7.5)
        self.cell_bold = style("cell_bold", 7.5, bold=True)
        self.verdict = style("verdict", 30, bold=True, alignment=TA_CENTER, textColor=colors.white)
        self.verdict.leading = 36
        self.mono = ParagraphStyle("mono", fontName=MONO, fontSize=6.8, leading=8.2)


def paragraph(value: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(markup(value), style)


def chip(verdict: str) -> str:
    """Paragraph markup of a verdict in its colour, bold."""
    return f'<font color="{verdict_colour(verdict)}"><b>{markup(verdict)}</b></font>'


def table(
    styles: Styles,
    header: Sequence[str],
    rows: Sequence[Sequence[str | Paragraph]],
    widths: Sequence[float],
    *,
    shade: Iterable[tuple[int, colors.Color]] = (),
) -> Table:
    """A table of paragraph cells with a repeated header; ``shade`` colours rows."""
    data: list[list[Paragraph]] = [[paragraph(h, styles.cell_bold) for h in header]]
    for row in rows:
        data.append([c if isinstance(c, Paragraph) else paragraph(c, styles.cell) for c in row])
    table = Table(data, colWidths=list(widths), repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.25, GRID),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_ROW),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    commands.extend(("BACKGROUND", (0, i + 1), (-1, i + 1), c) for i, c in shade)
    table.setStyle(TableStyle(commands))
    return table


def key_values(styles: Styles, rows: Sequence[tuple[str, str]]) -> Table:
    data = [[paragraph(k, styles.cell_bold), paragraph(v, styles.cell)] for k, v in rows]
    table = Table(data, colWidths=[38 * mm, FRAME_W - 38 * mm])
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table
