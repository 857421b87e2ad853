"""The community day's charts: every unit's SoC over the day, and the deal timeline.

Both are drawn at the size they take on the page (so 7 pt in the figure is 7 pt in the
PDF) by matplotlib's Agg canvas, without pyplot. As with the exchange plots, the figures
hold no text from the record: unit and branch names are returned as :class:`ImageLabel`
positions (fractions of the image, origin bottom-left) and the report draws them beside
the image in its own fonts, so Japanese unit names print without a CJK font in matplotlib.

- :func:`soc_chart`: small multiples, one panel per unit (its SoC in its branch's colour
  over the grey band of all units' range, force-stop limits dashed) and a last panel with
  the community's range and mean. Nineteen lines in one axes cannot be told apart; a
  panel each can, and the grey band shows each unit against the others.
- :func:`deal_timeline`: one row per unit, each deal a bar on the discharging unit's row
  (upper half, vermillion) and on the charging unit's row (lower half, blue), a faint line
  joining the two at the start, a cross where a deal ended in a state other than ``done``;
  below, the number of deals running at each moment.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MultipleLocator

from reports.community import CommunityDay
from reports.fields import FloatArray

log = logging.getLogger(__name__)

DPI = 150
DISCHARGE_COLOUR = "#D55E00"
CHARGE_COLOUR = "#0072B2"
LIMIT_COLOUR = "#C62828"
BAND_COLOUR = "#D9D9D9"
ROW_SHADE = "#F3F4F6"
#: Line colour of each branch's units, in branch order (Okabe-Ito; blue without branches).
BRANCH_COLOURS = ("#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LABEL_PT = 7.0
#: Panels of one SoC chart (the last shows the whole community): 4 columns, 6 rows.
SOC_COLUMNS, SOC_ROWS = 4, 6
#: Unit rows of one deal timeline; more units are drawn in several timelines.
TIMELINE_ROWS = 40
PT_PER_IN = 72.0


@dataclass(frozen=True)
class ImageLabel:
    """Text the report draws on the image: at (x, y), fractions of its width and height
    from the bottom-left; ``align`` left, right or centre; ``y`` is the text's middle."""

    x: float
    y: float
    text: str
    align: str = "left"
    size: float = LABEL_PT
    bold: bool = False


@dataclass(frozen=True)
class ChartImage:
    """A rendered chart: PNG bytes, its size on the page in points, and its labels."""

    png: bytes
    width_pt: float
    height_pt: float
    labels: tuple[ImageLabel, ...]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _hour_axis(ax: Axes, day: CommunityDay, intervals: int, *, ends: bool = True) -> None:
    """x from the start to the end of the day in hours, ticks a whole number of hours
    apart, at most ``intervals`` of them (without the two ends if ``ends`` is false, so that
    side-by-side panels do not print their labels into each other); labels are hours of
    the day, 00 to 24, wrapping after midnight, or hours since the start."""
    start = float(day.hours(0.0))
    end = float(day.hours(max(day.end_s, 1.0)))
    ax.set_xlim(start, end)
    step = _tick_step(end - start, intervals)
    first = math.ceil(start / step - 1e-9) * step
    ticks = [float(x) for x in np.arange(first, end + 1e-9, step)]
    if not ends:
        ticks = [x for x in ticks if start + 1e-9 < x < end - 1e-9]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    if day.time_of_day:
        ax.xaxis.set_major_formatter(FuncFormatter(_hour_of_day))
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))


def _tick_step(span_h: float, intervals: int) -> float:
    """The smallest of 1, 2, 3, 6, 12, 24, 48 … hours that cuts ``span_h`` into at most
    ``intervals`` parts."""
    step = 1.0
    for step in (1.0, 2.0, 3.0, 6.0, 12.0):
        if span_h / step <= intervals:
            return step
    while span_h / step > intervals:
        step *= 2.0
    return step


def _hour_of_day(x: float, _: object = None) -> str:
    """Hour ticks: ``06``, ``24`` at midnight ending the first day, ``02`` after it."""
    hour = round(x)
    return f"{hour % 24 if hour > 24 or hour < 0 else hour:02d}"


def _limits(ax: Axes, day: CommunityDay) -> None:
    for limit in day.soc_limits:
        if limit is not None:
            ax.axhline(limit * 100.0, color=LIMIT_COLOUR, linestyle="--", linewidth=0.7)


def _time_label(day: CommunityDay) -> str:
    return "time of day (h)" if day.time_of_day else "hours since the start"


