"""The body of one section of the PDF report: what was recorded in one test.

Measurements against their limits (failing rows shaded), the supervisor's summary, the
community days (:mod:`reports.community_pdf`), each exchange with its plot and steps, the
safety events (at most :data:`MAX_EVENTS`, first and last halves), every shutdown step by
step, and the notes. The lines recorded outside any test get the same body.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Image, KeepTogether, Paragraph, Table

from reports.community_pdf import CommunityPart
from reports.fields import number
from reports.fonts import markup
from reports.layout import FAIL_ROW, FRAME_W, VERDICT_COLOURS, WARN_ROW
from reports.layout import chip as _chip
from reports.layout import fmt as _fmt
from reports.layout import paragraph as _p
from reports.layout import table as _table
from reports.model import ExchangeView, ReportModel, SafetyEvent, Section, Shutdown, StepMark
from reports.plots import ExchangePlotter, PlotImage, PlotLimits
from reports.story import Story

#: At most this many safety events are printed per section (first and last halves).
MAX_EVENTS = 400


class SectionBody:
    """Writes the body of a section into ``story``; ``plotter`` None leaves plots out."""

    def __init__(
        self,
        model: ReportModel,
        story: Story,
        plotter: ExchangePlotter | None,
        community: CommunityPart,
    ) -> None:
        self.model = model
        self.story = story
        self.styles = story.styles
        self.plotter = plotter
        self.community = community

    def write(self, section: Section) -> None:
        """Everything recorded in ``section`` (a test, or the lines outside tests)."""
        s = self.styles
        expected = bool(section.stimuli) and getattr(section, "outcome", "") == "PASS"
        if section.stimuli:
            self._stimuli(section, expected)
        if section.measurements:
            self.story.add(_p("Measurements against limits", s.h3), self._measurements(section))
        if section.supervisor.cycles:
            self._supervisor(section, expected)
        for day in section.community:
            self.story.add(*self.community.flowables(day))
        in_timeline = {deal.name for day in section.community for deal in day.deals}
        shown = [v for name, v in section.exchanges.items() if name not in in_timeline]
        for view in shown:
            self._exchange(view, shown)
        if len(shown) < len(section.exchanges):
            self.story.para(
                f"{len(section.exchanges) - len(shown)} exchanges are deals of the community "
                "day, drawn in its deal timeline; their own plots are left out (the record "
                "holds their series and steps).",
                s.small,
            )
        if section.events:
            title = f"Safety events ({len(section.events)})"
            if expected:
                title += " — expected: they follow the stimulus above, and the test passed"
            self.story.add(_p(title, s.h3), self._events(section.events, expected))
        for number_, shutdown in enumerate(section.shutdowns, start=1):
            self._shutdown(number_, shutdown, expected)
        for note in section.notes:
            self.story.para(f"Note: {note}", s.small)
        if section.empty:
            self.story.para("Nothing was recorded in this test beyond its start and end.", s.small)

    def _stimuli(self, section: Section, expected: bool) -> None:
        """What the test did to the bench on purpose, with when (bench time, step)."""
        s = self.styles
        self.story.add(_p("Stimulus", s.h3))
        for stim in section.stimuli:
            when = f" at t = {_fmt(stim.t, 6)} s" if stim.t is not None else ""
            during = f", during {stim.during}" if stim.during else ""
            self.story.para(f"• {stim.text}{when}{during}", s.small)
        if expected:
            self.story.para(
                "The test passed: the safety events and unconfirmed units below are what it "
                "provoked and checked, marked expected.",
                s.small,
            )

    def _measurements(self, section: Section) -> Table:
        rows, shade = [], []
        for i, m in enumerate(section.measurements):
            verdict = m.verdict or "—"
            rows.append(
                [
                    m.name,
                    m.value_text,
                    m.unit,
                    m.limit_text(m.low),
                    m.limit_text(m.high),
                    Paragraph(_chip(verdict) if m.verdict else "—", self.styles.cell),
                ]
            )
            if m.failed:
                shade.append((i, FAIL_ROW))
        widths = [70, 28, 14, 22, 22, 18]
        scale = FRAME_W / (sum(widths) * mm)
        header = ["measurement", "value", "unit", "low limit", "high limit", "verdict"]
        return _table(self.styles, header, rows, [w * mm * scale for w in widths], shade=shade)

    def _supervisor(self, section: Section, expected: bool = False) -> None:
        sup = section.supervisor
        s = self.styles
        self.story.add(_p("Supervisor", s.h3))
        self.story.para(
            f"{sup.cycles} check cycle(s): {sup.error_cycles} with errors, "
            f"{sup.warn_cycles} with warnings only.",
            s.small,
        )
        if sup.failing:
            rows = [[key, str(w), str(e)] for key, (w, e) in sorted(sup.failing.items())]
            shade = [
                (i, FAIL_ROW if r[2] != "0" and not expected else WARN_ROW)
                for i, r in enumerate(rows)
            ]
            self.story.add(
                _table(
                    s,
                    ["check", "warnings", "errors"],
                    rows,
                    [90 * mm, 30 * mm, 30 * mm],
                    shade=shade,
                )
            )

    def _exchange(self, view: ExchangeView, others: Sequence[ExchangeView] = ()) -> None:
        s = self.styles
        parts: list[Flowable] = [_p(f"Exchange {view.name}", s.h3)]
        facts = []
        if view.state:
            facts.append(f"state {view.state}")
        if view.stop_reason:
            facts.append(f"stopped: {view.stop_reason}")
        if view.energy_wh is not None:
            facts.append(f"energy counted {view.energy_wh:.4g} Wh")
        if facts:
            parts.append(_p(" · ".join(facts), s.small))
        if view.has_data and self.plotter is not None:
            concurrent = self._overlaps(view, others)
            image = self.plotter.render(view, self._limits(view, concurrent))
            parts.extend(self._plot_flowables(image, concurrent))
        else:
            why = "plots left out of this report" if view.has_data else "no time series recorded"
            parts.append(_p(f"({why})", s.small))
            if view.steps:
                parts.append(self._step_list(view.steps))
        if view.unplotted:
            also = ", ".join(sorted(view.unplotted))
            parts.append(_p(f"Also recorded, not plotted: {also}.", s.small))
        for problem in view.problems:
            parts.append(_p(f"Record problem: {problem}", s.small))
        self.story.add(KeepTogether(parts))

    def _limits(self, view: ExchangeView, concurrent: bool) -> PlotLimits:
        """The bus-voltage window and the balance allowance (per unit x the exchange's
        units) from the run header's envelopes, each judged over the times it applies.
        With another exchange at the same time the residual is not judged: the voltage
        reference carries both, so one exchange's sum includes the other's current."""
        bus = self.model.run.bus_envelope
        allowance = number(bus.get("balance_allowance_per_unit"))
        balance = None
        if allowance is not None and view.currents and not concurrent:
            balance = allowance * len(view.currents)
        marks = {m.label: m.t for m in view.steps}
        times = [float(t) for tr in view.voltage for t in tr.t[:1]]
        first = min(times, default=0.0)
        up = max((marks[k] for k in ("rampUp", "authorize") if k in marks), default=first)
        end = marks.get("stop", math.inf)
        start = marks.get("start")
        return PlotLimits(
            number(bus.get("voltage_min")),
            number(bus.get("voltage_max")),
            balance,
            voltage_span=(up, end),
            balance_span=None if start is None else (start, end),
        )

    @staticmethod
    def _overlaps(view: ExchangeView, others: Sequence[ExchangeView]) -> bool:
        """Another exchange of the section ran at some time ``view`` ran."""

        def span(v: ExchangeView) -> tuple[float, float] | None:
            times = [t for tr in v.currents for t in (float(tr.t[0]), float(tr.t[-1])) if len(tr.t)]
            return (min(times), max(times)) if times else None

        mine = span(view)
        if mine is None:
            return False
        for other in others:
            theirs = span(other) if other is not view else None
            if theirs is not None and theirs[0] < mine[1] and mine[0] < theirs[1]:
                return True
        return False

    def _plot_flowables(self, image: PlotImage, concurrent: bool = False) -> list[Flowable]:
        s = self.styles
        height = FRAME_W * image.height_px / image.width_px
        # mask=None: the plot is opaque, so no soft mask is needed in the PDF
        out: list[Flowable] = [Image(io.BytesIO(image.png), FRAME_W, height, mask=None)]
        legend = "   ".join(
            f'<font name="ZapfDingbats" color="{e.colour}">n</font> {markup(e.label)}'
            + (f" ({markup(e.unit)})" if e.unit else "")
            for e in image.legend
        )
        if legend:
            out.append(Paragraph(legend, s.small))
        if image.steps:
            out.append(self._step_list(image.steps))
        out.append(Paragraph(self._caption(image, concurrent), s.small))
        return out

    def _caption(self, image: PlotImage, concurrent: bool) -> str:
        """What to look for in the plot, and what went beyond a drawn limit."""
        bus = self.model.run.bus_envelope
        low, high = number(bus.get("voltage_min")), number(bus.get("voltage_max"))
        window = f" ({_fmt(low, 4)} to {_fmt(high, 4)} V)" if low is not None else ""
        text = (
            "<i>What to look for: each unit's current (positive: it pushes current into the bus) "
            "reaches its set-point in the warm-up steps; once the bus is up (after rampUp) its "
            f"voltage stays inside the dashed window{window}; while the exchange runs the "
            "balance residual (the sum of its units' currents) stays inside its dashed ± "
            "allowance. Red shading marks where a trace left a limit while it applied."
        )
        if concurrent:
            text += (
                " Another exchange ran at the same time through the same voltage reference, "
                "so this exchange's residual includes the other's current: it is not judged "
                "here (the supervisor judges the whole bus, above)."
            )
        if image.exceeded:
            text += " Here: " + markup("; ".join(dict.fromkeys(image.exceeded))) + "."
        return text + "</i>"

    def _step_list(self, steps: Sequence[StepMark]) -> Paragraph:
        """``Steps: 1 activate (0 s) · 2 rampUp (0.4 s) …``, numbered as in the plot."""
        listed = " · ".join(
            f"<b>{n}</b> {markup(m.label)} ({m.t:.4g} s)" for n, m in enumerate(steps, start=1)
        )
        return Paragraph(f"Steps: {listed}", self.styles.small)

    def _events(self, events: list[SafetyEvent], expected: bool = False) -> Table:
        shown = events
        skipped = 0
        if len(events) > MAX_EVENTS:
            half = MAX_EVENTS // 2
            skipped = len(events) - MAX_EVENTS
            shown = events[:half] + events[-half:]
        rows: list[list[str]] = []
        shade: list[tuple[int, colors.Color]] = []
        for e in shown:
            if skipped and len(rows) == MAX_EVENTS // 2:
                rows.append(["", "", "", "", f"… {skipped} more event(s) in the record …"])
            bad = e.level != "warn" and not expected
            shade.append((len(rows), FAIL_ROW if bad else WARN_ROW))
            level = f"{e.level} (expected)" if expected else e.level
            rows.append([_fmt(e.t, 5), level, e.check, e.unit or "bus", e.message])
        widths = [16, 22, 28, 14, 100]
        scale = FRAME_W / (sum(widths) * mm)
        header = ["t (s)", "level", "check", "unit", "message"]
        return _table(self.styles, header, rows, [w * mm * scale for w in widths], shade=shade)

    def _shutdown(self, index: int, shutdown: Shutdown, expected: bool = False) -> None:
        s = self.styles
        state = "complete" if shutdown.complete else "CUT OFF — the record stops during it"
        self.story.add(_p(f"Shutdown {index}", s.h3), _p(f"Reason: {shutdown.reason}", s.small))
        facts = [
            state,
            f"voltage reference {shutdown.reference or '—'}",
            f"from {_fmt(shutdown.started, 5)} s to {_fmt(shutdown.finished, 5)} s",
        ]
        self.story.para(" · ".join(facts), s.small)
        if shutdown.unsafe:
            colour = VERDICT_COLOURS["SKIPPED" if expected else "FAIL"]
            why = (
                " — expected: a consequence of the stimulus above, checked by the passing test"
                if expected
                else ""
            )
            self.story.add(
                Paragraph(
                    f'<font color="{colour}"><b>Not confirmed safe: '
                    f"{markup(', '.join(shutdown.unsafe))}</b>{markup(why)}</font>",
                    s.small,
                )
            )
        if not shutdown.steps:
            self.story.para("No shutdown step was recorded.", s.small)
            return
        rows, shade = [], []
        for i, step in enumerate(shutdown.steps):
            ok = {True: "yes", False: "NO", None: "—"}[step.confirmed]
            rows.append([_fmt(step.t, 5), step.unit, step.action, ok, step.detail])
            if step.confirmed is False:
                shade.append((i, FAIL_ROW))
        widths = [16, 14, 50, 14, 86]
        scale = FRAME_W / (sum(widths) * mm)
        header = ["t (s)", "unit", "action", "ok", "detail"]
        self.story.add(_table(s, header, rows, [w * mm * scale for w in widths], shade=shade))
