"""The "Community day" part of a test's section in the PDF report.

For each ``community`` line of a test: the with/without-interchange comparison of the
community's energy (utility import, PV generated / used / wasted, load, self-consumption,
and the change, green where interchange helped and red where it did not), the deals
(executed, refused by an interlock, stop reasons), then the SoC chart and the deal timeline
each at the page's width, and a table per unit. What the line lacks is listed as record
problems instead of the part it would have filled.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import CondPageBreak, Flowable, KeepTogether, Paragraph, Spacer

from reports.community import CommunityDay, ComparisonRow, EnergyTotals
from reports.community_plots import (
    CHARGE_COLOUR,
    DISCHARGE_COLOUR,
    LIMIT_COLOUR,
    SOC_COLUMNS,
    SOC_ROWS,
    TIMELINE_ROWS,
    ChartImage,
    deal_timeline,
    soc_chart,
)
from reports.fonts import SANS, SANS_BOLD, draw_string, markup, string_width
from reports.layout import FRAME_H, FRAME_W, VERDICT_COLOURS, Styles, key_values, paragraph, table

log = logging.getLogger(__name__)

#: At most this many record problems of one community line are listed.
MAX_PROBLEMS = 30
BETTER = VERDICT_COLOURS["PASS"]
WORSE = VERDICT_COLOURS["FAIL"]


class ChartFlowable(Flowable):  # type: ignore[misc]
    """A chart at its own size on the page, with its labels drawn in the report's fonts."""

    def __init__(self, chart: ChartImage) -> None:
        super().__init__()
        self.chart = chart
        self.width = chart.width_pt
        self.height = chart.height_pt

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.chart.width_pt, self.chart.height_pt

    def draw(self) -> None:
        chart, canvas = self.chart, self.canv
        image = ImageReader(io.BytesIO(chart.png))
        canvas.drawImage(image, 0, 0, chart.width_pt, chart.height_pt, mask=None)
        canvas.setFillColorRGB(0, 0, 0)
        for label in chart.labels:
            font = SANS_BOLD if label.bold else SANS
            x = label.x * chart.width_pt
            width = string_width(label.text, font, label.size)
            if label.align == "right":
                x -= width
            elif label.align == "centre":
                x -= width / 2
            y = label.y * chart.height_pt - label.size * 0.35
            draw_string(canvas, x, y, label.text, font, label.size)


