"""The community-day bench end to end, as a user runs it: ``hil run --bench
fixtures/benches/community-19.toml`` — 19 emulated houses trading for 24 hours of bench
time through the real drivers — passes, records the day and reports it.

One subprocess (its own emulator); about a minute and a half on the 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reports.pdf_text import page_texts

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "fixtures" / "benches" / "community-19.toml"
TIMEOUT_S = 900.0


@pytest.fixture(scope="module")
def community_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    run_dir = tmp_path_factory.mktemp("community") / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hil.cli",
            "run",
            "--bench",
            str(BENCH),
            "--run-dir",
            str(run_dir),
            "-k",
            "community_day",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, run_dir


def lines(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "records.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_the_community_day_passes(community_run: tuple[int, str, Path]) -> None:
    code, output, run_dir = community_run
    assert code == 0, output[-3000:]
    ends = [line for line in lines(run_dir) if line["type"] == "test_end"]
    assert [(e["nodeid"].split("::")[-1], e["outcome"]) for e in ends] == [
        ("test_a_community_day", "PASS")
    ]


def test_the_record_holds_the_day_and_the_comparison(
    community_run: tuple[int, str, Path],
) -> None:
    _, _, run_dir = community_run
    (day,) = [line for line in lines(run_dir) if line["type"] == "community"]
    assert sorted(day["soc"]) == ["EV20", *(f"H{n:02d}" for n in range(1, 20))]
    assert len(day["t"]) == 24 * 12 + 1  # every 300 s, both ends
    assert all(len(values) == len(day["t"]) for values in day["soc"].values())
    done = [d for d in day["deals"] if d["state"] == "done"]
    assert done and all(0 <= d["t_start"] < d["t_stop"] <= day["duration_s"] for d in done)
    # the car only gives, and only from home: in the evening or at night (a deal made just
    # before 06:00 may start a few minutes after)
    car = [d for d in done if "EV20" in (d["discharge"], d["charge"])]
    assert car and all(d["discharge"] == "EV20" for d in car)
    hours = [((day["start_of_day"] + d["t_start"]) % 86400) / 3600 for d in car]
    assert all(not 6.5 <= h < 18 for h in hours), hours
    with_, alone = day["energy"]["with_interchange"], day["energy"]["without_interchange"]
    assert with_["pv_wh"] == pytest.approx(alone["pv_wh"], abs=1.0)
    assert with_["utility_wh"] < alone["utility_wh"]
    assert with_["self_consumption"] > alone["self_consumption"]
    assert sorted(day["branches"]) == ["A", "B", "C"]


def test_the_report_shows_the_comparison(community_run: tuple[int, str, Path]) -> None:
    _, _, run_dir = community_run
    text = "\n".join(page_texts((run_dir / "report.pdf").read_bytes()))
    for fragment in ("Community day", "Utility import", "Self-consumption", "Deal timeline"):
        assert fragment in text, fragment
