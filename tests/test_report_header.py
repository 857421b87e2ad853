"""The run header and run end lines: what the plugin writes first and last."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hil.config.benchfile import load_bench_file
from hil.controller import InstrumentIdentity
from hil.records import RecordWriter, read_records
from hil.run_header import (
    DISTRIBUTIONS,
    git_revision,
    new_run_id,
    run_end_fields,
    run_start_fields,
)
from reports.model import build_model

BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "benches" / "emulated.toml"
IDENTITY = InstrumentIdentity(
    unit="E001",
    instrument="converter",
    driver="eza2500",
    resource="TCPIP0::127.0.0.1::5020::SOCKET",
    vendor="TDK-Lambda",
    model="EZA-2500-32048SC0",
    serial="EMU0001",
    firmware="1.00",
)


def test_header_round_trips_through_the_record_and_pins_the_bench(tmp_path: Path) -> None:
    config = load_bench_file(BENCH)
    started = datetime(2025, 1, 31, 14, 25, 1, tzinfo=timezone(timedelta(hours=9)))
    fields = run_start_fields(
        "r-7",
        config,
        [IDENTITY],
        emulated=True,
        unidentified={"E002.bms": "no answer within 0.2 s"},
        started_at=started,
    )
    assert fields["started_at"] == "2025-01-31T14:25:01+09:00"
    text = fields["bench"]["text"]
    assert hashlib.sha256(text.encode()).hexdigest() == config.sha256 == fields["bench"]["sha256"]
    assert set(fields["software"]) == {"toolkit", "python", *DISTRIBUTIONS}
    assert fields["software"]["reportlab"] and fields["software"]["numpy"]
    assert fields["envelopes"] == config.envelope.as_dict()

    writer = RecordWriter(tmp_path)
    writer.write("run_start", **fields)
    writer.write("run_end", **run_end_fields(["PASS", "FAIL", "PASS"], finished_at=started))
    writer.close()
    model = build_model(read_records(tmp_path))
    assert model.run.run_id == "r-7" and model.run.emulated is True
    assert model.run.bench is not None and model.run.bench.text_matches is True
    answered, missing = model.run.instruments
    assert (answered.serial, answered.firmware, answered.emulated) == ("EMU0001", "1.00", True)
    assert (missing.unit, missing.instrument) == ("E002", "bms")
    assert missing.problem == "no answer within 0.2 s"
    assert set(model.run.unit_envelopes) == set(config.unit_ids)
    assert model.verdict == "FAIL" and model.run.finished_at == "2025-01-31T14:25:01+09:00"


def test_run_end_counts_in_outcome_order() -> None:
    end = run_end_fields(["PASS", "SKIPPED", "SAFETY TRIP", "PASS"])
    assert end["outcome"] == "SAFETY TRIP"
    assert list(end["counts"].items()) == [("PASS", 2), ("SKIPPED", 1), ("SAFETY TRIP", 1)]


def test_git_revision_inside_and_outside_a_work_tree(tmp_path: Path) -> None:
    revision = git_revision()
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision)
    assert git_revision(tmp_path) is None


def test_run_ids_start_with_the_time() -> None:
    first = new_run_id(datetime(2025, 1, 31, 14, 25, 1))
    assert first.startswith("20250131-142501-") and len(first) == 20
