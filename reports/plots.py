"""Exchange plots: unit currents, bus voltage and balance residual over time, steps marked.

One matplotlib figure (no pyplot, no GUI: rendered by the Agg canvas) is made once and
reused for every exchange, at :data:`PRINT_DPI` (print quality), so that fifty plots take
seconds. The figure holds no text from the record: traces are told apart by colour and
steps by number, and the report prints the legend (sorted) and the step list beside the
image in its own fonts (Japanese unit names included), so the plot never needs a CJK font.

What a reviewer needs to judge a plot is drawn on it: the bus-voltage window and the
balance allowance (:class:`PlotLimits`, from the run header's envelopes) as dashed lines,
the stretches of a trace beyond them shaded red, and the axes never use matplotlib's
offset notation (``+2.8649e2``), so every tick reads as the value it is. Each unit keeps
one colour across the whole report (:class:`UnitColours`).
"""

from __future__ import annotations

import io
import itertools
import logging
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.fields import FloatArray
from reports.model import ExchangeView, StepMark, Trace

log = logging.getLogger(__name__)

#: Line colours, in order of the traces of a panel (colour-blind-safe Okabe-Ito + greys).
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
    "#7f7f7f",
    "#8c564b",
)
STEP_COLOUR = "#999999"
LIMIT_COLOUR = "#C62828"
#: Step labels closer than this fraction of the time axis are merged into one.
STEP_LABEL_GAP = 0.025
#: Resolution of the rendered plots (≥ 200 ppi prints sharp).
PRINT_DPI = 200
EXCEEDED_COLOUR = "#E53935"
#: The bus voltage's and the residual's own colour (they are not units).
BUS_COLOUR = "#000000"
#: Traces with at most this many samples are drawn with a dot at each sample.
SPARSE_POINTS = 60
#: Above this many points a trace is reduced to the min and max of each of as many bins.
MAX_POINTS = 3000


@dataclass(frozen=True)
class PlotLimits:
    """The limits drawn on an exchange's plot (None: not drawn)."""

    voltage_min: float | None = None
    voltage_max: float | None = None
    balance: float | None = None
    #: When each limit applies (None: the whole plot): the bus window from the bus up
    #: (end of rampUp/authorize) to the stop, the balance from start to stop.
    voltage_span: tuple[float, float] | None = None
    balance_span: tuple[float, float] | None = None


class UnitColours:
    """One colour per unit for the whole report: the units sorted by id take the palette
    in turn (a unit first seen later gets the next free colour)."""

    def __init__(self, units: list[str] | None = None) -> None:
        self._colours: dict[str, str] = {}
        for unit in sorted(units or []):
            self.of(unit)

    def of(self, label: str) -> str:
        if label not in self._colours:
            self._colours[label] = PALETTE[len(self._colours) % len(PALETTE)]
        return self._colours[label]


@dataclass(frozen=True)
class LegendEntry:
    """A trace as the report's legend prints it."""

    panel: str
    label: str
    unit: str
    colour: str


@dataclass(frozen=True)
class PlotImage:
    """A rendered exchange plot: PNG bytes, size in pixels, legend and numbered steps."""

    png: bytes
    width_px: int
    height_px: int
    legend: tuple[LegendEntry, ...]
    steps: tuple[StepMark, ...]
    #: What went beyond a drawn limit, e.g. ``"balance residual above +0.25 A"``.
    exceeded: tuple[str, ...] = ()


def reduce_points(
    t: FloatArray, y: FloatArray, limit: int = MAX_POINTS
) -> tuple[FloatArray, FloatArray]:
    """At most ``limit`` points: each bin keeps its minimum and its maximum, in time order,
    so that no spike disappears from the plot."""
    n = len(t)
    if n <= limit:
        return t, y
    bins = limit // 2
    edges = np.linspace(0, n, bins + 1).astype(int)
    keep: list[int] = []
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        chunk = y[lo:hi]
        if np.all(np.isnan(chunk)):
            keep.append(lo)
            continue
        a, b = lo + int(np.nanargmin(chunk)), lo + int(np.nanargmax(chunk))
        keep.extend(sorted({a, b}))
    index = np.asarray(keep)
    return t[index], y[index]


