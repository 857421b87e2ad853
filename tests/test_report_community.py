"""The ``community`` record line: model, charts and the "Community day" part of the PDF."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.records import LINE_TYPES, RecordWriter, read_records
from reports import fonts
from reports.build import build_report
from reports.community import WITH, WITHOUT, CommunityDay, parse_community, parse_energy
from reports.community_plots import DPI, deal_timeline, soc_chart
from reports.model import ReportModel, build_model
from reports.pdf import write_pdf
from reports.pdf_text import page_strings, page_texts
from reports.synthetic import COMMUNITY_NODEID, SyntheticOptions, write_synthetic_run
from reports.synthetic_community import community_fields

PNG = b"\x89PNG\r\n\x1a\n"


def totals(pv: float, used: float, load: float, utility: float) -> dict[str, float]:
    return {
        "pv_wh": pv,
        "pv_used_wh": used,
        "pv_wasted_wh": pv - used,
        "load_wh": load,
        "utility_wh": utility,
        "self_consumption": used / pv,
    }


def small_line(**override: Any) -> dict[str, Any]:
    """A hand-made three-unit day whose figures the tests can check by hand."""
    line: dict[str, Any] = {
        "name": "three units",
        "start_of_day": 6 * 3600.0,
        "duration_s": 12 * 3600.0,
        "t": [0.0, 3600.0, 7200.0],
        "soc": {"A1": [0.5, 0.6, 0.7], "A2": [0.4, 0.35, 0.3], "A3": [0.9, 0.8, 0.6]},
        "soc_limits": [0.2, 0.95],
        "deals": [
            {"name": "d1", "discharge": "A3", "charge": "A2", "current": 2.0, "amount_wh": 100,
             "t_start": 100.0, "t_stop": 700.0, "energy_wh": 100.4, "state": "done",
             "stop_reason": "amount reached"},
            {"name": "d2", "discharge": "A3", "charge": "A1", "current": 2.0, "amount_wh": 200,
             "t_start": 400.0, "t_stop": 900.0, "energy_wh": 80.0, "state": "stopped",
             "stop_reason": "SoC limit"},
            {"name": "d3", "discharge": "A1", "charge": "A2", "current": 2.0, "amount_wh": 100,
             "t_start": None, "t_stop": None, "energy_wh": 0, "state": "refused",
             "stop_reason": "interlock"},
        ],
        "refused": 1,
        "energy": {
            WITH: totals(1000.0, 900.0, 1200.0, 300.0),
            WITHOUT: totals(1000.0, 600.0, 1200.0, 650.0),
        },
        "per_unit": {
            "A1": {WITH: totals(500.0, 450.0, 400.0, 100.0), WITHOUT: totals(500, 300, 400, 200)},
        },
    }  # fmt: skip
    line.update(override)
    return line


def model_with(run_dir: Path, *lines: dict[str, Any]) -> ReportModel:
    writer = RecordWriter(run_dir)
    writer.write("test_start", nodeid="t::community", name="community")
    for fields in lines:
        writer.write("community", **fields)
    writer.write("test_end", nodeid="t::community", outcome="PASS")
    writer.write("run_end", outcome="PASS")
    writer.close()
    return build_model(read_records(run_dir))


@pytest.fixture
def cid_font(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(fonts.ENV_FONT, "/nonexistent/font.ttf")
    fonts.report_fonts.cache_clear()
    yield
    fonts.report_fonts.cache_clear()


# -- the model -----------------------------------------------------------------------------


def test_community_is_a_version_1_line_type() -> None:
    assert "community" in LINE_TYPES


def test_hand_made_line_gives_deals_comparison_and_units(tmp_path: Path) -> None:
    model = model_with(tmp_path, small_line())
    (day,) = model.tests[0].community
    assert not day.problems
    assert day.units == ["A1", "A2", "A3"] and day.time_of_day
    assert day.soc_limits == (0.2, 0.95) and day.refused == 1
    assert [d.name for d in day.executed] == ["d1", "d2"] and day.not_started == 1
    assert day.max_concurrent() == 2
    assert day.energy_exchanged_wh == pytest.approx(180.4)
    assert day.stop_reasons == [("amount reached", 1), ("SoC limit", 1)]
    assert day.hours(np.array([0.0, 3600.0])).tolist() == [6.0, 7.0]
    rows = {r.quantity: r for r in day.comparison()}
    utility = rows["Utility import"]
    assert (utility.without, utility.with_, utility.change) == (650.0, 300.0, -350.0)
    assert utility.relative == pytest.approx(-350 / 650) and utility.better is True
    wasted = rows["PV wasted"]
    assert wasted.change == pytest.approx(-300.0) and wasted.better is True
    share = rows["Self-consumption"]
    assert share.without == pytest.approx(60.0) and share.with_ == pytest.approx(90.0)
    assert share.change == pytest.approx(30.0) and share.better is True
    assert rows["Household load"].better is None  # unchanged, and neither better nor worse
    deals = day.unit_deals()
    assert deals["A3"].discharged == 2 and deals["A3"].sent_wh == pytest.approx(180.4)
    assert (deals["A2"].charged, deals["A1"].charged) == (1, 1)
    assert day.per_unit["A1"].without_interchange is not None
    assert day.per_unit["A1"].without_interchange.utility_wh == 200.0


def test_interchange_that_makes_things_worse_is_flagged_worse() -> None:
    line = small_line(
        energy={WITH: totals(1000, 500, 1200, 800), WITHOUT: totals(1000, 600, 1200, 650)}
    )
    rows = {r.quantity: r.better for r in parse_community(line, 1).comparison()}
    assert rows["Utility import"] is False and rows["Self-consumption"] is False
    assert rows["PV wasted"] is False and rows["PV used"] is False


def test_optional_negotiation_facts_are_shown(tmp_path: Path) -> None:
    extra = {"negotiations": 412, "excluded": {"A2": "no answer for 30 s"}, "trips": ["branch B"]}
    model = model_with(tmp_path, small_line(**extra))
    (day,) = model.tests[0].community
    assert (day.negotiations, day.excluded, day.trips) == (412, extra["excluded"], ["branch B"])
    write_pdf(model, tmp_path / "report.pdf", plots=False)
    text = "\n".join(page_texts((tmp_path / "report.pdf").read_bytes()))
    assert "Negotiations\n412" in text and "A2: no answer for 30 s" in text
    assert "Safety trips\nbranch B" in text


def test_line_outside_a_test_belongs_to_the_run(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    writer.write("community", **small_line())
    writer.close()
    model = build_model(read_records(tmp_path))
    assert len(model.session.community) == 1 and not model.session.empty


def test_garbled_fields_are_named_not_fatal(tmp_path: Path) -> None:
    line = small_line(
        start_of_day="dawn",
        t=[0.0, 3600.0, "x"],
        soc={"A1": [0.5, 0.6], "A2": "full", "A3": [50, 60, 70]},
        soc_limits=[0.95, 0.2],
        deals=[
            "not a deal",
            {"name": "back", "discharge": "A1", "charge": "A2", "t_start": 900, "t_stop": 100},
            {"name": "one-sided", "discharge": "A1", "t_start": 10.0, "t_stop": 20.0},
            {"name": "open", "discharge": "A1", "charge": "A3", "t_start": 30.0},
        ],
        refused="three",
        energy={WITH: {"pv_wh": 10.0}, WITHOUT: [1, 2]},
        per_unit=["A1"],
    )
    model = model_with(tmp_path, line)
    (day,) = model.tests[0].community
    problems = "\n".join(day.problems)
    for expected in (
        "start_of_day is not a number (dawn)",
        "soc of unit A1 has 2 values for 3 times",
        "soc of unit A2 has 0 values",
        "soc of unit A3 leaves 0..1",
        "soc_limits [0.95, 0.2] is not [discharge limit, charge limit]",
        "deals[0] is not an object",
        "deal back stops (100 s) before it starts",
        "deal one-sided names no charge unit",
        "deal open started but has no t_stop",
        "refused is not a count ('three')",
        "energy.with_interchange has no number for pv_used_wh",
        "energy.without_interchange is not an object of energy totals",
        "per_unit is not an object of units",
    ):
        assert expected in problems, expected
    assert not day.time_of_day and day.soc_limits == (None, None)
    assert np.isnan(day.t[2]) and np.isnan(day.soc["A1"][2]) and day.refused is None
    assert [d.name for d in day.deals] == ["one-sided", "open"]
    assert day.end_s == 12 * 3600.0  # the open deal is drawn to the end of the day
    pdf = write_pdf(model, tmp_path / "report.pdf")
    assert pdf >= 2
    text = "\n".join(page_texts((tmp_path / "report.pdf").read_bytes()))
    assert "Record problem: deal back stops" in text
    assert "Refused by an interlock" in text and "not recorded" in text


def test_missing_everything_but_the_type_still_reports(tmp_path: Path) -> None:
    model = model_with(tmp_path, {})
    (day,) = model.tests[0].community
    assert day.name == "community day (line 2)"
    assert any("energy is missing" in p for p in day.problems)
    assert any("deals is missing" in p for p in day.problems)
    assert day.comparison()[0].change is None
    write_pdf(model, tmp_path / "report.pdf")
    text = "\n".join(page_texts((tmp_path / "report.pdf").read_bytes()))
    assert "The record holds no energy totals: no comparison." in text
    assert "No deal timeline: no deal was executed." in text
    assert "No SoC chart: the record holds no SoC series." in text


def test_self_consumption_is_computed_when_absent_and_undefined_without_pv() -> None:
    problems: list[str] = []
    some = parse_energy(
        {"pv_wh": 200.0, "pv_used_wh": 150.0, "pv_wasted_wh": 50.0, "load_wh": 1.0,
         "utility_wh": 0.0},
        "e", problems,
    )  # fmt: skip
    assert some is not None and some.self_consumption == 0.75
    assert problems == ["e.self_consumption is missing; computed as PV used / PV"]
    problems.clear()
    none = parse_energy(
        {"pv_wh": 0.0, "pv_used_wh": 0.0, "pv_wasted_wh": 0.0, "load_wh": 1.0,
         "utility_wh": 1.0, "self_consumption": None},
        "e", problems,
    )  # fmt: skip
    assert none is not None and none.self_consumption is None and not problems
    assert CommunityDay("nothing").units == []


# -- the synthetic day ---------------------------------------------------------------------


def test_synthetic_day_is_deterministic_consistent_and_inside_its_limits() -> None:
    first, again, other = community_fields(seed=3), community_fields(seed=3), community_fields(4)
    assert first == again and first != other
    assert len(first["soc"]) == 19 and len(first["t"]) == 289  # every 300 s over 24 h
    assert first["t"][1] - first["t"][0] == 300.0 and first["t"][-1] == 86400.0
    assert 100 <= len(first["deals"]) <= 400
    soc = np.array(list(first["soc"].values()))
    low, high = first["soc_limits"]
    assert soc.min() >= low - 1e-3 and soc.max() <= high + 1e-3
    for run in (WITH, WITHOUT):  # community totals are the sums of the units'
        for key in ("pv_wh", "pv_wasted_wh", "load_wh", "utility_wh"):
            units = sum(u[run][key] for u in first["per_unit"].values())
            assert first["energy"][run][key] == pytest.approx(units, abs=1.0)
    energy = first["energy"]
    assert energy[WITH]["utility_wh"] < energy[WITHOUT]["utility_wh"]
    assert energy[WITH]["self_consumption"] > energy[WITHOUT]["self_consumption"]
    refused = [d for d in first["deals"] if d["t_start"] is None]
    assert len(refused) == first["refused"]
    for deal in first["deals"]:
        if deal["t_start"] is not None:
            assert deal["t_stop"] >= deal["t_start"] and deal["discharge"] != deal["charge"]


def test_synthetic_run_with_community_has_a_clean_model(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=1, community=True))
    model = build_model(read_records(tmp_path))
    assert not model.missing and model.verdict == "PASS"
    test = model.tests[-1]
    assert test.nodeid == COMMUNITY_NODEID and not test.failed_measurements
    (day,) = test.community
    assert day.problems == [] and len(day.units) == 19
    assert list(day.branches) == ["A", "B", "C"] and day.branch_of("C19") == "C"


# -- charts --------------------------------------------------------------------------------


def test_charts_render_with_a_label_per_unit_in_row_order() -> None:
    day = parse_community(community_fields(units=19, seed=5), 1)
    soc = soc_chart(day, 500.0, 700.0)
    assert soc is not None and soc.png.startswith(PNG)
    assert [lab.text.split()[0] for lab in soc.labels][:19] == day.units
    assert len(soc.labels) == 20  # and the community panel
    timeline = deal_timeline(day, 500.0, 20.0)
    assert timeline is not None and timeline.png.startswith(PNG)
    rows = [lab for lab in timeline.labels if lab.align == "right"]
    assert [lab.text for lab in rows] == day.units
    ys = [lab.y for lab in rows]
    assert ys == sorted(ys, reverse=True)  # the first unit on top
    assert all(0.0 < lab.y < 1.0 and 0.0 < lab.x < 1.0 for lab in timeline.labels)
    assert {lab.text for lab in timeline.labels if lab.bold} == {
        "branch A",
        "branch B",
        "branch C",
    }
    width = int.from_bytes(timeline.png[16:20], "big")
    assert abs(width - 500.0 / 72.0 * DPI) <= 1.0  # drawn at its size on the page


def test_charts_without_data_are_none() -> None:
    empty = parse_community({}, 1)
    assert soc_chart(empty, 500.0, 700.0) is None and deal_timeline(empty, 500.0, 20.0) is None


def test_a_large_community_is_split_over_several_charts(tmp_path: Path) -> None:
    fields = community_fields(units=50, seed=2)
    del fields["branches"]
    model = model_with(tmp_path, fields)
    write_pdf(model, tmp_path / "report.pdf")
    text = "\n".join(page_texts((tmp_path / "report.pdf").read_bytes()))
    assert "Deal timeline" in text and "units C41 to C50" in text
    assert "SoC of every unit — units C01 to C23".encode("cp1252") in b"\n".join(
        page_strings((tmp_path / "report.pdf").read_bytes())
    )


# -- the PDF -------------------------------------------------------------------------------


def test_report_shows_the_comparison_deals_and_charts(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=1, community=True))
    line = next(read_records(tmp_path).of_type("community"))
    pdf = build_report(tmp_path).read_bytes()
    pages = page_texts(pdf)
    text = "\n".join(pages)
    assert "Community day: community-19 day" in text
    without, with_ = line["energy"][WITHOUT], line["energy"][WITH]
    for key in ("utility_wh", "pv_wh", "pv_used_wh", "pv_wasted_wh"):
        assert f"{without[key]:,.0f} Wh" in text and f"{with_[key]:,.0f} Wh" in text
    change = with_["utility_wh"] - without["utility_wh"]
    assert f"{change:+,.0f} Wh ({change / without['utility_wh'] * 100:+.1f} %)" in text
    assert f"{without['self_consumption'] * 100:.1f} %" in text
    points = (with_["self_consumption"] - without["self_consumption"]) * 100
    assert f"{points:+.1f} points" in text
    executed = sum(1 for d in line["deals"] if d["t_start"] is not None)
    assert f"{executed} deal(s)" in text and f"Deal timeline ({executed} deals)" in text
    assert "Refused by an interlock\n" + str(line["refused"]) in text
    assert "SoC of every unit" in text and "Per unit (without" in text
    timeline_page = next(p for p in pages if "Deal timeline (" in p)
    for unit in ("C01", "C10", "C19", "branch B"):  # labels drawn beside the chart
        assert unit in timeline_page
    assert pdf.count(b"/Subtype /Image") == 1 + 2  # one exchange plot, two community charts


def test_report_without_plots_leaves_the_charts_out(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=0, community=True))
    pdf = build_report(tmp_path, plots=False).read_bytes()
    assert b"/Subtype /Image" not in pdf
    text = "\n".join(page_texts(pdf))
    assert "(deal timeline and SoC chart left out of this report)" in text
    assert "Utility import" in text and "Per unit (without" in text


def test_japanese_unit_names_label_the_charts(tmp_path: Path, cid_font: None) -> None:
    names = {"A1": "蓄電池1", "A2": "蓄電池2", "A3": "負荷ユニット"}
    line = small_line()
    line["soc"] = {names[u]: v for u, v in line["soc"].items()}
    for deal in line["deals"]:
        deal["discharge"], deal["charge"] = names[deal["discharge"]], names[deal["charge"]]
    line["per_unit"] = {}
    write_pdf(model_with(tmp_path, line), tmp_path / "report.pdf")
    pdf = (tmp_path / "report.pdf").read_bytes()
    strings = b"\n".join(page_strings(pdf))
    # each name in the CID font: beside the timeline, over its SoC panel, in the unit table
    assert strings.count("負荷ユニット".encode("utf-16-be")) == 3
    assert strings.count("蓄電池".encode("utf-16-be")) == 6
    assert pdf.count(b"/Subtype /Image") == 2


_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.sampled_from("aC0 .:_-蓄電池→<&"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=16,
)
_KEYS = ("name", "start_of_day", "duration_s", "t", "soc", "soc_limits", "deals", "refused",
         "energy", "per_unit", "branches")  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(_KEYS), _junk),
    keep=st.sets(st.sampled_from(_KEYS)),
)
def test_any_field_values_give_a_model_and_a_pdf_with_charts(
    fields: dict[str, Any], keep: set[str]
) -> None:
    base = {k: v for k, v in small_line().items() if k in keep}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        model = model_with(run, base | fields)
        (day,) = model.tests[0].community
        assert day.name
        assert write_pdf(model, run / "report.pdf", plots=True) >= 1
