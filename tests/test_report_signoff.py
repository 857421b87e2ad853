"""What a reviewer signs on: operator, DUT, station, the signature block, the dirty revision,
the test sources' hash, calibration dates (overdue ones warned), the stimulus of a test and
the merge of pytest-xdist workers' records (``reports.merge``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hil.records import read_records
from reports.build import build_report, load_model
from reports.merge import merge_workers
from reports.pdf_text import page_texts
from reports.synthetic import SyntheticOptions, write_synthetic_run


def edit_lines(run_dir: Path, change: dict[str, Any], extra: list[dict[str, Any]]) -> None:
    """Add ``change`` to the run header and insert ``extra`` after the first test_start."""
    path = run_dir / "records.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0].update(change)
    first = next(i for i, line in enumerate(lines) if line["type"] == "test_start")
    stamp = {"schema": lines[0]["schema"], "version": 2, "wall": lines[0]["wall"]}
    lines[first + 1 : first + 1] = [stamp | line for line in extra]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def signed_run(tmp_path: Path) -> Path:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=2))
    header = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    unit = header["instruments"][0]["unit"]
    name = header["instruments"][0]["instrument"]
    edit_lines(
        tmp_path,
        {
            "sign_off": {"operator": "A. Tanaka", "dut": "EZA-SN-77", "station": "bench-3"},
            "git_revision": "0123abcd-dirty",
            "test_sources": {"sha256": "f" * 64, "files": {"test_benches/test_x.py": "e" * 64}},
            "calibration_due": {f"{unit}.{name}": "2001-01-31"},
        },
        [
            {"type": "stimulus", "kind": "fault", "t": 1.5, "instrument": "E003.converter"}
            | {"fault": "offset", "params": {"amps": 0.6}},
            {"type": "stimulus", "kind": "set", "t": 2.0, "unit": "E001", "field": "soc"}
            | {"value": 0.21},
        ],
    )
    return tmp_path


def test_the_cover_names_who_what_where_and_has_a_signature_block(tmp_path: Path) -> None:
    pages = page_texts(build_report(signed_run(tmp_path)).read_bytes())
    cover = pages[0]
    for text in ("A. Tanaka", "EZA-SN-77", "bench-3", "Reviewed by", "Signature", "approved"):
        assert text in cover, text
    assert "0123abcd — DIRTY" in cover
    assert "f" * 64 in cover
    assert "Calibration overdue" in cover and "2001-01-31" in cover


def test_a_stimulus_is_named_on_its_test_page(tmp_path: Path) -> None:
    model = load_model(signed_run(tmp_path))
    texts = [s.text for t in model.tests for s in t.stimuli]
    assert texts == [
        "fault injected: offset (amps=0.6) on E003.converter",
        "plant set: E001 soc = 0.21",
    ]
    body = "\n".join(page_texts(build_report(tmp_path).read_bytes()))
    assert "fault injected: offset (amps=0.6) on E003.converter at t = 1.5 s" in body


def test_worker_records_merge_into_one_record_in_collection_order(tmp_path: Path) -> None:
    order = []
    for worker in ("gw0", "gw1"):
        write_synthetic_run(tmp_path / worker, SyntheticOptions(tests=2))
        path = tmp_path / worker / "records.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            if "nodeid" in line:
                line["nodeid"] = f"{worker}-{line['nodeid']}"
        order += [line["nodeid"] for line in lines if line["type"] == "test_start"]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    collected = order[::-1]  # the collection order differs from the workers'
    for worker in ("gw0", "gw1"):
        path = tmp_path / worker / "records.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        lines[0]["collected"] = collected
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert merge_workers(tmp_path) == tmp_path / "records.jsonl"
    merged = read_records(tmp_path)
    assert [t["nodeid"] for t in merged.of_type("test_start")] == collected
    assert merged.header is not None and set(merged.header["workers"]) == {"gw0", "gw1"}
    workers = {i["worker"] for i in merged.header["instruments"]}
    assert workers == {"gw0", "gw1"}
    assert merged.end is not None and sum(merged.end["counts"].values()) == 4
    model = load_model(tmp_path)
    assert len(model.tests) == 4 and model.run.workers
    assert merge_workers(tmp_path) is None  # the run's own record is left alone