def _branch_colours(day: CommunityDay) -> dict[str, str]:
    names = list(day.branches)
    return {
        unit: BRANCH_COLOURS[names.index(b) % len(BRANCH_COLOURS)] if b else BRANCH_COLOURS[0]
        for unit in day.units
        for b in [day.branch_of(unit)]
    }


def soc_chart(
    day: CommunityDay, width_pt: float, max_height_pt: float, units: Sequence[str] | None = None
) -> ChartImage | None:
    """Small multiples of the SoC (%) of ``units`` (default: every unit with a SoC series,
    at most :data:`SOC_COLUMNS` times :data:`SOC_ROWS` less one) over the day, and a last
    panel with the whole community; None without SoC series."""
    chosen = [u for u in (day.units if units is None else units) if u in day.soc]
    chosen = chosen[: SOC_COLUMNS * SOC_ROWS - 1]
    if not chosen or day.t.size == 0:
        return None
    cols = SOC_COLUMNS
    rows = math.ceil((len(chosen) + 1) / cols)
    top_pt, bottom_pt, gap_pt = 14.0, 30.0, 14.0
    panel_pt = max(30.0, min(96.0, (max_height_pt - top_pt - bottom_pt) / rows - gap_pt))
    height_pt = top_pt + bottom_pt + rows * (panel_pt + gap_pt) - gap_pt
    figure = Figure(figsize=(width_pt / PT_PER_IN, height_pt / PT_PER_IN), dpi=DPI)
    left_pt, right_pt = 26.0, 6.0
    figure.subplots_adjust(
        left=left_pt / width_pt,
        right=1 - right_pt / width_pt,
        top=1 - top_pt / height_pt,
        bottom=bottom_pt / height_pt,
        hspace=gap_pt / panel_pt,
        wspace=0.08,
    )
    grid = figure.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    hours = day.hours(day.t)
    stack = np.vstack([day.soc[u] for u in day.soc]) * 100.0
    with warnings.catch_warnings():  # a time where every unit's sample is missing
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
        mean = np.nanmean(stack, axis=0)
    colours = _branch_colours(day)
    labels: list[ImageLabel] = []
    cells = [*chosen, ""]  # the last panel: the whole community
    own = {u: i for i, u in enumerate(day.soc)}
    for index in range(rows * cols):
        ax: Axes = grid[index // cols][index % cols]
        if index >= len(cells):
            ax.set_visible(False)
            continue
        ax.fill_between(hours, low, high, color=BAND_COLOUR, linewidth=0)
        unit = cells[index]
        if unit:
            ax.plot(hours, stack[own[unit]], color=colours[unit], linewidth=1.0)
            branch = day.branch_of(unit)
            title = f"{unit}  ·  branch {branch}" if branch else unit
        else:
            ax.plot(hours, mean, color="#000000", linewidth=1.0)
            title = "all units: range (grey), mean (black)"
        _limits(ax, day)
        ax.set_ylim(0, 100)
        ax.set_yticks([0, 50, 100])
        _hour_axis(ax, day, 4, ends=False)
        ax.grid(True, linewidth=0.3, alpha=0.6)
        ax.tick_params(labelsize=6, length=2, pad=1.5)
        below = index + cols
        ax.tick_params(labelbottom=below >= len(cells))
        box = ax.get_position()
        labels.append(ImageLabel(box.x0 + 0.002, box.y1 + 4.5 / height_pt, title, size=6.5))
    figure.supxlabel(_time_label(day), fontsize=7, y=0.005, va="bottom")
    figure.supylabel("SoC (%)", fontsize=7, x=0.005, ha="left")
    return ChartImage(_png(figure), width_pt, height_pt, tuple(labels))


def _running(day: CommunityDay) -> tuple[FloatArray, FloatArray]:
    """Step function of the number of deals running: (times in hours, counts)."""
    end = day.end_s
    events = sorted(
        [(d.t_start, 1) for d in day.executed if d.t_start is not None]
        + [(d.t_stop if d.t_stop is not None else end, -1) for d in day.executed]
    )
    times, counts, running = [0.0], [0], 0
    for at, step in events:
        running += step
        times.append(float(at))
        counts.append(running)
    times.append(max(end, times[-1]))
    counts.append(running)
    return day.hours(np.asarray(times)), np.asarray(counts, dtype=float)


def deal_timeline(
    day: CommunityDay, width_pt: float, label_pt: float, units: Sequence[str] | None = None
) -> ChartImage | None:
    """One row for each of ``units`` (default: every unit, at most :data:`TIMELINE_ROWS`),
    a bar per deal on both its units' rows; None without an executed deal.

    ``label_pt``: the width the report needs left of the rows for the widest unit name.
    """
    units = list(day.units if units is None else units)[:TIMELINE_ROWS]
    if not day.executed or not units:
        return None
    row_pt, count_pt, top_pt, bottom_pt, gap_pt = 12.5, 52.0, 8.0, 30.0, 10.0
    rows_pt = row_pt * len(units)
    height_pt = top_pt + rows_pt + gap_pt + count_pt + bottom_pt
    right_pt = 40.0 if day.branches else 8.0
    figure = Figure(figsize=(width_pt / PT_PER_IN, height_pt / PT_PER_IN), dpi=DPI)
    grid = figure.add_gridspec(
        2,
        1,
        height_ratios=(rows_pt, count_pt),
        hspace=gap_pt / ((rows_pt + count_pt) / 2),
        left=max(label_pt + 8.0, 34.0) / width_pt,  # room for the count panel's labels
        right=1 - right_pt / width_pt,
        top=1 - top_pt / height_pt,
        bottom=bottom_pt / height_pt,
    )
    ax = figure.add_subplot(grid[0])
    counts_ax = figure.add_subplot(grid[1], sharex=ax)
    row = {u: i for i, u in enumerate(units)}
    ax.set_ylim(len(units) - 0.5, -0.5)
    for i in range(0, len(units), 2):
        ax.axhspan(i - 0.5, i + 0.5, color=ROW_SHADE, linewidth=0, zorder=0)
    end = day.end_s
    spans: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for deal in day.executed:
        assert deal.t_start is not None
        start = float(day.hours(deal.t_start))
        stop = float(day.hours(deal.t_stop if deal.t_stop is not None else end))
        width = max(stop - start, 0.02)  # a deal of seconds stays visible
        for side, unit in (("discharge", deal.discharge), ("charge", deal.charge)):
            if unit in row:
                spans.setdefault((row[unit], side), []).append((start, width))
        if deal.discharge in row and deal.charge in row:
            ax.plot(
                [start, start],
                [row[deal.discharge] - 0.2, row[deal.charge] + 0.2],
                color="#555555",
                linewidth=0.35,
                alpha=0.35,
                zorder=1,
            )
        if not deal.normal and deal.t_stop is not None:
            for unit in (deal.discharge, deal.charge):
                if unit in row:
                    ax.plot(stop, row[unit], marker="x", color="#000000", markersize=3.5, zorder=4)
    for (index, side), bars in spans.items():
        upper = side == "discharge"
        ax.broken_barh(
            bars,
            (index - 0.42 if upper else index + 0.02, 0.40),
            facecolors=DISCHARGE_COLOUR if upper else CHARGE_COLOUR,
            edgecolors="white",
            linewidth=0.3,
            zorder=3,
        )
    branch_names = list(day.branches)
    for i in range(1, len(units)):
        if day.branch_of(units[i]) != day.branch_of(units[i - 1]):
            ax.axhline(i - 0.5, color="#444444", linewidth=0.8, zorder=2)
    ax.set_yticks(range(len(units)))
    ax.tick_params(labelleft=False, labelbottom=False, labelsize=6.5, length=2)
    ax.grid(True, axis="x", linewidth=0.3, alpha=0.7)
    times, running = _running(day)
    counts_ax.step(times, running, where="post", color="#37474F", linewidth=0.5)
    counts_ax.fill_between(times, running, step="post", color="#90A4AE", alpha=0.5, linewidth=0)
    counts_ax.set_ylim(0, max(float(running.max()), 1.0) * 1.15)
    counts_ax.yaxis.set_major_locator(MultipleLocator(max(1, math.ceil(running.max() / 4))))
    counts_ax.set_ylabel("deals running", fontsize=6)
    counts_ax.tick_params(labelsize=6.5, length=2)
    counts_ax.grid(True, linewidth=0.3, alpha=0.7)
    _hour_axis(counts_ax, day, 12)
    counts_ax.set_xlabel(_time_label(day), fontsize=7)
    labels = []
    box = ax.get_position()
    to_figure = ax.transData + figure.transFigure.inverted()
    for unit, index in row.items():
        _, y = to_figure.transform((box.x0, index))
        labels.append(ImageLabel(box.x0 - 3.0 / width_pt, float(y), unit, align="right"))
    for name in branch_names:
        members = [row[u] for u in units if day.branch_of(u) == name]
        if members:
            _, y = to_figure.transform((box.x0, (min(members) + max(members)) / 2))
            labels.append(
                ImageLabel(box.x1 + 6.0 / width_pt, float(y), f"branch {name}", bold=True)
            )
    return ChartImage(_png(figure), width_pt, height_pt, tuple(labels))
