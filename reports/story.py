"""The story of one PDF report: its flowables in order and its section numbering.

Every part of the report (cover, bench tables, test sections, appendix) writes into one
:class:`Story`, so that the sections are numbered in the order they appear whichever part
writes them.
"""

from __future__ import annotations

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable

from reports.layout import Styles
from reports.layout import paragraph as _p


class Story:
    """The flowables of one report, in order, and the number of the last section."""

    def __init__(self, styles: Styles) -> None:
        self.styles = styles
        self.flowables: list[Flowable] = []
        self._section = 0

    def add(self, *flowables: Flowable) -> None:
        self.flowables.extend(flowables)

    def para(self, value: str, style: ParagraphStyle | None = None) -> None:
        """A paragraph of ``value`` (markup), body text unless ``style`` says otherwise."""
        self.add(_p(value, style or self.styles.body))

    def heading(self, title: str) -> str:
        """A numbered section heading, kept with what follows; returns its number."""
        self._section += 1
        number_ = str(self._section)
        self.add(CondPageBreak(60 * mm), _p(f"{number_}  {title}", self.styles.h1))
        return number_
