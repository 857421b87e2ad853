"""The bench tables of the PDF report: the instruments and the envelopes in force.

The instruments as the record identified them (vendor, model, serial, firmware, resource,
emulated or real; one that did not answer is shaded with its problem) and the bus and unit
envelopes the run was held to, as recorded in the run header.
"""

from __future__ import annotations

from typing import Any

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Table, TableStyle

from reports.fields import number
from reports.layout import FAIL_ROW, FRAME_W
from reports.layout import fmt as _fmt
from reports.layout import key_values as _key_values
from reports.layout import paragraph as _p
from reports.layout import table as _table
from reports.model import Instrument, ReportModel
from reports.story import Story


def _amps(value: float | None, can: Any, what: str) -> str:
    """A unit's current limit, or ``cannot sink`` for a unit that cannot."""
    if can is False:
        return f"cannot {what}"
    return f"{_fmt(value)} A"


class BenchTables:
    """Writes the "Instruments" and "Envelopes in force" sections into ``story``."""

    def __init__(self, model: ReportModel, story: Story) -> None:
        self.model = model
        self.story = story
        self.styles = story.styles

    def instruments(self) -> None:
        """One table per worker's emulator (one table for a run of one process); the kind
        (emulated or real) said once when it is the same for all; calibration dates when
        the bench file gives them; an instrument that did not answer gets one wide cell."""
        s = self.styles
        self.story.heading("Instruments")
        items = self.model.run.instruments
        if not items:
            self.story.para("The record holds no instrument identities.")
            return
        kinds = {i.emulated for i in items}
        if len(kinds) == 1:
            kind = {True: "emulated", False: "real", None: "of unknown kind"}[kinds.pop()]
            self.story.para(f"Every instrument is {kind}.", s.small)
        overdue = set(map(id, self.model.run.overdue()))
        for worker in dict.fromkeys(i.worker for i in items):
            group = [i for i in items if i.worker == worker]
            if worker:
                w = self.model.run.workers.get(worker, {})
                self.story.add(
                    _p(
                        f"Worker {worker} — its own emulator (log {w.get('emulator_log', '—')})",
                        s.h3,
                    )
                )
            self.story.add(self._instrument_table(group, len(kinds) > 1, overdue))

    def _instrument_table(
        self, items: list[Instrument], with_kind: bool, overdue: set[int]
    ) -> Table:
        s = self.styles
        with_cal = any(i.calibration_due for i in self.model.run.instruments)
        header = ["unit", "instrument", "vendor", "model", "serial", "firmware", "resource"]
        widths = [13, 19, 25, 25, 25, 18, 45]
        if with_cal:
            header.append("calibration due")
            widths.append(20)
        if with_kind:
            header.append("kind")
            widths.append(15)
        rows: list[list[str]] = []
        shade: list[tuple[int, colors.Color]] = []
        spans: list[int] = []
        for i, inst in enumerate(items):
            extra = [inst.calibration_due or "—"] if with_cal else []
            if with_kind:
                extra.append({True: "emulated", False: "real", None: "unknown"}[inst.emulated])
            if inst.problem:
                shade.append((i, FAIL_ROW))
                spans.append(i)
                rows.append(
                    [inst.unit, inst.instrument, f"did not answer: {inst.problem}"]
                    + [""] * 4
                    + extra
                )
                continue
            if id(inst) in overdue:
                shade.append((i, FAIL_ROW))
            rows.append(
                [
                    inst.unit,
                    inst.instrument or inst.driver,
                    inst.vendor,
                    inst.model,
                    inst.serial or "—",
                    inst.firmware or "—",
                    inst.resource,
                    *extra,
                ]
            )
        scale = FRAME_W / (sum(widths) * mm)
        table = _table(s, header, rows, [w * mm * scale for w in widths], shade=shade)
        table.setStyle(TableStyle([("SPAN", (2, i + 1), (6, i + 1)) for i in spans]))
        return table

    def envelopes(self) -> None:
        s = self.styles
        run = self.model.run
        self.story.heading("Envelopes in force")
        if not run.bus_envelope and not run.unit_envelopes:
            self.story.para("The record holds no envelopes.")
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
            self.story.add(_p("Bus", s.h3), _key_values(s, rows))
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
                        _amps(g("current_source_max"), env.get("can_source"), "source"),
                        _amps(g("current_sink_max"), env.get("can_sink"), "sink"),
                        f"{_fmt(g('power_max'))} W",
                        f"{_fmt(g('slew_max'))} A/s",
                        soc,
                        batt,
                    ]
                )
            widths = [22, 16, 16, 19, 18, 18, 19, 21, 29]
            scale = FRAME_W / (sum(widths) * mm)
            self.story.add(
                _p("Units", s.h3), _table(s, header, rows2, [w * mm * scale for w in widths])
            )
