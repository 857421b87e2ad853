"""The PDF test report, laid out with reportlab's platypus.

Order: cover (overall verdict, counts, run and bench identity, what the record misses),
instruments, envelopes, results summary, one section per test (verdict, measurements
against limits with failing rows highlighted, supervisor summary, community day
(:mod:`reports.community_pdf`), exchange plots, safety events, shutdown log), what
happened outside tests, record problems, and appendices (software, bench file text with
hashes, the record itself). Every page carries a header, "page N of M" and, for a run that
did not finish, an ABORTED banner.

Each part has its module: :mod:`reports.pdf_cover`, :mod:`reports.pdf_bench` (instruments,
envelopes), :mod:`reports.pdf_section` (a test's body), :mod:`reports.pdf_appendix`; they
write into one :class:`~reports.story.Story`. This module holds the page decoration, the
results summary, the order of the sections and :func:`write_pdf`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from hil.records import ABORTED
from reports.community_pdf import CommunityPart
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
    Styles,
)
from reports.layout import chip as _chip
from reports.layout import paragraph as _p
from reports.layout import seconds as _seconds
from reports.layout import table as _table
from reports.model import ReportModel, TestResult
from reports.pdf_appendix import Appendix
from reports.pdf_bench import BenchTables
from reports.pdf_cover import CoverPage
from reports.pdf_section import MAX_EVENTS, SectionBody
from reports.plots import ExchangePlotter, UnitColours
from reports.story import Story

log = logging.getLogger(__name__)

__all__ = ["MAX_EVENTS", "PageDecor", "Progress", "ReportWriter", "canvas_class", "write_pdf"]

#: ``progress(done, total, what)``: how far a build is (tests laid out, then pages).
Progress = Callable[[int, int, str], None]


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
    """Builds the story (the list of flowables) of one report, part by part."""

    def __init__(
        self, model: ReportModel, *, plots: bool = True, progress: Progress | None = None
    ) -> None:
        self.model = model
        self.progress = progress
        self.styles = Styles()
        self.plots = plots
        units = [i.unit for i in model.run.instruments] + list(model.run.unit_envelopes)
        self.plotter = ExchangePlotter(colours=UnitColours(units)) if plots else None
        self.community = CommunityPart(self.styles, plots=plots)
        self.fonts = report_fonts()
        self.story = Story(self.styles)
        self.section = SectionBody(model, self.story, self.plotter, self.community)

    # -- helpers ----------------------------------------------------------------------
    def add(self, *flowables: Flowable) -> None:
        self.story.add(*flowables)

    def para(self, value: str, style: ParagraphStyle | None = None) -> None:
        self.story.para(value, style)

    def heading(self, title: str) -> str:
        return self.story.heading(title)

    # -- cover, bench -----------------------------------------------------------------
    def cover(self) -> None:
        CoverPage(self.model, self.story).write()

    def instruments(self) -> None:
        BenchTables(self.model, self.story).instruments()

    def envelopes(self) -> None:
        BenchTables(self.model, self.story).envelopes()

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
        total = len(self.model.tests)
        for index, test in enumerate(self.model.tests, start=1):
            if test.outcome == "SKIPPED" and test.empty:
                skipped.append((index, test))
            else:
                self.test_section(index, test)
            if self.progress is not None:
                self.progress(index, total, "tests")
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
        self.section.write(test)

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
        self.section.write(self.model.session)

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
        Appendix(self.model, self.story, self.fonts).write()

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
        return self.story.flowables


def write_pdf(
    model: ReportModel, path: Path, *, plots: bool = True, progress: Progress | None = None
) -> int:
    """Write the report of ``model`` to ``path``; returns the number of pages."""
    story = ReportWriter(model, plots=plots, progress=progress).story_of()
    if progress is not None:
        progress(len(model.tests), len(model.tests), "tests; laying out the pages")
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
    if progress is not None:
        progress(pages, pages, "pages")
    log.info("report %s: %d pages, verdict %s", path, pages, model.verdict)
    return pages
