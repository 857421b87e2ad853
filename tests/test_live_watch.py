"""``hil live --emulator``: the page fed from a running emulator's ``status`` — every unit,
the plant's true values in the toolkit's sign convention, changes as they happen — and
one-line errors for bad arguments or an emulator that is not there."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulated_rig import EMULATED_BENCH, ROOT
from live_child import LiveChild, events_until, open_stream

from hil.config.benchfile import load_bench_file
from hil.live.events import EventHub
from hil.live.watch import EmulatorWatch, unit_values
from instruments.emulation.process import EmulatorProcess, start_emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(EMULATED_BENCH) as emu:
        yield emu


def test_status_becomes_every_unit_with_its_soc(emulator: EmulatorProcess) -> None:
    emulator.control.request("set", unit="E002", field="soc", value=0.42)
    try:
        units = unit_values(emulator.control.status())
    finally:
        emulator.control.request("set", unit="E002", field="soc", value=0.5)
    assert set(units) == set(load_bench_file(EMULATED_BENCH).unit_ids)
    assert units["E002"]["soc"] == pytest.approx(0.42)
    assert all(abs(u["current"]) < 0.05 for u in units.values())  # nothing is on


def test_a_watch_publishes_the_bench_and_changes_of_safety(emulator: EmulatorProcess) -> None:
    hub = EventHub()
    watch = EmulatorWatch(emulator.control, hub)
    watch.poll()
    watch.poll()
    hub.close()
    state = hub.state().data
    assert [u["id"] for u in state["bench"]["units"]] == list(state["units"])
    notes = [e.data["message"] for e in hub.since(0)[0] if e.data["type"] == "note"]
    assert notes == ["emulator: every output safe"]


def test_hil_live_serves_the_emulator_until_ctrl_c(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    args = ["-m", "hil.cli", "live", "--emulator", emulator.info.control]
    args += ["--listen", "127.0.0.1:0", "--bench", str(EMULATED_BENCH)]
    child = LiveChild(args, tmp_path)
    try:
        url = child.wait_page()
        with open_stream(url) as stream:
            first = events_until(iter(stream), lambda e: e["type"] == "state")[-1]
            assert first["bench"]["name"] == "emulated-default"
            emulator.control.request("set", unit="E004", field="soc", value=0.61)
            events_until(
                iter(stream),
                lambda e: (
                    e["type"] == "readings"
                    and e["units"].get("E004", {}).get("soc") == pytest.approx(0.61)
                ),
            )
        child.process.send_signal(signal.SIGINT)
        assert child.finish() == 0, child.output()
    finally:
        emulator.control.request("set", unit="E004", field="soc", value=0.9)
        child.close()


@pytest.mark.parametrize(
    ("extra", "code", "says"),
    [
        (["--emulator", "127.0.0.1:1"], 1, "does not answer"),
        (["--emulator", "nowhere"], 2, "expected HOST:PORT"),
        (["--emulator", "127.0.0.1:1", "--listen", "0.0.0.0:0"], 2, "not a loopback address"),
    ],
)
def test_bad_arguments_are_one_line(extra: list[str], code: int, says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hil.cli", "live", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
