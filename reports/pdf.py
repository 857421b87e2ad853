"""The PDF test report, laid out with reportlab's platypus.

Order: cover (overall verdict, counts, run and bench identity, what the record misses),
instruments, envelopes, results summary, one section per test (verdict, measurements
against limits with failing rows highlighted, supervisor summary, community day
(:mod:`reports.community_pdf`), exchange plots, safety events, shutdown log), what
happened outside tests, record problems, and appendices (software, bench file text with
hashes, the record itself). Every page carries a header, "page N of M" and, for a run that
did not finish, an ABORTED banner.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
    XPreformatted,
)

from hil import __version__
from hil.records import ABORTED
from reports.community_pdf import CommunityPart
from reports.fields import number
from reports.fonts import SANS, SANS_BOLD, draw_string, markup, report_fonts, string_width
from reports.layout import (
    FAIL_ROW,
    FRAME_W,
    GRID,
    HEADER_ROW,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    MARGIN_X,
    PAGE_H,
    PAGE_W,
    VERDICT_COLOURS,
    WARN_ROW,
    Styles,
    verdict_colour,
)
from reports.layout import chip as _chip
from reports.layout import fmt as _fmt
from reports.layout import key_values as _key_values
from reports.layout import paragraph as _p
from reports.layout import seconds as _seconds
from reports.layout import table as _table
from reports.model import (
    COUNT_ORDER,
    ExchangeView,
    ReportModel,
    SafetyEvent,
    Section,
    Shutdown,
    StepMark,
    TestResult,
)
from reports.plots import ExchangePlotter, PlotImage

log = logging.getLogger(__name__)

#: At most this many safety events are printed per section (first and last halves).
MAX_EVENTS = 400


# -- page decoration -------------------------------------------------------------------------


class PageDecor:
    """What every page carries: header, footer with "page N of M", ABORTED banner."""

    def __init__(self, model: ReportModel) -> None:
        run = model.run
        self.left = f"PP2P HIL test report · run {run.run_id or 'unknown'}"
        bench = run.bench.name if run.bench else "unknown bench"
        self.right = f"bench {bench} · {model.verdict}"
        self.aborted = model.aborted
        self.footer = f"record {model.record_path}"
        self.generated = datetime.now().astimezone().isoformat(timespec="seconds")

    def draw(self, canvas: Canvas, page: int, total: int) -> None:
        canvas.saveState()
        top = PAGE_H - 11 * mm
        draw_string(canvas, MARGIN_X, top, self.left, SANS, 7.5)
        width = string_width(self.right, SANS_BOLD, 7.5)
        draw_string(canvas, PAGE_W - MARGIN_X - width, top, self.right, SANS_BOLD, 7.5)
        canvas.setStrokeColor(GRID)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, top - 2.5 * mm, PAGE_W - MARGIN_X, top - 2.5 * mm)
        if self.aborted:
            band_y = top - 10 * mm
            canvas.setFillColor(colors.HexColor(VERDICT_COLOURS[ABORTED]))
            canvas.rect(MARGIN_X, band_y, FRAME_W, 6 * mm, stroke=0, fill=1)
            canvas.setFillColor(colors.white)
            canvas.setFont(SANS_BOLD, 9)
            canvas.drawCentredString(
                PAGE_W / 2,
                band_y + 2 * mm,
                "ABORTED — the run did not finish; this report shows the record up to its "
                "last complete line",
            )
        canvas.setFillColor(colors.HexColor("#555555"))
        bottom = 9 * mm
        canvas.line(MARGIN_X, bottom + 3.5 * mm, PAGE_W - MARGIN_X, bottom + 3.5 * mm)
        footer = self.footer if len(self.footer) < 110 else "…" + self.footer[-108:]
        draw_string(canvas, MARGIN_X, bottom, footer, SANS, 6.5)
        label = f"page {page} of {total}"
        canvas.setFont(SANS_BOLD, 8)
        canvas.drawRightString(PAGE_W - MARGIN_X, bottom, label)
        canvas.restoreState()


def canvas_class(decor: PageDecor) -> type[Canvas]:
    """A canvas that keeps its pages until the end, so that each can say "of M"."""

    class DecoratedCanvas(Canvas):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._held: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._held.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._held)
            for page, state in enumerate(self._held, start=1):
                self.__dict__.update(state)
                decor.draw(self, page, total)
                Canvas.showPage(self)
            Canvas.save(self)

    return DecoratedCanvas


# -- the story -------------------------------------------------------------------------------


class ReportWriter:
    """Builds the story (the list of flowables) of one report."""

    def __init__(self, model: ReportModel, *, plots: bool = True) -> None:
        self.model = model
        self.styles = Styles()
        self.plots = plots
        self.plotter = ExchangePlotter() if plots else None
        self.community = CommunityPart(self.styles, plots=plots)
        self.fonts = report_fonts()
        self.story: list[Flowable] = []
        self._section = 0

    # -- helpers ----------------------------------------------------------------------
    def add(self, *flowables: Flowable) -> None:
        self.story.extend(flowables)

    def para(self, value: str, style: ParagraphStyle | None = None) -> None:
        self.add(_p(value, style or self.styles.body))

    def heading(self, title: str) -> str:
        self._section += 1
        number_ = str(self._section)
        self.add(CondPageBreak(60 * mm), _p(f"{number_}  {title}", self.styles.h1))
        return number_

    # -- cover ----------------------------------------------------------------------------
    def cover(self) -> None:
        model, run, s = self.model, self.model.run, self.styles
        bench = run.bench
        self.add(Spacer(1, 6 * mm), _p("Test report", s.title))
        self.para(f"bench {bench.name if bench else 'unknown'}", s.subtitle)
        if bench and bench.description:
            self.para(bench.description, s.small)
        self.add(Spacer(1, 5 * mm))
        box = Table([[_p(model.verdict, s.verdict)]], colWidths=[FRAME_W], rowHeights=[22 * mm])
        box.setStyle(
            TableStyle(
                [
                    (
                        "BACKGROUND",
                        (0, 0),
                        (-1, -1),
                        colors.HexColor(verdict_colour(model.verdict)),
                    ),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ]
            )
        )
        self.add(box, Spacer(1, 2 * mm))
        self.para(self._verdict_sentence(), s.body)
        self.add(self._counts_table(), Spacer(1, 5 * mm))
        started = run.started_at or "unknown (no run header)"
        finished = run.finished_at or (
            "did not finish (no run_end line)" if model.aborted else "unknown"
        )
        rows = [
            ("Run", run.run_id or "unknown"),
            ("Started", started),
            ("Finished", finished),
            ("Instruments", self._mode()),
            ("Host", run.host or "unknown"),
            ("Git revision", run.git_revision or "unknown"),
            ("Toolkit", run.software.get("toolkit", "unknown")),
            ("Bench file", bench.path if bench else "unknown"),
            ("Bench SHA-256", bench.sha256 if bench and bench.sha256 else "unknown"),
            ("Record", model.record_path),
            ("Record SHA-256", model.record_sha256),
        ]
        self.add(_key_values(s, rows))
        if model.incomplete:
            self.add(Spacer(1, 5 * mm), _p("What this record is missing", s.h3))
            for item in model.missing:
                self.add(_p(f"• {item}", s.small))
            if model.corrupt:
                lines = ", ".join(str(n) for n, _ in model.corrupt[:20])
                more = "" if len(model.corrupt) <= 20 else f" and {len(model.corrupt) - 20} more"
                self.add(
                    _p(
                        f"• {len(model.corrupt)} unreadable line(s) skipped: line {lines}{more} "
                        "(see “Record problems”)",
                        s.small,
                    )
                )
        self.add(PageBreak())

    def _verdict_sentence(self) -> str:
        model = self.model
        n = len(model.tests)
        so_far = ", ".join(f"{c} {o}" for o, c in model.counts.items()) or "no test results"
        if model.aborted:
            return (
                f"The run did not finish: the record has no run_end line. Results so far "
                f"({n} test(s)): {so_far}."
            )
        if model.run.interrupted:
            return (
                f"The run was interrupted ({model.run.interrupted}) and ended safe. Results "
                f"({n} test(s)): {so_far}; {len(model.run.not_run)} test(s) never ran."
            )
        recorded = model.run.recorded_outcome
        extra = ""
        if recorded and recorded != model.verdict:
            extra = f" The run_end line recorded {recorded}; the worse verdict is shown."
        return f"{n} test(s): {so_far}.{extra}"

    def _counts_table(self) -> Table:
        s = self.styles
        names = [o for o in COUNT_ORDER if o in self.model.counts] or ["PASS"]
        names += [o for o in self.model.counts if o not in names]
        header = [Paragraph(_chip(o), s.cell) for o in names]
        values = [_p(str(self.model.counts.get(o, 0)), s.cell_bold) for o in names]
        table = Table([header, values], colWidths=[FRAME_W / max(len(names), 1)] * len(names))
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, GRID),
                    ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                    ("BACKGROUND", (0, 0), (-1, 0), HEADER_ROW),
                ]
            )
        )
        return table

    def _mode(self) -> str:
        run = self.model.run
        flags = {i.emulated for i in run.instruments if i.emulated is not None}
        if run.emulated is True or flags == {True}:
            return "emulated (instruments.emulation over loopback)"
        if run.emulated is False or flags == {False}:
            return "real instruments"
        if flags == {True, False}:
            return "mixed: some emulated, some real"
        return "unknown"

    # -- instruments and envelopes ------------------------------------------------------------
    def instruments(self) -> None:
        s = self.styles
        self.heading("Instruments")
        items = self.model.run.instruments
        if not items:
            self.para("The record holds no instrument identities.")
            return
        rows: list[list[str]] = []
        shade: list[tuple[int, colors.Color]] = []
        for i, inst in enumerate(items):
            kind = {True: "emulated", False: "real", None: "unknown"}[inst.emulated]
            if inst.problem:
                shade.append((i, FAIL_ROW))
                rows.append(
                    [
                        inst.unit,
                        inst.instrument,
                        f"did not answer: {inst.problem}",
                        "",
                        "",
                        "",
                        "",
                        kind,
                    ]
                )
                continue
            rows.append(
                [
                    inst.unit,
                    inst.instrument or inst.driver,
                    inst.vendor,
                    inst.model,
                    inst.serial or "—",
                    inst.firmware or "—",
                    inst.resource,
                    kind,
                ]
            )
        widths = [16, 18, 24, 30, 22, 20, 40, 13]
        header = ["unit", "instrument", "vendor", "model", "serial", "firmware", "resource", "kind"]
        scale = FRAME_W / (sum(widths) * mm)
        self.add(_table(s, header, rows, [w * mm * scale for w in widths], shade=shade))

    def envelopes(self) -> None:
        s = self.styles
        run = self.model.run
        self.heading("Envelopes in force")
        if not run.bus_envelope and not run.unit_envelopes:
            self.para("The record holds no envelopes.")
            return
        bus = run.bus_envelope
        if bus:
            rows = [
                (
                    "Bus voltage window",
                    f"{_fmt(number(bus.get('voltage_min')))} … "
                    f"{_fmt(number(bus.get('voltage_max')))} V",
                ),
                (
                    "Balance allowance per unit",
                    f"{_fmt(number(bus.get('balance_allowance_per_unit')))} A",
                ),
                (
                    "Sum of exchange currents",
                    f"≤ {_fmt(number(bus.get('exchange_current_sum_max')))} A",
                ),
            ]
            branches = bus.get("branch_capacity")
            if isinstance(branches, dict) and branches:
                rows.append(
                    (
                        "Branch capacities",
                        ", ".join(f"{b}: {_fmt(number(a))} A" for b, a in sorted(branches.items())),
                    )
                )
            self.add(_p("Bus", s.h3), _key_values(s, rows))
        if run.unit_envelopes:
            header = [
                "unit",
                "V min",
                "V max",
                "source max",
                "sink max",
                "P max",
                "slew max",
                "SoC window",
                "battery V",
            ]
            rows2: list[list[str]] = []
            for uid, env in run.unit_envelopes.items():

                def g(key: str, env: dict[str, Any] = env) -> float | None:
                    return number(env.get(key))

                soc = (
                    f"{_fmt(g('soc_min'))} … {_fmt(g('soc_max'))}"
                    if g("soc_min") is not None
                    else "—"
                )
                batt = (
                    f"{_fmt(g('battery_voltage_min'))} … {_fmt(g('battery_voltage_max'))} V"
                    if g("battery_voltage_min") is not None
                    else "—"
                )
                rows2.append(
                    [
                        uid,
                        f"{_fmt(g('voltage_min'))} V",
                        f"{_fmt(g('voltage_max'))} V",
                        f"{_fmt(g('current_source_max'))} A",
                        f"{_fmt(g('current_sink_max'))} A",
                        f"{_fmt(g('power_max'))} W",
                        f"{_fmt(g('slew_max'))} A/s",
                        soc,
                        batt,
                    ]
                )
            widths = [22, 16, 16, 19, 18, 18, 19, 21, 29]
            scale = FRAME_W / (sum(widths) * mm)
            self.add(_p("Units", s.h3), _table(s, header, rows2, [w * mm * scale for w in widths]))

    # -- results -------------------------------------------------------------------------
    def summary(self) -> None:
        s = self.styles
        self.heading("Results")
        if not self.model.tests:
            self.para("The record holds no test.")
            return
        rows = []
        shade = []
        for i, test in enumerate(self.model.tests):
            warn = sum(1 for e in test.events if e.level == "warn")
            err = sum(1 for e in test.events if e.level != "warn")
            rows.append(
                [
                    str(i + 1),
                    test.nodeid,
                    Paragraph(_chip(test.outcome), s.cell),
                    _seconds(test.duration_s),
                    f"{test.failed_measurements} / {len(test.measurements)}",
                    f"{err} / {warn}",
                    str(len(test.shutdowns)),
                ]
            )
            if test.outcome not in ("PASS", "SKIPPED"):
                shade.append((i, FAIL_ROW))
        header = [
            "#",
            "test",
            "verdict",
            "duration",
            "failed / measured",
            "errors / warnings",
            "shutdowns",
        ]
        widths = [7, 74, 22, 16, 18, 20, 17]
        scale = FRAME_W / (sum(widths) * mm)
        self.add(_table(s, header, rows, [w * mm * scale for w in widths], shade=shade))

    def tests(self) -> None:
        """A section per test; tests skipped before recording anything share one table."""
        skipped: list[tuple[int, TestResult]] = []
        for index, test in enumerate(self.model.tests, start=1):
            if test.outcome == "SKIPPED" and test.empty:
                skipped.append((index, test))
            else:
                self.test_section(index, test)
        if skipped:
            s = self.styles
            rows = [[str(i), test.nodeid, test.message or "—"] for i, test in skipped]
            widths = [FRAME_W * 0.06, FRAME_W * 0.52, FRAME_W * 0.42]
            self.add(
                CondPageBreak(40 * mm),
                Paragraph(f"Skipped tests ({len(skipped)})", s.h2),
                _table(s, ["#", "test", "why"], rows, widths),
                Spacer(1, 5 * mm),
            )
        self.never_ran()

    def never_ran(self) -> None:
        """An interrupted run: the collected tests that never started, and how many."""
        not_run = self.model.run.not_run
        if not self.model.run.interrupted:
            return
        s = self.styles
        self.add(CondPageBreak(40 * mm), Paragraph(f"Tests that never ran ({len(not_run)})", s.h2))
        if not not_run:
            self.para("Every collected test had started when the run was interrupted.")
            return
        rows = [[str(i), nodeid] for i, nodeid in enumerate(not_run, start=1)]
        widths = [FRAME_W * 0.06, FRAME_W * 0.94]
        self.add(_table(s, ["#", "test"], rows, widths), Spacer(1, 5 * mm))

    def test_section(self, index: int, test: TestResult) -> None:
        s = self.styles
        self.add(
            CondPageBreak(90 * mm),
            Paragraph(f"{_chip(test.outcome)}  test {index}: {markup(test.name)}", s.h2),
        )
        facts = [f"node {test.nodeid}", f"duration {_seconds(test.duration_s)}"]
        if test.markers:
            facts.append("markers " + ", ".join(test.markers))
        self.para(" · ".join(facts), s.small)
        if test.message:
            box = Table([[_p(test.message, s.cell)]], colWidths=[FRAME_W])
            tint = FAIL_ROW if test.outcome not in ("PASS", "SKIPPED") else HEADER_ROW
            box.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), tint)]))
            self.add(box, Spacer(1, 2 * mm))
        self.section_body(test)

    def section_body(self, section: Section) -> None:
        s = self.styles
        if section.measurements:
            self.add(_p("Measurements against limits", s.h3), self._measurements(section))
        if section.supervisor.cycles:
            self._supervisor(section)
        for day in section.community:
            self.add(*self.community.flowables(day))
        in_timeline = {deal.name for day in section.community for deal in day.deals}
        shown = [v for name, v in section.exchanges.items() if name not in in_timeline]
        for view in shown:
            self._exchange(view)
        if len(shown) < len(section.exchanges):
            self.para(
                f"{len(section.exchanges) - len(shown)} exchanges are deals of the community "
                "day, drawn in its deal timeline; their own plots are left out (the record "
                "holds their series and steps).",
                s.small,
            )
        if section.events:
            self.add(
                _p(f"Safety events ({len(section.events)})", s.h3), self._events(section.events)
            )
        for number_, shutdown in enumerate(section.shutdowns, start=1):
            self._shutdown(number_, shutdown)
        for note in section.notes:
            self.para(f"Note: {note}", s.small)
        if section.empty:
            self.para("Nothing was recorded in this test beyond its start and end.", s.small)

    def _measurements(self, section: Section) -> Table:
        rows, shade = [], []
        for i, m in enumerate(section.measurements):
            verdict = m.verdict or "—"
            rows.append(
                [
                    m.name,
                    m.value_text,
                    m.unit,
                    _fmt(m.low),
                    _fmt(m.high),
                    Paragraph(_chip(verdict) if m.verdict else "—", self.styles.cell),
                ]
            )
            if m.failed:
                shade.append((i, FAIL_ROW))
        widths = [70, 28, 14, 22, 22, 18]
        scale = FRAME_W / (sum(widths) * mm)
        header = ["measurement", "value", "unit", "low limit", "high limit", "verdict"]
        return _table(self.styles, header, rows, [w * mm * scale for w in widths], shade=shade)

    def _supervisor(self, section: Section) -> None:
        sup = section.supervisor
        s = self.styles
        self.add(_p("Supervisor", s.h3))
        self.para(
            f"{sup.cycles} check cycle(s): {sup.error_cycles} with errors, "
            f"{sup.warn_cycles} with warnings only.",
            s.small,
        )
        if sup.failing:
            rows = [[key, str(w), str(e)] for key, (w, e) in sorted(sup.failing.items())]
            shade = [(i, FAIL_ROW if r[2] != "0" else WARN_ROW) for i, r in enumerate(rows)]
            self.add(
                _table(
                    s,
                    ["check", "warnings", "errors"],
                    rows,
                    [90 * mm, 30 * mm, 30 * mm],
                    shade=shade,
                )
            )

    def _exchange(self, view: ExchangeView) -> None:
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
            image = self.plotter.render(view, self._balance_limit(view))
            parts.extend(self._plot_flowables(image))
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
        self.add(KeepTogether(parts))

    def _balance_limit(self, view: ExchangeView) -> float | None:
        allowance = number(self.model.run.bus_envelope.get("balance_allowance_per_unit"))
        if allowance is None or not view.currents:
            return None
        return allowance * len(view.currents)

    def _plot_flowables(self, image: PlotImage) -> list[Flowable]:
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
        return out

    def _step_list(self, steps: Sequence[StepMark]) -> Paragraph:
        """``Steps: 1 activate (0 s) · 2 rampUp (0.4 s) …``, numbered as in the plot."""
        listed = " · ".join(
            f"<b>{n}</b> {markup(m.label)} ({m.t:.4g} s)" for n, m in enumerate(steps, start=1)
        )
        return Paragraph(f"Steps: {listed}", self.styles.small)

    def _events(self, events: list[SafetyEvent]) -> Table:
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
            shade.append((len(rows), WARN_ROW if e.level == "warn" else FAIL_ROW))
            rows.append([_fmt(e.t, 5), e.level, e.check, e.unit or "bus", e.message])
        widths = [16, 12, 28, 14, 110]
        scale = FRAME_W / (sum(widths) * mm)
        header = ["t (s)", "level", "check", "unit", "message"]
        return _table(self.styles, header, rows, [w * mm * scale for w in widths], shade=shade)

    def _shutdown(self, index: int, shutdown: Shutdown) -> None:
        s = self.styles
        state = "complete" if shutdown.complete else "CUT OFF — the record stops during it"
        self.add(_p(f"Shutdown {index}", s.h3), _p(f"Reason: {shutdown.reason}", s.small))
        facts = [
            state,
            f"voltage reference {shutdown.reference or '—'}",
            f"from {_fmt(shutdown.started, 5)} s to {_fmt(shutdown.finished, 5)} s",
        ]
        self.para(" · ".join(facts), s.small)
        if shutdown.unsafe:
            self.add(
                Paragraph(
                    f'<font color="{VERDICT_COLOURS["FAIL"]}"><b>Not confirmed safe: '
                    f"{markup(', '.join(shutdown.unsafe))}</b></font>",
                    s.small,
                )
            )
        if not shutdown.steps:
            self.para("No shutdown step was recorded.", s.small)
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
        self.add(_table(s, header, rows, [w * mm * scale for w in widths], shade=shade))

    # -- the rest ---------------------------------------------------------------------------
    def outside_tests(self) -> None:
        if self.model.session.empty:
            return
        self.heading("Outside tests")
        self.para(
            "Lines written before the first test, between tests or after the last one "
            "(session set-up and teardown).",
            self.styles.small,
        )
        self.section_body(self.model.session)

    def problems(self) -> None:
        model = self.model
        if not model.incomplete:
            return
        s = self.styles
        self.heading("Record problems")
        for item in model.missing:
            self.para(f"• {item}", s.small)
        if model.corrupt:
            rows = [[str(n), why] for n, why in model.corrupt]
            self.add(
                _p("Lines skipped because they could not be read", s.h3),
                _table(s, ["line", "problem"], rows, [18 * mm, FRAME_W - 18 * mm]),
            )

    def appendix(self) -> None:
        s = self.styles
        run, model = self.model.run, self.model
        self.add(PageBreak(), _p("Appendix A  Software", s.h1))
        if run.software:
            self.add(_key_values(s, list(run.software.items())))
        else:
            self.para("The record holds no software versions.")
        self.add(_p("Appendix B  Bench file", s.h1))
        bench = run.bench
        if bench is None:
            self.para("The record does not name the bench file.")
        else:
            match = {
                True: "matches the recorded SHA-256",
                False: "DOES NOT match the recorded SHA-256",
                None: "cannot be checked",
            }[bench.text_matches]
            self.add(
                _key_values(
                    s,
                    [
                        ("Path", bench.path or "unknown"),
                        ("SHA-256 (recorded)", bench.sha256 or "unknown"),
                        ("SHA-256 of the text below", bench.text_sha256 or "—"),
                        ("Check", f"the recorded text {match}"),
                    ],
                ),
                Spacer(1, 3 * mm),
            )
            if bench.text is None:
                self.para("The record does not hold the bench file's text.")
            else:
                self.add(XPreformatted(markup(bench.text.expandtabs(4)), s.mono))
        self.add(_p("Appendix C  This report", s.h1))
        self.add(
            _key_values(
                s,
                [
                    ("Record", model.record_path),
                    ("Record SHA-256", model.record_sha256),
                    ("Lines", f"{model.record_lines} ({len(model.corrupt)} unreadable)"),
                    *self._emulator_log(),
                    ("Generated", datetime.now().astimezone().isoformat(timespec="seconds")),
                    ("Generated by", f"pp2p-hil {__version__} (reports.build)"),
                    ("CJK font", self.fonts.source),
                ],
            )
        )

    def _emulator_log(self) -> list[tuple[str, str]]:
        """The emulator child's log beside the record (``emulator.log``), when there is one."""
        path = Path(self.model.record_path).parent / "emulator.log"
        return [("Emulator log", str(path))] if path.is_file() else []

    def story_of(self) -> list[Flowable]:
        steps: list[Callable[[], None]] = [
            self.cover,
            self.instruments,
            self.envelopes,
            self.summary,
            self.tests,
            self.outside_tests,
            self.problems,
            self.appendix,
        ]
        for step in steps:
            step()
        return self.story


def write_pdf(model: ReportModel, path: Path, *, plots: bool = True) -> int:
    """Write the report of ``model`` to ``path``; returns the number of pages."""
    story = ReportWriter(model, plots=plots).story_of()
    decor = PageDecor(model)
    canvas = canvas_class(decor)
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=f"PP2P HIL test report {model.run.run_id}",
        author="pp2p-hil",
        subject=f"verdict {model.verdict}",
    )
    doc.build(story, canvasmaker=canvas)
    pages: int = doc.page
    log.info("report %s: %d pages, verdict %s", path, pages, model.verdict)
    return pages
