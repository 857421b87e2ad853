"""The cover page of the PDF report: the verdict first, then what the run was.

The overall verdict in its colour and a sentence that says how it was reached, the count
of each test outcome, the run's and the bench's identity (run id, times, host, revision,
bench file and record with their SHA-256) and, for an incomplete record, what it misses.
"""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, Spacer, Table, TableStyle

from reports.fonts import markup
from reports.layout import FRAME_W, GRID, HEADER_ROW, verdict_colour
from reports.layout import chip as _chip
from reports.layout import key_values as _key_values
from reports.layout import paragraph as _p
from reports.model import COUNT_ORDER, ReportModel
from reports.story import Story


class CoverPage:
    """Writes the cover page of ``model``'s report into ``story``."""

    def __init__(self, model: ReportModel, story: Story) -> None:
        self.model = model
        self.story = story
        self.styles = story.styles

    def write(self) -> None:
        """The cover page: verdict, counts, run and bench identity, what is missing."""
        model, run, s = self.model, self.model.run, self.styles
        bench = run.bench
        self.story.add(Spacer(1, 6 * mm), _p("Test report", s.title))
        self.story.para(f"bench {bench.name if bench else 'unknown'}", s.subtitle)
        if bench and bench.description:
            self.story.para(bench.description, s.small)
        self.story.add(Spacer(1, 5 * mm))
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
        self.story.add(box, Spacer(1, 2 * mm))
        self.story.para(self._verdict_sentence(), s.body)
        self.story.add(self._counts_table(), Spacer(1, 5 * mm))
        started = run.started_at or "unknown (no run header)"
        finished = run.finished_at or (
            "did not finish (no run_end line)" if model.aborted else "unknown"
        )
        rows = [
            ("Operator", run.operator or "not given (--operator)"),
            ("Device under test", run.dut or "not given (--dut)"),
            ("Station", run.station or run.host or "unknown"),
            ("Run", run.run_id or "unknown"),
            ("Started", started),
            ("Finished", finished),
            ("Instruments", self._mode()),
            ("Host", run.host or "unknown"),
            ("Git revision", self._revision()),
            ("Test sources SHA-256", self._sources()),
            ("Toolkit", run.software.get("toolkit", "unknown")),
            ("Bench file", bench.path if bench else "unknown"),
            ("Bench SHA-256", bench.sha256 if bench and bench.sha256 else "unknown"),
            ("Record", model.record_path),
            ("Record SHA-256", model.record_sha256),
        ]
        if run.workers:
            rows.append(("Workers", self._workers()))
        self.story.add(_key_values(s, rows))
        overdue = run.overdue()
        if overdue:
            names = ", ".join(f"{i.unit}.{i.instrument} (due {i.calibration_due})" for i in overdue)
            self.story.add(
                Spacer(1, 2 * mm),
                Paragraph(
                    f'<font color="{verdict_colour("FAIL")}"><b>Calibration overdue on the day '
                    f"of the run: {markup(names)}</b></font>",
                    s.small,
                ),
            )
        self.story.add(Spacer(1, 5 * mm), self._signature())
        if model.incomplete:
            self.story.add(Spacer(1, 5 * mm), _p("What this record is missing", s.h3))
            for item in model.missing:
                self.story.add(_p(f"• {item}", s.small))
            if model.corrupt:
                lines = ", ".join(str(n) for n, _ in model.corrupt[:20])
                more = "" if len(model.corrupt) <= 20 else f" and {len(model.corrupt) - 20} more"
                self.story.add(
                    _p(
                        f"• {len(model.corrupt)} unreadable line(s) skipped: line {lines}{more} "
                        "(see “Record problems”)",
                        s.small,
                    )
                )
        self.story.add(PageBreak())

    def _revision(self) -> str:
        revision = self.model.run.git_revision
        if not revision:
            return "unknown"
        if self.model.run.dirty:
            return (
                f"{revision.removesuffix('-dirty')} — DIRTY: the work tree had uncommitted "
                "changes; the test sources' SHA-256 below says which tests ran"
            )
        return revision

    def _sources(self) -> str:
        run = self.model.run
        if not run.test_sources_sha256:
            return "not recorded"
        return f"{run.test_sources_sha256} ({len(run.test_sources)} test module(s))"

    def _workers(self) -> str:
        workers = self.model.run.workers
        return (
            f"{len(workers)} pytest-xdist workers, each with its own emulator; their records "
            "are merged here: "
            + "; ".join(
                f"{name}: {markup(str(w.get('record', '')))}" for name, w in workers.items()
            )
        )

    def _signature(self) -> Table:
        """The sign-off block: reviewer's name, date, signature and the decision."""
        s = self.styles
        line = "_" * 28
        rows = [
            [
                _p("Reviewed by", s.cell_bold),
                _p(f"Name {line}", s.cell),
                _p(f"Date {line}", s.cell),
            ],
            [
                _p("Decision", s.cell_bold),
                _p("[   ] approved        [   ] rejected", s.cell),
                _p(f"Signature {line}", s.cell),
            ],
        ]
        table = Table(rows, colWidths=[30 * mm, (FRAME_W - 30 * mm) / 2, (FRAME_W - 30 * mm) / 2])
        table.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 0.5, GRID),
                    ("BACKGROUND", (0, 0), (0, -1), HEADER_ROW),
                    ("TOPPADDING", (0, 0), (-1, -1), 7),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
                ]
            )
        )
        return table

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