class ExchangePlotter:
    """Renders :class:`ExchangeView` plots with one reused figure."""

    def __init__(
        self,
        width_in: float = 7.2,
        height_in: float = 4.6,
        dpi: int = PRINT_DPI,
        colours: UnitColours | None = None,
    ) -> None:
        self.dpi = dpi
        self.colours = colours if colours is not None else UnitColours()
        self.figure = Figure(figsize=(width_in, height_in), dpi=dpi)
        grid = self.figure.add_gridspec(3, 1, height_ratios=(2.0, 1.0, 1.0), hspace=0.12)
        first = self.figure.add_subplot(grid[0])
        self.axes = (
            first,
            self.figure.add_subplot(grid[1], sharex=first),
            self.figure.add_subplot(grid[2], sharex=first),
        )
        self.figure.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.1)
        titles = ("unit currents (A)", "bus voltage (V)", "balance residual (A)")
        for ax, title in zip(self.axes, titles, strict=True):
            ax.grid(True, linewidth=0.4, alpha=0.5)
            ax.set_ylabel(title, fontsize=7)
            ax.tick_params(labelsize=7)
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        for ax in self.axes[:2]:
            ax.tick_params(labelbottom=False)
        self.axes[2].set_xlabel("time (s)", fontsize=7)

    def _clear(self) -> None:
        """Remove the previous exchange's artists; the axes, ticks and labels stay (much
        cheaper than ``cla()``, which rebuilds every tick)."""
        for ax in self.axes:
            for artist in [*ax.lines, *ax.texts, *ax.collections, *ax.patches]:
                artist.remove()
            ax.relim()

    def render(self, view: ExchangeView, limits: PlotLimits | None = None) -> PlotImage:
        """The exchange's three panels as a PNG, with ``limits`` drawn and the stretches
        beyond them shaded."""
        limits = limits or PlotLimits()
        self._clear()
        currents, voltage, residual = self.axes
        panels = (
            (currents, "unit currents", view.currents),
            (voltage, "bus voltage", view.voltage),
            (residual, "balance residual", view.residual),
        )
        legend: list[LegendEntry] = []
        for ax, panel, traces in panels:
            legend.extend(self._draw(ax, panel, sorted(traces, key=lambda tr: tr.label)))
            if not traces:
                ax.text(
                    0.5,
                    0.5,
                    "not recorded",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#888888",
                )
        for ax in self.axes:
            ax.autoscale_view()
        exceeded: list[str] = []
        if limits.balance is not None and view.residual:
            exceeded += self._limit_band(
                residual,
                view.residual,
                (-limits.balance, limits.balance),
                limits.balance_span,
                "balance residual",
            )
        if view.voltage and (limits.voltage_min is not None or limits.voltage_max is not None):
            exceeded += self._limit_band(
                voltage,
                view.voltage,
                (limits.voltage_min, limits.voltage_max),
                limits.voltage_span,
                "bus voltage",
            )
        steps = tuple(view.steps)
        self._mark_steps(steps)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        width, height = self.figure.canvas.get_width_height()
        return PlotImage(buffer.getvalue(), width, height, tuple(legend), steps, tuple(exceeded))

    @staticmethod
    @staticmethod
    def _limit_band(
        ax: Axes,
        traces: list[Trace],
        band: tuple[float | None, float | None],
        span: tuple[float, float] | None,
        what: str,
    ) -> list[str]:
        """Dashed limit lines, the axis widened to show them, and red shading where a
        trace is beyond them within ``span`` (the times the limit applies: the bus window
        once the bus is up, the balance while the exchange runs; None: always); returns
        what went beyond, for the caption."""
        low, high = band
        exceeded = []
        data_low, data_high = ax.get_ylim()
        lines = [v for v in (low, high) if v is not None]
        span_low, span_high = min([data_low, *lines]), max([data_high, *lines])
        pad = 0.05 * max(span_high - span_low, 1e-9)
        ax.set_ylim(span_low - pad, span_high + pad)
        for value in lines:
            ax.axhline(value, color=LIMIT_COLOUR, linestyle="--", linewidth=0.8)
        for trace in traces:
            t, y = trace.t, trace.y
            judged = np.isfinite(y)
            if span is not None:
                judged &= (t >= span[0] - 1e-9) & (t <= span[1] + 1e-9)
            for limit, sign, word in ((high, 1.0, "above"), (low, -1.0, "below")):
                if limit is None:
                    continue
                where = judged & (sign * (np.nan_to_num(y, nan=limit) - limit) > 0)
                if not bool(np.any(where)):
                    continue
                exceeded.append(f"{what} {word} {limit:+.4g} {trace.unit}")
                ax.fill_between(
                    t,
                    limit,
                    np.nan_to_num(y, nan=limit),
                    where=where,
                    color=EXCEEDED_COLOUR,
                    alpha=0.3,
                    linewidth=0,
                    interpolate=True,
                )
        return exceeded

    def _draw(self, ax: Axes, panel: str, traces: list[Trace]) -> list[LegendEntry]:
        """Plot ``traces``, each unit in its report-wide colour (the bus voltage and the
        residual in black)."""
        entries = []
        for trace in traces:
            colour = BUS_COLOUR if panel != "unit currents" else self.colours.of(trace.label)
            finite = np.isfinite(trace.y)  # a row a unit did not give: join its readings
            t, y = reduce_points(trace.t[finite], trace.y[finite])
            marker = "o" if len(t) <= SPARSE_POINTS else None  # a lone sample stays visible
            ax.plot(t, y, color=colour, linewidth=1.0, marker=marker, markersize=2.5)
            entries.append(LegendEntry(panel, trace.label, trace.unit, colour))
        return entries

    def _mark_steps(self, steps: tuple[StepMark, ...]) -> None:
        """A dotted line per step on every panel; numbers on top, steps closer than
        :data:`STEP_LABEL_GAP` of the time span share one label (``3-7``)."""
        top = self.axes[0]
        for mark in steps:
            for ax in self.axes:
                ax.axvline(mark.t, color=STEP_COLOUR, linestyle=":", linewidth=0.7)
        low, high = top.get_xlim()
        gap = STEP_LABEL_GAP * max(high - low, 1e-12)
        for first, last, at in group_steps([m.t for m in steps], gap):
            top.annotate(
                str(first) if first == last else f"{first}-{last}",
                xy=(at, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                color="#555555",
            )


def group_steps(times: list[float], gap: float) -> list[tuple[int, int, float]]:
    """Consecutive step numbers (1-based) whose times lie within ``gap`` of the group's
    first, as (first, last, time of the first)."""
    groups: list[tuple[int, int, float]] = []
    for number, t in enumerate(times, start=1):
        if groups and t - groups[-1][2] < gap:
            first, _, at = groups[-1]
            groups[-1] = (first, number, at)
        else:
            groups.append((number, number, t))
    return groups
