"""``hil report``: rebuilds the PDF; bad input is one line and exit 2, never a traceback;
a run killed with SIGKILL in the middle of an exchange still gives an ABORTED report."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hil.cli import main
from hil.records import SCHEMA, SCHEMA_VERSION, RecordWriter, read_records
from reports.model import build_model
from reports.pdf_text import page_texts
from reports.synthetic import SyntheticOptions, write_synthetic_run

TESTS_DIR = Path(__file__).resolve().parent
#: Generous bound for the killed run's emulator and bench to reach the running step.
READY_TIMEOUT_S = 120.0


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hil report: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_report_is_rebuilt_and_its_path_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=2))
    out = tmp_path / "elsewhere.pdf"
    assert main(["report", str(tmp_path), "-o", str(out), "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes().startswith(b"%PDF") and not (tmp_path / "report.pdf").exists()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.pdf").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_missing_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert_one_line_error(capsys.readouterr().err, "nowhere", "no such run directory")


def test_directory_without_record_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert_one_line_error(capsys.readouterr().err, "no records.jsonl")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b'{"schema": "pp2p-hil/records", "vers', "no readable line"),
        (b"not json\n", "no readable line"),
    ],
)
def test_empty_or_unreadable_record_is_one_line(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    (tmp_path / "records.jsonl").write_bytes(content)
    result = run_cli([str(tmp_path)])
    assert result.returncode == 2
    assert_one_line_error(result.stderr, fragment)


def test_newer_schema_is_one_line(tmp_path: Path) -> None:
    line = {"schema": SCHEMA, "version": SCHEMA_VERSION + 1, "type": "run_start", "wall": 0}
    (tmp_path / "records.jsonl").write_text(json.dumps(line) + "\n")
    result = run_cli([str(tmp_path)])
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "newer than this toolkit reads", "upgrade")


def test_output_folder_that_does_not_exist_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=1))
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "no" / "r.pdf")]) == 2
    assert_one_line_error(capsys.readouterr().err, "does not exist")


def test_truncated_record_gives_a_report_that_says_what_is_missing(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    writer.write("run_start", run_id="cut", bench={"name": "b"})
    writer.write("test_start", nodeid="t.py::test_cut")
    writer.close()
    with (tmp_path / "records.jsonl").open("ab") as f:
        f.write(b'{"schema": "pp2p-hil/records", "version": 1, "type": "measurem')
    result = run_cli([str(tmp_path)])
    assert result.returncode == 0, result.stderr
    pages = page_texts(Path(result.stdout.strip()).read_bytes())
    text = "\n".join(pages)
    assert all("ABORTED" in page for page in pages)
    assert "incomplete last line (the run was cut off)" in text
    assert "test t.py::test_cut has no test_end line" in text
    assert "the run header lists no instrument identities" in text


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from emulated_rig import Rig
    from hil.exchange import Exchange
    from hil.records import RecordWriter
    from hil.run_header import new_run_id, run_start_fields

    rig = Rig.start()
    writer = RecordWriter(Path(sys.argv[1]))
    writer.write("run_start", **run_start_fields(new_run_id(), rig.config, [], emulated=True))
    writer.write("test_start", nodeid="test_benches/test_kill.py::test_long", name="test_long")

    def on_step(step, run):
        if step == "start":  # the exchange runs: tell the parent, then wait to be killed
            print("running", flush=True)
            sys.stdin.readline()

    engine = rig.engine(recorder=writer, on_step=on_step)
    engine.run(Exchange.between("E001", "E003", 1.5, duration=600.0, name="long"))
    """
)


def test_run_killed_with_sigkill_gives_an_aborted_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(run_dir), str(TESTS_DIR)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            assert selector.select(READY_TIMEOUT_S), "the killed run never reached 'start'"
        assert child.stdout.readline().strip() == "running"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)

    model = build_model(read_records(run_dir))
    assert model.aborted and model.verdict == "ABORTED"
    (test,) = model.tests
    assert test.outcome == "ABORTED"
    view = test.exchanges["long"]
    assert view.step_lines >= 5 and not view.has_data  # the series is written at the end
    result = run_cli([str(run_dir)])
    assert result.returncode == 0, result.stderr
    pages = page_texts(Path(result.stdout.strip()).read_bytes())
    assert len(pages) >= 2
    assert all("ABORTED" in page for page in pages)
    text = "\n".join(pages)
    assert "test_benches/test_kill.py::test_long has no test_end line" in text
    assert "Exchange long" in text and "emulated-default" in text
