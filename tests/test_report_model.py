"""The report model: verdicts, attribution of lines to tests, and every gap named."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.records import RecordWriter, read_records
from hil.run_header import overall_outcome, run_end_fields
from reports.model import ReportModel, build_model, panel_of
from reports.pdf import write_pdf
from reports.synthetic import SyntheticOptions, write_synthetic_run

HEADER: dict[str, Any] = {
    "run_id": "r-1",
    "bench": {"name": "b", "path": "b.toml", "sha256": "00", "text": "x = 1\n"},
    "emulated": True,
    "instruments": [
        {"unit": "E001", "instrument": "eza2500", "vendor": "TDK-Lambda", "model": "EZA"},
        {"unit": "E003", "instrument": "eza2500", "vendor": "TDK-Lambda", "model": "EZA"},
    ],
    "envelopes": {"bus": {"balance_allowance_per_unit": 0.125}, "units": {"E001": {}}},
}


def model_of(run_dir: Path, lines: list[tuple[str, dict[str, Any]]]) -> ReportModel:
    writer = RecordWriter(run_dir)
    for line_type, fields in lines:
        writer.write(line_type, **fields)
    writer.close()
    return build_model(read_records(run_dir))


def test_complete_synthetic_run_gives_worst_verdict_counts_and_three_panels(
    tmp_path: Path,
) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=6, fail_every=3, trip_test=1))
    model = build_model(read_records(tmp_path))
    assert not model.aborted and not model.missing and not model.corrupt
    assert model.verdict == "SAFETY TRIP"
    assert model.counts == {"SAFETY TRIP": 1, "FAIL": 2, "PASS": 3}
    assert [t.outcome for t in model.tests] == [
        "PASS",
        "SAFETY TRIP",
        "FAIL",
        "PASS",
        "PASS",
        "FAIL",
    ]
    failing = model.tests[2]
    assert [m.name for m in failing.measurements if m.failed] == ["energy delivered"]
    (view,) = model.tests[0].exchanges.values()
    assert [t.label for t in view.currents] == ["E001", "E002", "E003"]
    assert [t.label for t in view.voltage] == ["bus"] and [t.label for t in view.residual] == [
        "residual"
    ]
    assert [m.label for m in view.steps][:3] == ["activation", "ramp-up", "warm-up 1 A"]
    assert len(view.steps) == 8  # the three series repeat the steps; each is marked once
    tripped = model.tests[1]
    assert [e.level for e in tripped.events] == ["warn", "error"]
    assert tripped.shutdowns[0].complete and tripped.shutdowns[0].reference == "E002"
    assert model.run.bench is not None and model.run.bench.text_matches is True


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        (["PASS", "FAIL", "PASS"], "FAIL"),
        (["FAIL", "ERROR"], "ERROR"),
        (["ERROR", "SAFETY TRIP", "FAIL"], "SAFETY TRIP"),
        (["PASS", "SKIPPED"], "PASS"),
        (["SKIPPED"], "SKIPPED"),
        ([], "NO TESTS"),
        (["PASS", "weird"], "ERROR"),
    ],
)
def test_overall_outcome_is_the_worst(outcomes: list[str], verdict: str) -> None:
    assert overall_outcome(outcomes) == verdict
    assert run_end_fields(outcomes)["outcome"] == verdict


def test_record_without_run_end_is_aborted_and_names_the_running_test(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=4, stop_after=2))
    model = build_model(read_records(tmp_path))
    assert model.aborted and model.verdict == "ABORTED"
    assert [t.outcome for t in model.tests] == ["PASS", "PASS", "ABORTED"]
    assert any("test_deal[02] has no test_end line" in m for m in model.missing)
    assert any("no run_end line" in m and "ABORTED" in m for m in model.missing)


def test_corrupt_middle_line_is_skipped_and_named(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, SyntheticOptions(tests=2))
    lines = path.read_bytes().split(b"\n")
    lines[4] = b'{"schema": "pp2p-hil/records", "version": 1, "type": "measu'
    path.write_bytes(b"\n".join(lines))
    model = build_model(read_records(tmp_path))
    assert [n for n, _ in model.corrupt] == [5]
    assert not model.aborted and model.verdict == "PASS"


def test_missing_header_and_missing_test_end_are_named(tmp_path: Path) -> None:
    model = model_of(
        tmp_path,
        [
            ("test_start", {"nodeid": "t::a"}),
            ("test_start", {"nodeid": "t::b"}),
            ("test_end", {"nodeid": "t::b", "outcome": "pass"}),
            ("run_end", {"outcome": "PASS"}),
        ],
    )
    assert any("run header (run_start line) is missing" in m for m in model.missing)
    assert any("t::a has no test_end line" in m for m in model.missing)
    assert [t.outcome for t in model.tests] == ["UNKNOWN", "PASS"]
    assert model.verdict == "ERROR"  # an unknown outcome is never a pass


def test_recorded_run_outcome_worse_than_tests_wins(tmp_path: Path) -> None:
    model = model_of(
        tmp_path,
        [
            ("run_start", HEADER),
            ("test_start", {"nodeid": "t::a"}),
            ("test_end", {"nodeid": "t::a", "outcome": "PASS"}),
            ("run_end", {"outcome": "SAFETY TRIP"}),  # e.g. a trip in session teardown
        ],
    )
    assert model.verdict == "SAFETY TRIP"


def test_engine_series_form_is_plotted_by_column_and_energy_is_not(tmp_path: Path) -> None:
    data = {
        "t": [0.0, 5.0, 10.0],
        "bus_voltage": [350.0, 350.1, None],
        "residual": [0.01, 0.02, 0.0],
        "energy_wh": [0.0, 1.0, 2.0],
        "E001": [1.5, 1.5, 1.5],
        "E003": [-1.5, -1.49, -1.5, -1.4],  # one sample too many: named, not fatal
    }
    model = model_of(
        tmp_path,
        [
            ("run_start", HEADER),
            ("test_start", {"nodeid": "t::a"}),
            ("step", {"exchange": "one", "step": "activate", "t": 0.0}),
            ("step", {"exchange": "one", "step": "start", "t": 4.0}),
            (
                "series",
                {
                    "name": "exchange one",
                    "exchange": "one",
                    "state": "done",
                    "energy_wh": 2.0,
                    "columns": list(data),
                    "data": data,
                },
            ),
            ("test_end", {"nodeid": "t::a", "outcome": "PASS"}),
            ("run_end", {"outcome": "PASS"}),
        ],
    )
    view = model.tests[0].exchanges["one"]
    assert [t.label for t in view.currents] == ["E001", "E003"]
    assert [t.label for t in view.voltage] == ["bus_voltage"]
    assert np.isnan(view.voltage[0].y[2])
    assert view.unplotted == {"energy_wh"} and view.energy_wh == 2.0 and view.state == "done"
    assert [m.label for m in view.steps] == ["activate", "start"]
    assert len(view.currents[1].t) == 3 and "column 'E003' has 4 values" in view.problems[0]


def test_chunked_series_lines_are_joined_in_time(tmp_path: Path) -> None:
    chunk = {"exchange": "x", "name": "unit currents", "unit": "A"}
    model = model_of(
        tmp_path,
        [
            ("series", {**chunk, "t": [0, 1], "columns": {"E001": [1, 2]}}),
            ("series", {**chunk, "t": [2, 3], "columns": {"E001": [3, 4]}}),
        ],
    )
    (trace,) = model.session.exchanges["x"].currents
    assert trace.t.tolist() == [0, 1, 2, 3] and trace.y.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("column", "unit", "series", "panel"),
    [
        ("bus_voltage", "", "", "voltage"),
        ("residual", "", "", "residual"),
        ("E001", "", "", "currents"),
        ("energy_wh", "", "", None),
        ("soc:E001", "", "", None),
        ("bus", "V", "bus voltage", "voltage"),
        ("r", "A", "balance residual", "residual"),
        ("蓄電池1", "A", "unit currents", "currents"),
    ],
)
def test_columns_go_to_their_panel(column: str, unit: str, series: str, panel: str | None) -> None:
    assert panel_of(column, unit, series, frozenset({"E001"})) == panel


def test_shutdown_cut_off_mid_way_is_incomplete_and_named(tmp_path: Path) -> None:
    model = model_of(
        tmp_path,
        [
            ("run_start", HEADER),
            ("test_start", {"nodeid": "t::a"}),
            ("shutdown", {"event": "begin", "reason": "supervisor: balance", "reference": "E003"}),
            ("shutdown", {"event": "step", "unit": "E001", "action": "idle", "t": 1.0, "ok": True}),
            ("shutdown", {"event": "step", "unit": "E001", "action": "confirm idle", "ok": False}),
        ],
    )
    (shutdown,) = model.tests[0].shutdowns
    assert not shutdown.complete and shutdown.reference == "E003"
    assert [s.confirmed for s in shutdown.steps] == [True, False]
    assert any("shutdown 'supervisor: balance' has no end line" in m for m in model.missing)


def test_shutdown_end_line_gives_steps_and_unconfirmed_units(tmp_path: Path) -> None:
    steps = [{"unit": "E001", "action": "idle", "t": 1.0, "ok": True, "detail": ""}]
    model = model_of(
        tmp_path,
        [
            ("shutdown", {"event": "begin", "reason": "teardown", "t": 0.5}),
            (
                "shutdown",
                {"event": "end", "reason": "teardown", "steps": steps, "unconfirmed": ["E002"]},
            ),
            (
                "shutdown",
                {
                    "reason": "single line",
                    "steps": [{"unit": "E003", "confirmed": False}],
                    "unsafe": ["E003"],
                },
            ),
        ],
    )
    first, single = model.session.shutdowns
    assert first.complete and first.started == 0.5 and first.unsafe == ["E002"]
    assert single.complete and single.unsafe == ["E003"] and single.steps[0].confirmed is False


def test_supervisor_cycles_are_summed_up_not_listed(tmp_path: Path) -> None:
    cycle = {"name": "supervisor", "verdict": "pass", "value": 0}
    model = model_of(
        tmp_path,
        [
            ("test_start", {"nodeid": "t::a"}),
            ("measurement", {**cycle, "checks": {"comm:E001": "pass", "balance": "pass"}}),
            ("measurement", {**cycle, "checks": {"comm:E001": "pass", "balance": "warn"}}),
            ("measurement", {**cycle, "checks": {"comm:E001": "error", "balance": "warn"}}),
            ("measurement", {"name": "energy", "value": 5.0, "unit": "Wh", "limits": [4, 6]}),
        ],
    )
    test = model.tests[0]
    assert test.supervisor.cycles == 3 and test.supervisor.warn_cycles == 1
    assert test.supervisor.error_cycles == 1
    assert test.supervisor.failing == {"balance": [2, 0], "comm:E001": [0, 1]}
    (energy,) = test.measurements
    assert energy.verdict == "PASS" and (energy.low, energy.high) == (4.0, 6.0)


def test_refused_exchange_becomes_a_note(tmp_path: Path) -> None:
    refused = {"name": "", "discharge": {"E001": 3.0}, "charge": {"E003": 3.0}}
    model = model_of(
        tmp_path,
        [("step", {"step": "refused", "reason": "[rule unit-capacity]", "exchange": refused})],
    )
    assert model.session.notes == ["exchange E001 3 A → E003 3 A was refused: [rule unit-capacity]"]
    assert not model.session.exchanges


def test_bench_text_that_does_not_match_its_hash_is_flagged(tmp_path: Path) -> None:
    model = model_of(tmp_path, [("run_start", HEADER)])
    assert model.run.bench is not None and model.run.bench.text_matches is False


_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.sampled_from("aZ0 .:_-蓄電池→Σ<&(\\)"), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = (
    "test",
    "nodeid",
    "name",
    "outcome",
    "value",
    "low",
    "high",
    "verdict",
    "unit",
    "t",
    "columns",
    "data",
    "steps",
    "exchange",
    "step",
    "event",
    "reason",
    "level",
    "checks",
    "bench",
    "instruments",
    "envelopes",
    "software",
    "unconfirmed",
    "ok",
    "message",
    "soc",
    "deals",
    "energy",
    "per_unit",
    "soc_limits",
)
_TYPES = (
    "run_start",
    "test_start",
    "step",
    "measurement",
    "series",
    "safety_event",
    "shutdown",
    "test_end",
    "note",
    "run_end",
    "community",
)


@settings(max_examples=30, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(_TYPES), st.dictionaries(st.sampled_from(_FIELDS), _junk)),
        min_size=1,
        max_size=12,
    )
)
def test_any_field_values_still_give_a_model_and_a_pdf(
    lines: list[tuple[str, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        writer = RecordWriter(run)
        for line_type, fields in lines:
            fields = {k: v for k, v in fields.items() if k not in ("schema", "version", "type")}
            writer.write(line_type, **fields)
        writer.close()
        model = build_model(read_records(run))
        assert model.verdict
        assert write_pdf(model, run / "report.pdf", plots=False) >= 1


def test_an_interrupted_run_is_interrupted_and_lists_the_tests_that_never_ran(
    tmp_path: Path,
) -> None:
    end = run_end_fields(["PASS", "ERROR"]) | {
        "outcome": "INTERRUPTED",
        "interrupted": "the session was interrupted by SIGINT",
        "not_run": ["t.py::c", "t.py::d"],
    }
    model = model_of(
        tmp_path,
        [
            ("run_start", HEADER),
            ("test_start", {"nodeid": "t.py::a"}),
            ("test_end", {"nodeid": "t.py::a", "outcome": "PASS"}),
            ("test_start", {"nodeid": "t.py::b"}),
            ("test_end", {"nodeid": "t.py::b", "outcome": "ERROR", "message": "interrupted"}),
            ("run_end", end),
        ],
    )
    assert model.verdict == "INTERRUPTED" and not model.aborted
    assert model.run.not_run == ["t.py::c", "t.py::d"]
    assert "SIGINT" in model.run.interrupted
    assert write_pdf(model, tmp_path / "report.pdf") >= 1
