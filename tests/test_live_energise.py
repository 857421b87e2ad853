"""Before a bench of real instruments is first energised the operator confirms (unless the
bench file says ``confirm_energise = false``): a refusal stops the session before anything
is armed, and the record says why. Real instruments here are the emulator's, named by
their resources as a lab bench file names its instruments (``--no-emulate``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulated_rig import EMULATED_BENCH

from fixtures.options import BenchOptions
from fixtures.record import RunRecord
from fixtures.session import BenchSession, BenchUnavailable
from hil.config.bench import BenchConfig
from hil.config.benchfile import load_bench_file
from hil.errors import ConfigError
from hil.records import read_records
from instruments.emulation.process import EmulatorProcess, start_emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(EMULATED_BENCH) as emu:
        yield emu


def lab_bench(emulator: EmulatorProcess, *, confirm: bool = True) -> BenchConfig:
    config = load_bench_file(EMULATED_BENCH).with_resources(emulator.resources)
    return dataclasses.replace(config, confirm_energise=confirm)


def session(config: BenchConfig, run_dir: Path, answer: bool, asked: list[str]) -> BenchSession:
    options = BenchOptions(
        bench_path=EMULATED_BENCH,
        config=config,
        emulate=False,
        emulator_address=None,
        run_id=run_dir.name,
        run_root=run_dir,
        run_dir=run_dir,
        instrument_timeout=0.5,
        record=True,
        worker=None,
    )
    opened = BenchSession(options, RunRecord(run_dir, run_dir.name))

    def confirm(question: str) -> bool:
        asked.append(question)
        return answer

    opened.confirm = confirm
    return opened


def test_a_refusal_stops_the_session_before_anything_is_armed(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    asked: list[str] = []
    refused = session(lab_bench(emulator), tmp_path / "run", False, asked)
    with pytest.raises(BenchUnavailable, match="the operator did not confirm energising it"):
        refused.open()
    assert asked == [
        "Energise bench emulated-default on real instruments "
        f"({', '.join(load_bench_file(EMULATED_BENCH).unit_ids)})?"
    ]
    assert emulator.control.status()["all_safe"]
    records = read_records(tmp_path / "run")
    assert records.end is not None and records.end["outcome"] == "ERROR"
    assert any("did not confirm" in n["message"] for n in records.of_type("note"))


@pytest.mark.parametrize(("in_file", "asks"), [(True, 1), (False, 0)])
def test_a_yes_or_the_bench_file_lets_it_open(
    emulator: EmulatorProcess, tmp_path: Path, in_file: bool, asks: int
) -> None:
    asked: list[str] = []
    opened = session(lab_bench(emulator, confirm=in_file), tmp_path / "run", True, asked)
    try:
        opened.open()
        assert opened.opened and len(asked) == asks
    finally:
        opened.close()


def test_the_bench_file_key(tmp_path: Path) -> None:
    text = EMULATED_BENCH.read_text(encoding="utf-8")
    assert load_bench_file(EMULATED_BENCH).confirm_energise is True
    off = tmp_path / "off.toml"
    off.write_text("confirm_energise = false\n" + text, encoding="utf-8")
    assert load_bench_file(off).confirm_energise is False
    bad = tmp_path / "bad.toml"
    bad.write_text('confirm_energise = "no"\n' + text, encoding="utf-8")
    with pytest.raises(ConfigError, match="confirm_energise"):
        load_bench_file(bad)
