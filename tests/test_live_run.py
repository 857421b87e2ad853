"""The live page during a real run (a child process on the emulated bench): the stream
carries the run's events and the units' readings, the page's Stop ends the run INTERRUPTED
with every output safe (the emulator's own status says so), and operator prompts are
answered on the page, on the terminal, or refused with ``--no-prompts``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from child_process import until_safe
from emulated_rig import EMULATED_BENCH
from live_child import PATIENCE_S, LiveChild, events_until, open_stream

from hil.records import read_records
from instruments.emulation.process import EmulatorProcess, start_emulator


@pytest.fixture
def children() -> Iterator[list[LiveChild]]:
    started: list[LiveChild] = []
    yield started
    for child in started:
        child.close()


@pytest.fixture(scope="module")
def witness() -> Iterator[EmulatorProcess]:
    """An emulator of this test process that the run attaches to (``--emulator``), so its
    true state can be read after the run is gone."""
    with start_emulator(EMULATED_BENCH) as emu:
        yield emu


def notes(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_records(run_dir).of_type("note"))


def test_hil_run_live_streams_the_run_and_stop_ends_it_interrupted_and_safe(
    children: list[LiveChild], tmp_path: Path, witness: EmulatorProcess
) -> None:
    run_dir = tmp_path / "run"
    child = LiveChild.hil_run(run_dir, "--emulator", witness.info.control)
    children.append(child)
    url = child.wait_page()
    with open_stream(url) as stream:
        seen = events_until(iter(stream), lambda e: e["type"] == "prompt")
        kinds = [e["type"] for e in seen]
        assert kinds[0] == "state"
        assert {"run_start", "test_start", "step", "readings"} <= set(kinds), kinds
        steps = [e["step"] for e in seen if e["type"] == "step" and e["exchange"] == "live"]
        assert "warmUp" in steps and "start" in steps, steps
        units: dict[str, Any] = {}
        for event in seen:
            if event["type"] == "readings":
                units.update(event["units"])
        assert units["E001"]["current"] == pytest.approx(1.0, abs=0.1)  # sources: +
        assert units["E003"]["current"] == pytest.approx(-1.0, abs=0.1)  # sinks: -
        assert units["E003"]["mode"] == "voltage_reference"
        stopped = httpx.post(f"{url}stop", json={"confirm": True, "by": "ann"}, timeout=PATIENCE_S)
        assert stopped.status_code == 202, stopped.text
        rest = events_until(iter(stream), lambda e: e["type"] == "run_end")
    assert rest[-1]["outcome"] == "INTERRUPTED"
    assert "live page's Stop, pressed by ann" in rest[-1]["interrupted"]
    shutdown_end = [e for e in rest if e["type"] == "shutdown" and e.get("event") == "end"]
    assert shutdown_end and shutdown_end[0]["unconfirmed"] == []
    code = child.finish()
    assert code == 2, child.output()[-3000:]
    assert "hil run: INTERRUPTED" in child.output()
    assert (run_dir / "report.pdf").exists()
    end = read_records(run_dir).end
    assert end is not None and end["outcome"] == "INTERRUPTED"
    assert end["not_run"] == ["tests/live_benches/live_bench.py::test_after_the_wait"]
    said = [n["message"] for n in notes(run_dir)]
    assert any(m.startswith("stop requested on the live page by ann") for m in said), said
    assert "session end: every unit made safe" in said
    status = until_safe(witness, PATIENCE_S)
    assert status["all_safe"], [p for p in status["ports"] if not p["safe"]]


def test_prompts_answered_on_the_page_let_the_test_go_on(
    children: list[LiveChild], tmp_path: Path
) -> None:
    child = LiveChild.pytest(tmp_path / "run", "--live", "127.0.0.1:0", prompts=2)
    children.append(child)
    url = child.wait_page()
    answers = iter(["yes", "yes", "E003"])
    with open_stream(url) as stream, httpx.Client(base_url=url, timeout=PATIENCE_S) as http:
        for _ in range(3):
            prompt = events_until(iter(stream), lambda e: e["type"] == "prompt")[-1]
            reply = http.post(f"/prompts/{prompt['id']}", json={"answer": next(answers)})
            assert reply.status_code == 200, reply.text
        done = events_until(iter(stream), lambda e: e["type"] == "run_end")
    assert done[-1]["outcome"] == "PASS"
    assert child.finish() == 0, child.output()[-3000:]
    prompts = [n for n in notes(tmp_path / "run") if n.get("kind") == "prompt"]
    assert [p["answer"] for p in prompts] == ["yes", "yes", "E003"]
    assert all(p["by"] == "operator (page, 127.0.0.1)" for p in prompts)


def test_without_a_page_the_terminal_answers(children: list[LiveChild], tmp_path: Path) -> None:
    child = LiveChild.pytest(tmp_path / "run", stdin="n\nyes\nE001\nE003\n")
    children.append(child)
    code = child.finish()
    prompts = [n for n in notes(tmp_path / "run") if n.get("kind") == "prompt"]
    # "n" makes the confirmation fail: the test fails there, the next test still runs
    assert code == 1, child.output()[-3000:]
    assert [p["answer"] for p in prompts] == ["no"]
    assert prompts[0]["by"].endswith("(terminal)")
    ends = {
        t["nodeid"].split("::")[1]: t["outcome"]
        for t in read_records(child.run_dir).of_type("test_end")
    }
    assert ends == {"test_exchange_waits_for_the_operator": "FAIL", "test_after_the_wait": "PASS"}


def test_no_prompts_refuses_and_the_record_says_so(
    children: list[LiveChild], tmp_path: Path
) -> None:
    child = LiveChild.pytest(tmp_path / "run", "--no-prompts")
    children.append(child)
    assert child.finish() == 1, child.output()[-3000:]
    (prompt,) = [n for n in notes(tmp_path / "run") if n.get("kind") == "prompt"]
    assert prompt["by"] == "--no-prompts" and prompt["answer"] is None
    assert prompt["test"].endswith("test_exchange_waits_for_the_operator")
