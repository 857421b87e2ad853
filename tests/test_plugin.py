"""The pytest plugin (``fixtures.plugin``), driven from the outside with ``pytester``.

Sessions that need the emulator run in a subprocess (their own signal handlers, their own
emulator); each run's record is read back and checked line by line. The lab bench is never
contacted: a copy with every LAN host replaced by 127.0.0.1 on a closed port and every serial
path by one that does not exist stands in for "the hardware is not there".
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from hil.config.benchfile import load_bench_file
from instruments.emulation.process import start_emulator

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EMULATED = ROOT / "fixtures" / "benches" / "emulated.toml"
LAB = ROOT / "fixtures" / "benches" / "lab-example.toml"
SUBPROCESS_TIMEOUT_S = 300.0


@dataclass
class InnerRun:
    """A finished inner pytest session: exit code, output and its run record."""

    ret: int
    output: str
    records: list[dict[str, Any]]
    where: Path | None = None

    def of_type(self, line_type: str) -> list[dict[str, Any]]:
        return [line for line in self.records if line["type"] == line_type]

    def test_end(self, name: str) -> dict[str, Any]:
        (line,) = [t for t in self.of_type("test_end") if t["nodeid"].endswith(f"::{name}")]
        return line


def read_records(where: Path) -> list[dict[str, Any]]:
    """Every line of every ``records.jsonl`` under ``where`` (one run directory expected)."""
    files = sorted(where.glob("runs/**/records.jsonl"))
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def offline_lab_copy(dest: Path) -> Path:
    """The lab example with LAN hosts on closed loopback ports and absent serial devices."""
    text = LAB.read_text(encoding="utf-8")
    text = re.sub(
        r"192\.168\.\d+\.\d+(::|:)\d+", lambda m: f"127.0.0.1{m.group(1)}{closed_port()}", text
    )
    absent = iter(range(1000))
    text = re.sub(r"/dev/[\w/.\-]+", lambda m: f"/dev/pp2p-hil-absent-{next(absent)}", text)
    assert "192.168." not in text
    path = dest / "offline-lab.toml"
    path.write_text(text, encoding="utf-8")
    for inst in load_bench_file(path).instruments():
        assert "127.0.0.1" in inst.resource or "/dev/pp2p-hil-absent-" in inst.resource
    return path


BENCH_TESTS = """
import os, signal
import pytest
from hil.errors import SafetyTrip

def test_leaves_everything_on(exchange, unit, emulator):
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=600)
    unit("LOAD1").set_current(-0.5)
    emulator.set("E002", "soc", 0.9)
    emulator.fault("SUP1.supply", "delay", seconds=0.05)
    assert False, "failed with the bus up"

def test_starts_from_a_safe_bench(emulator):
    status = emulator.status()
    assert status["all_safe"], emulator.unsafe(status)
    assert all(not i["faults"] for i in status["instruments"].values())
    assert emulator.soc("E002") == pytest.approx(0.5)

def test_measure_outside_limits(measure):
    measure("inside", 1.0, "A", low=0.0, high=2.0)
    measure("outside", 5.0, "A", high=2.3)
    measure("never reached", 0.0, "A")

def test_unknown_unit(unit):
    unit("E999").read()

def test_safety_trip(exchange, emulator):
    exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=600)
    emulator.fault("E001.converter", "alarm", level="heavy")
    exchange.serve()

def test_plain_test_beside_benches():
    pass