def _wh(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _signed(value: float, digits: int = 0) -> str:
    return f"{value:+,.{digits}f}"


def _change(row: ComparisonRow) -> str:
    """``-10,475 Wh (-86.6 %)`` or ``+11.6 points``, coloured by whether it helped."""
    if row.change is None:
        return "—"
    if row.unit == "%":
        words = f"{_signed(row.change, 1)} points"
    else:
        words = f"{_signed(row.change)} Wh"
        if row.relative is not None:
            words += f" ({_signed(row.relative * 100.0, 1)} %)"
    if row.better is None:
        return markup(words)
    return f'<font color="{BETTER if row.better else WORSE}"><b>{markup(words)}</b></font>'


def _value(row: ComparisonRow, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} %" if row.unit == "%" else f"{_wh(value)} Wh"


def _clock(day: CommunityDay, seconds: float) -> str:
    hours = float(day.hours(seconds))
    if not day.time_of_day:
        return f"{hours:.3g} h after the start"
    minutes = round(hours * 60.0)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _pair(without: float | None, with_: float | None, scale: float = 1.0) -> str:
    if without is None and with_ is None:
        return "—"
    one = "—" if without is None else f"{without * scale:,.0f}"
    two = "—" if with_ is None else f"{with_ * scale:,.0f}"
    return f"{one} → {two}"


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _which(units: list[str], parts: int) -> str:
    """`` — units C01 to C40`` when a chart shows only some of the units."""
    return f" — units {units[0]} to {units[-1]}" if parts > 1 else ""


def _get(totals: EnergyTotals | None, key: str) -> float | None:
    value: Any = None if totals is None else getattr(totals, key)
    return value if isinstance(value, float) else None


class CommunityPart:
    """Builds the flowables of one community day."""

    def __init__(self, styles: Styles, *, plots: bool = True) -> None:
        self.styles = styles
        self.plots = plots

    def flowables(self, day: CommunityDay) -> list[Flowable]:
        s = self.styles
        head: list[Flowable] = [
            paragraph(f"Community day: {day.name}", s.h3),
            paragraph(self._facts(day), s.small),
            paragraph("Energy of the community, without and with interchange", s.cell_bold),
            self._comparison(day),
            Spacer(1, 2 * mm),
            paragraph("Deals", s.cell_bold),
            self._deals(day),
        ]
        out: list[Flowable] = [KeepTogether(head)]
        out.extend(self._problems(day))
        out.extend(self._charts(day))
        if day.per_unit or day.soc:
            out.append(CondPageBreak(70 * mm))
            out.append(paragraph("Per unit (without → with interchange)", s.h3))
            out.append(self._per_unit(day))
        return out

    def _facts(self, day: CommunityDay) -> str:
        facts = [f"{len(day.units)} units"]
        end = day.end_s
        facts.append(f"{end / 3600.0:.3g} h from {_clock(day, 0.0)}")
        if day.t.size > 1:
            step = float(day.t[1] - day.t[0])
            facts.append(f"SoC sampled every {step:.4g} s ({day.t.size} samples)")
        low, high = day.soc_limits
        if low is not None and high is not None:
            facts.append(f"force-stop limits {low * 100:.4g} % / {high * 100:.4g} %")
        if day.branches:
            facts.append(f"{len(day.branches)} branches")
        return " · ".join(facts)

    def _comparison(self, day: CommunityDay) -> Flowable:
        s = self.styles
        if day.with_interchange is None and day.without_interchange is None:
            return paragraph("The record holds no energy totals: no comparison.", s.small)
        rows = [
            [
                row.quantity,
                _value(row, row.without),
                _value(row, row.with_),
                Paragraph(_change(row), s.cell),
            ]
            for row in day.comparison()
        ]
        header = ["", "without interchange", "with interchange", "change"]
        widths = [34 * mm, 34 * mm, 34 * mm, FRAME_W - 102 * mm]
        return table(s, header, rows, widths)

    def _deals(self, day: CommunityDay) -> Flowable:
        executed = day.executed
        durations = [
            (d.t_stop - d.t_start) / 60.0
            for d in executed
            if d.t_start is not None and d.t_stop is not None
        ]
        rows = [
            (
                "Executed",
                f"{len(executed)} deal(s), {day.energy_exchanged_wh:,.0f} Wh on the bus; "
                f"at most {day.max_concurrent()} at once"
                + (f"; {min(durations):.3g} to {max(durations):.3g} min each" if durations else ""),
            ),
            (
                "Refused by an interlock",
                "not recorded" if day.refused is None else str(day.refused),
            ),
        ]
        if day.not_started:
            rows.append(("Listed, never started", str(day.not_started)))
        if day.negotiations is not None:
            rows.append(("Negotiations", str(day.negotiations)))
        if day.excluded:
            why = "; ".join(f"{unit}: {reason}" for unit, reason in day.excluded.items())
            rows.append(("Excluded from negotiation", why))
        if day.trips:
            rows.append(("Safety trips", "; ".join(day.trips)))
        reasons = " · ".join(f"{why}: {n}" for why, n in day.stop_reasons)
        rows.append(("Stop reasons", reasons or "—"))
        return key_values(self.styles, rows)

    def _problems(self, day: CommunityDay) -> list[Flowable]:
        shown = day.problems[:MAX_PROBLEMS]
        out = [paragraph(f"Record problem: {p}", self.styles.small) for p in shown]
        if len(day.problems) > MAX_PROBLEMS:
            more = len(day.problems) - MAX_PROBLEMS
            out.append(paragraph(f"… and {more} more record problem(s)", self.styles.small))
        return out

    def _charts(self, day: CommunityDay) -> list[Flowable]:
        """The deal timeline (it often fits under the tables), then the SoC chart; a
        community too large for one page gets several of each."""
        if not self.plots:
            text_ = "(deal timeline and SoC chart left out of this report)"
            return [paragraph(text_, self.styles.small)]
        if day.executed:
            timelines = _chunks(day.units, TIMELINE_ROWS)
            out = [self._timeline(day, part, len(timelines)) for part in timelines]
        else:
            out = [paragraph("No deal timeline: no deal was executed.", self.styles.small)]
        with_soc = [u for u in day.units if u in day.soc]
        socs = _chunks(with_soc, SOC_COLUMNS * SOC_ROWS - 1)
        out += [self._soc(day, part, len(socs)) for part in socs]
        if not socs:
            out.append(
                paragraph("No SoC chart: the record holds no SoC series.", self.styles.small)
            )
        return out

    def _timeline(self, day: CommunityDay, units: list[str], parts: int) -> Flowable:
        s = self.styles
        label_pt = max((string_width(u, SANS, 7.0) for u in units), default=20.0)
        timeline = deal_timeline(day, FRAME_W, label_pt, units)
        if timeline is None:
            return paragraph("No deal timeline: no deal was executed.", s.small)
        square = '<font name="ZapfDingbats" color="{}">n</font>'
        caption = (
            f"{square.format(DISCHARGE_COLOUR)} discharging (upper half of the row) · "
            f"{square.format(CHARGE_COLOUR)} charging (lower half) · grey line: joins "
            "the two units of a deal at its start · \N{MULTIPLICATION SIGN} where a deal "
            "ended in a state other than done (scrammed, stopped, failed) · below: the "
            "number of deals running."
        )
        title = f"Deal timeline ({len(day.executed)} deals){_which(units, parts)}"
        return KeepTogether(
            [paragraph(title, s.h3), ChartFlowable(timeline), Paragraph(caption, s.small)]
        )

    def _soc(self, day: CommunityDay, units: list[str], parts: int) -> Flowable:
        s = self.styles
        chart = soc_chart(day, FRAME_W, FRAME_H - 60, units)
        if chart is None:
            return paragraph("No SoC chart: the record holds no SoC sample times.", s.small)
        limits = (
            f'<font color="{LIMIT_COLOUR}">dashed</font>: force-stop limits — they stop a '
            "deal (no unit in a deal may discharge below the lower one or charge above the "
            "upper one), as APIS's do; they do not limit a house's own load, which may take its "
            "battery lower outside deals; "
            if any(x is not None for x in day.soc_limits)
            else ""
        )
        caption = (
            "Each unit's SoC (line, in its branch's colour) over the range of all units "
            f"(grey); {limits}last panel: the community's mean."
        )
        title = f"SoC of every unit{_which(units, parts)}"
        return KeepTogether(
            [paragraph(title, s.h3), ChartFlowable(chart), Paragraph(caption, s.small)]
        )

    def _per_unit(self, day: CommunityDay) -> Flowable:
        s = self.styles
        deals = day.unit_deals()
        rows = []
        for unit in day.units:
            energy = day.per_unit.get(unit)
            before = energy.without_interchange if energy else None
            after = energy.with_interchange if energy else None
            count = deals.get(unit)
            rows.append(
                [
                    unit,
                    day.branch_of(unit) or "—",
                    f"{count.discharged} / {count.charged}" if count else "—",
                    f"{count.sent_wh:,.0f} / {count.received_wh:,.0f}" if count else "—",
                    _pair(_get(before, "utility_wh"), _get(after, "utility_wh")),
                    _pair(_get(before, "pv_wasted_wh"), _get(after, "pv_wasted_wh")),
                    _pair(_get(before, "self_consumption"), _get(after, "self_consumption"), 100.0),
                ]
            )
        header = [
            "unit",
            "branch",
            "deals out / in",
            "Wh sent / received",
            "utility import (Wh)",
            "PV wasted (Wh)",
            "self-consumption (%)",
        ]
        widths = [20, 13, 20, 28, 30, 30, 28]
        scale = FRAME_W / (sum(widths) * mm)
        return table(s, header, rows, [w * mm * scale for w in widths])
