"""Run records are line-flushed JSON, readable after a crash, strict about their schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError
from hil.records import SCHEMA_VERSION, RecordWriter, read_records


def test_lines_round_trip_with_schema_and_non_finite_values_cleaned(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    writer.write("run_start", run_id="r1", bench={"name": "emulated"})
    writer.write("measurement", name="balance", value=float("nan"), limits=(0.0, 1.0))
    writer.write("run_end", outcome="PASS")
    writer.close()
    records = read_records(tmp_path)
    assert [line["type"] for line in records.lines] == ["run_start", "measurement", "run_end"]
    assert records.header is not None and records.header["run_id"] == "r1"
    measurement = next(records.of_type("measurement"))
    assert measurement["value"] is None and measurement["limits"] == [0.0, 1.0]
    assert not records.aborted and not records.truncated and not records.corrupt


def test_unknown_line_type_is_refused(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    with pytest.raises(ValueError, match="unknown record line type"):
        writer.write("gossip")
    writer.close()


def test_record_survives_sigkill_of_writer(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from hil.records import RecordWriter\n"
        "w = RecordWriter(Path(sys.argv[1]))\n"
        "w.write('run_start', run_id='k')\n"
        "w.write('test_start', nodeid='t::a')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert result.returncode == -9
    records = read_records(tmp_path)
    assert records.aborted
    assert [line["type"] for line in records.lines] == ["run_start", "test_start"]


def test_corrupt_middle_line_is_skipped_and_named(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    writer.write("run_start", run_id="c")
    writer.close()
    with (tmp_path / "records.jsonl").open("a") as f:
        f.write("{this is not json\n")
    writer = RecordWriter(tmp_path)
    writer.write("run_end", outcome="PASS")
    writer.close()
    records = read_records(tmp_path)
    assert records.corrupt == [(2, records.corrupt[0][1])]
    assert "unreadable" in records.corrupt[0][1]
    assert not records.aborted


def test_truncated_last_line_marks_record_truncated(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    writer.write("run_start", run_id="t")
    writer.close()
    with (tmp_path / "records.jsonl").open("a") as f:
        f.write('{"schema": "pp2p-hil/rec')
    records = read_records(tmp_path)
    assert records.truncated and records.aborted
    assert "incomplete last line" in records.corrupt[0][1]


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    line = {"schema": "pp2p-hil/records", "version": SCHEMA_VERSION + 1, "type": "run_start"}
    (tmp_path / "records.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match="newer than this toolkit reads"):
        read_records(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"garbage\n"])
def test_empty_or_unreadable_record_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "records.jsonl").write_bytes(content)
    with pytest.raises(ConfigError):
        read_records(tmp_path)


def test_missing_record_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run record"):
        read_records(tmp_path / "nowhere")


@settings(max_examples=60, deadline=None)
@given(tail=st.binary(max_size=300))
def test_any_trailing_bytes_never_raise_anything_but_config_error(tail: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        writer = RecordWriter(run)
        writer.write("run_start", run_id="h")
        writer.close()
        with (run / "records.jsonl").open("ab") as f:
            f.write(tail)
        try:
            records = read_records(run)
        except ConfigError:
            return
        assert records.lines[0]["run_id"] == "h"


def test_the_record_is_fsynced_at_each_test_end_and_at_the_run_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.record import RunRecord, TestVerdict
    from hil import records

    synced: list[tuple[int, int]] = []
    real_fsync = records.os.fsync

    def spy(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_dev, info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(records.os, "fsync", spy)
    record = RunRecord(tmp_path, "r1")
    record.start({"run_id": "r1"})
    info = os.stat(record.path)
    file = (info.st_dev, info.st_ino)
    folder = (os.stat(tmp_path).st_dev, os.stat(tmp_path).st_ino)
    assert folder in synced  # the new file's entry in its folder
    assert synced.count(file) == 0
    record.test_end(TestVerdict("test_x.py::test_a", "PASS"))
    assert synced.count(file) == 1
    record.test_end(TestVerdict("test_x.py::test_b", "FAIL", "assert 1 == 2"))
    assert synced.count(file) == 2
    record.finish()
    assert synced.count(file) == 3
    lines = read_records(tmp_path).lines
    assert [line["type"] for line in lines] == ["run_start", "test_end", "test_end", "run_end"]