"""


INNER = ["test_inner.py"]


@pytest.fixture(scope="module")
def bench_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InnerRun]:
    """One inner session on the emulated bench, in a subprocess (see ``BENCH_TESTS``)."""
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("inner")
    (where / "test_inner.py").write_text(BENCH_TESTS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--hil-console", *INNER],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    yield InnerRun(done.returncode, done.stdout + done.stderr, read_records(where), where)


def junit_verdicts(where: Path) -> dict[str, tuple[str, str]]:
    """Test name → (its ``verdict`` property, its failure/error element or "") of the
    JUnit XML under ``where``."""
    import xml.etree.ElementTree as ET

    (path,) = where.glob("runs/*/junit.xml")
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        elements = [e.tag for e in case if e.tag in ("failure", "error")]
        found[str(case.get("name"))] = (str(props.get("verdict", "")), "/".join(elements))
    return found


def test_console_junit_and_record_give_each_test_one_verdict(bench_session: InnerRun) -> None:
    """A toolkit error in the call (an unknown unit) is ERROR on the console, in JUnit XML
    (``<error>``) and in the record; a failed assertion FAIL (``<failure>``); a safety trip
    SAFETY TRIP (``<error>``). The console prints one line per test and no progress letter."""
    lines = {}
    for line in bench_session.output.splitlines():
        match = re.match(r"^\[\s*\d+/6\] (\S+(?: TRIP)?)\s+\S+::(\w+)", line)
        if match:
            lines[match.group(2)] = match.group(1)
    assert len(lines) == 6, bench_session.output
    junit = junit_verdicts(bench_session.where or Path())
    element = {"PASS": "", "FAIL": "failure", "ERROR": "error", "SAFETY TRIP": "error"}
    for end in bench_session.of_type("test_end"):
        name = end["nodeid"].rsplit("::", 1)[-1]
        assert lines[name] == end["outcome"], (name, lines[name], end["outcome"])
        assert junit[name] == (end["outcome"], element[end["outcome"]]), name
    assert lines["test_unknown_unit"] == "ERROR"
    assert lines["test_plain_test_beside_benches"] == "PASS"
    assert "[100%]" not in bench_session.output
    assert not re.search(r"^[.FEsx]+\[", bench_session.output, re.MULTILINE)


def test_a_session_records_header_tests_and_end(bench_session: InnerRun) -> None:
    types = [line["type"] for line in bench_session.records]
    assert types[0] == "run_start" and types[-1] == "run_end"
    header = bench_session.records[0]
    assert header["emulated"] is True and header["bench"]["name"] == "emulated-default"
    assert len(header["instruments"]) == len(list(load_bench_file(EMULATED).instruments()))
    starts = [line["nodeid"] for line in bench_session.of_type("test_start")]
    ends = [line["nodeid"] for line in bench_session.of_type("test_end")]
    assert starts == ends and len(starts) == 5  # the plain test is not a bench test
    assert bench_session.records[-1]["counts"] == {
        "PASS": 1,
        "FAIL": 2,
        "ERROR": 1,
        "SAFETY TRIP": 1,
    }
    assert bench_session.records[-1]["outcome"] == "SAFETY TRIP"


def test_teardown_leaves_the_bench_safe_after_a_failing_test(bench_session: InnerRun) -> None:
    assert bench_session.test_end("test_leaves_everything_on")["outcome"] == "FAIL"
    assert bench_session.test_end("test_starts_from_a_safe_bench")["outcome"] == "PASS"
    notes = [line["message"] for line in bench_session.of_type("note")]
    assert "session end: every unit made safe" in notes


def test_measure_outside_its_limits_fails_and_is_recorded(bench_session: InnerRun) -> None:
    end = bench_session.test_end("test_measure_outside_limits")
    assert end["outcome"] == "FAIL" and "outside" in end["message"]
    measured = {
        line["name"]: line for line in bench_session.of_type("measurement") if "test" in line
    }
    assert measured["inside"]["verdict"] == "PASS"
    assert measured["outside"]["verdict"] == "FAIL"
    assert (measured["outside"]["value"], measured["outside"]["high"]) == (5.0, 2.3)
    assert "never reached" not in measured


def test_unknown_unit_is_a_clear_error(bench_session: InnerRun) -> None:
    end = bench_session.test_end("test_unknown_unit")
    assert end["outcome"] == "ERROR"
    assert "no unit 'E999'; units: E001, E002" in end["message"]
    assert "KeyError" not in bench_session.output


def test_safety_trip_is_its_own_outcome(bench_session: InnerRun) -> None:
    end = bench_session.test_end("test_safety_trip")
    assert end["outcome"] == "SAFETY TRIP" and "HEAVY_ALARM" in end["message"]
    shutdowns = [line for line in bench_session.of_type("shutdown") if line["event"] == "end"]
    assert shutdowns, "the trip ended in the ordered shutdown"


def test_a_bad_bench_file_stops_the_session_before_any_test(pytester: pytest.Pytester) -> None:
    text = EMULATED.read_text(encoding="utf-8").replace(
        "voltage_min = 300.0", "voltage_mni = 300.0", 1
    )
    bad = pytester.path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("voltage_mni"))
    pytester.makepyfile("def test_never(bench):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("--bench", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*bad.toml:{line}: bus.voltage_mni: unknown key*"])
    assert "ran" not in result.stdout.str()


def test_no_emulate_on_an_emulated_only_bench_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--no-emulate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--no-emulate*runs on its emulated twin only*"])


def test_the_lab_bench_without_hardware_stops_at_once_naming_each_instrument(
    pytester: pytest.Pytester,
) -> None:
    lab = offline_lab_copy(pytester.path)
    pytester.makepyfile("def test_one(bench): pass\ndef test_two(bench): pass\n")
    result = pytester.runpytest("--bench", str(lab), "-p", "no:cacheprovider")
    assert result.ret == 1
    output = result.stdout.str() + result.stderr.str()
    keys = [inst.key for inst in load_bench_file(lab).instruments()]
    assert f"{len(keys)} of {len(keys)} instrument(s) did not answer" in output
    for key in keys:
        assert output.count(f"  {key} (") == 1, key
    assert "--emulate" in output
    records = read_records(pytester.path)
    assert [line["type"] for line in records] == ["run_start", "note", "run_end"]
    assert set(records[0]["unidentified"]) == set(keys) and records[-1]["outcome"] == "ERROR"


def test_tests_without_a_bench_start_nothing_and_leave_no_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def bench():  # a module's own fixture of that name is not the plugin's bench
            return "mine"

        def test_plain():
            assert 1 + 1 == 2

        def test_own_bench(bench):
            assert bench == "mine"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert not (pytester.path / "runs").exists()


def test_sigterm_mid_exchange_shuts_down_in_order_and_ends_the_record(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import os, signal

        def test_killed(exchange):
            exchange.start(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=600)
            os.kill(os.getpid(), signal.SIGTERM)
            exchange.wait(60)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT_S)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    records = read_records(pytester.path)
    begin = [line for line in records if line["type"] == "shutdown" and line["event"] == "begin"]
    assert begin and "SIGTERM" in begin[0]["reason"]
    assert records[-1]["type"] == "run_end" and "interrupted" in records[-1]
    (end,) = [line for line in records if line["type"] == "test_end"]
    assert end["outcome"] == "INTERRUPTED" and "interrupted" in end["message"]


def test_xdist_workers_each_record_their_own_bench(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_a(exchange):
            exchange(discharge={"E001": 1.0}, charge={"E003": 1.0}, duration=10)

        def test_b(exchange):
            exchange(discharge={"E002": 1.0}, charge={"E004": 1.0}, duration=10)
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT_S
    )
    result.assert_outcomes(passed=2)
    (run_dir,) = (pytester.path / "runs").iterdir()
    assert (run_dir / "junit.xml").is_file()
    workers = sorted(p.parent.name for p in run_dir.glob("*/records.jsonl"))
    assert workers and set(workers) <= {"gw0", "gw1"}
    ends = [line for line in read_records(pytester.path) if line["type"] == "test_end"]
    assert sorted(line["outcome"] for line in ends) == ["PASS", "PASS"]


@pytest.mark.parametrize(("clock", "expected"), [("sim", "SimClock"), ("wall", "WallClock")])
def test_attaching_to_a_running_emulator_follows_its_clock(
    pytester: pytest.Pytester, clock: Literal["sim", "wall"], expected: str
) -> None:
    pytester.makepyfile(
        f"""
        def test_attached(exchange, clock, emulator):
            assert type(clock).__name__ == "{expected}"
            if "{clock}" == "sim":
                exchange(discharge={{"E001": 1.0}}, charge={{"E003": 1.0}}, duration=10)
            emulator.fault("SUP1.supply", "delay", seconds=0.01)
        """
    )
    with start_emulator(EMULATED, clock=clock) as running:
        result = pytester.runpytest_subprocess(
            "--emulator",
            running.info.control,
            "-p",
            "no:cacheprovider",
            timeout=SUBPROCESS_TIMEOUT_S,
        )
        result.assert_outcomes(passed=1)
        status = running.control.status()  # the emulator outlives the session, left safe
        assert status["all_safe"] and not status["instruments"]["SUP1.supply"]["faults"]
    (header,) = [line for line in read_records(pytester.path) if line["type"] == "run_start"]
    assert header["emulated"] is True


def test_no_record_runs_the_benches_and_writes_no_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_reads(unit):\n    assert unit('E001').read().unit == 'E001'\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-record", "--run-dir", "run")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "run" / "records.jsonl").exists()


def test_tests_naming_absent_units_or_a_community_are_skipped_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.units("E001", "H07")
        def test_needs_a_house(bench):
            raise AssertionError("ran")

        @pytest.mark.community
        def test_needs_a_community(bench):
            raise AssertionError("ran")
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    # one line each, in whatever order pytest-randomly ran them
    result.stdout.fnmatch_lines(["*needs unit H07; bench emulated-default has none*"])
    result.stdout.fnmatch_lines(["*needs a ?community? table; bench emulated-default has none*"])
