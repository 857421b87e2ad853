"""The operator's console (``fixtures.console``) and JUnit alignment (``fixtures.junit``),
fed with pytest's own report objects; the inner sessions in ``test_plugin.py`` drive them
end to end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fixtures.console import VERDICT_PROPERTY, Console, TestStatus
from fixtures.junit import align_junit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def report(
    nodeid: str, when: str, outcome: str, *, verdict: str | None = None, longrepr: object = None
) -> pytest.TestReport:
    props = [(VERDICT_PROPERTY, verdict)] if verdict else []
    return pytest.TestReport(
        nodeid, ("x.py", 1, nodeid), {}, outcome, longrepr, when, user_properties=props
    )


def run_test(console: Console, nodeid: str, *reports: pytest.TestReport) -> None:
    console.pytest_runtest_logstart(nodeid)
    for rep in reports:
        console.pytest_runtest_logreport(rep)


@pytest.fixture
def console() -> Console:
    out = io.StringIO()
    made = Console(out, heartbeat_s=0, clock=FakeClock())
    made._collected(3)
    return made


def lines(console: Console) -> list[str]:
    out = console.out
    assert isinstance(out, io.StringIO)
    return out.getvalue().splitlines()


def test_one_line_per_test_with_the_recorded_verdict(console: Console) -> None:
    run_test(
        console,
        "t.py::a",
        report("t.py::a", "setup", "passed"),
        report("t.py::a", "call", "failed", longrepr="ExchangeError: refused [rule x]"),
        report("t.py::a", "teardown", "passed", verdict="ERROR"),
    )
    run_test(
        console,
        "t.py::b",
        report("t.py::b", "setup", "passed"),
        report("t.py::b", "call", "passed"),
        report("t.py::b", "teardown", "passed", verdict="PASS"),
    )
    assert lines(console) == [
        "hil run: 3 tests collected",
        "[1/3] ERROR       t.py::a — ExchangeError: refused [rule x]",
        "[2/3] PASS        t.py::b",
    ]


def test_a_test_without_a_recorded_verdict_follows_the_same_rule(console: Console) -> None:
    """No plugin verdict (not a bench test): a failed call is FAIL, a failed teardown ERROR,
    the worse one wins; a skip is SKIPPED with its reason."""
    run_test(
        console,
        "t.py::a",
        report("t.py::a", "call", "failed", longrepr="AssertionError: 2 != 3"),
        report("t.py::a", "teardown", "failed", longrepr="HilError: not safe"),
    )
    skip = report("t.py::b", "setup", "skipped", longrepr=("x.py", 1, "Skipped: no twin"))
    run_test(console, "t.py::b", skip, report("t.py::b", "teardown", "passed"))
    assert lines(console)[1:] == [
        "[1/3] ERROR       t.py::a — HilError: not safe",
        "[2/3] SKIPPED     t.py::b — no twin",
    ]
    console.summary()
    assert lines(console)[-1] == "hil run: 2 of 3 tests in 0.0 s: 1 error, 1 skipped"


def test_heartbeat_names_the_silent_test_and_what_it_last_said() -> None:
    clock = FakeClock()
    status = TestStatus()
    console = Console(io.StringIO(), status, heartbeat_s=15.0, clock=clock)
    console._stop.set()  # no heartbeat thread: the test drives the beats itself
    console.pytest_runtest_logstart("t.py::test_day")
    status.set("14:05 simulated, 37 deals so far")
    clock.now += 10.0
    console.beat()
    assert len(lines(console)) == 0
    clock.now += 6.0
    console.beat()
    console.beat()  # said just now: no second line yet
    clock.now += 15.0
    console.beat()
    assert lines(console) == [
        "        … 16 s into test_day: 14:05 simulated, 37 deals so far",
        "        … 31 s into test_day: 14:05 simulated, 37 deals so far",
    ]


def test_the_summary_of_an_interrupted_session_names_the_test_and_the_rest(
    console: Console,
) -> None:
    run_test(console, "t.py::a", report("t.py::a", "teardown", "passed", verdict="PASS"))
    console.pytest_runtest_logstart("t.py::b")
    console.pytest_sessionfinish(int(pytest.ExitCode.INTERRUPTED))
    console.summary()
    assert lines(console)[-1] == "hil run: INTERRUPTED during t.py::b: 1 tests never ran"


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="2" skipped="0" tests="3">
<testcase classname="t" name="refused"><properties>
<property name="verdict" value="ERROR"/></properties>
<failure message="ExchangeError">trace</failure></testcase>
<testcase classname="t" name="assert"><properties>
<property name="verdict" value="FAIL"/></properties>
<failure message="AssertionError">trace</failure></testcase>
<testcase classname="t" name="plain"/>
</testsuite></testsuites>
"""


def test_junit_elements_follow_the_verdicts(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    path = tmp_path / "junit.xml"
    path.write_text(JUNIT, encoding="utf-8")
    assert align_junit(path) == 1
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("failures")) == ("1", "1")
    cases = {c.get("name"): [e.tag for e in c if e.tag != "properties"] for c in suite}
    assert cases == {"refused": ["error"], "assert": ["failure"], "plain": []}
    assert align_junit(path) == 0  # already aligned
    assert align_junit(tmp_path / "absent.xml") == 0


def test_build_progress_is_quiet_for_a_quick_build_and_draws_a_bar_on_a_terminal() -> None:
    from reports.progress import BuildProgress

    clock = FakeClock()
    out = io.StringIO()
    progress = BuildProgress(out, clock=clock, tty=True)
    progress(1, 4, "tests")
    assert out.getvalue() == ""  # within the first second: nothing
    clock.now += 1.5
    progress(2, 4, "tests")
    progress.finish()
    assert out.getvalue() == (
        "\rhil run: building the report [############------------] 2/4 tests\n"
    )
    piped = io.StringIO()
    lines = BuildProgress(piped, clock=clock, tty=False)
    clock.now += 2.5
    lines(1, 4, "tests")
    lines(2, 4, "tests")  # no time passed: no second line
    clock.now += 2.5
    lines(3, 4, "tests")
    assert piped.getvalue().splitlines() == [
        "hil run: building the report: 1/4 tests",
        "hil run: building the report: 3/4 tests",
    ]
