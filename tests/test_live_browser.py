"""The live page in a real browser: Debian's headless Chromium, driven by Playwright (the
system browser; nothing is downloaded), loads the page during an emulated run, sees every
unit of the bench and its rows update, answers an operator prompt, presses Stop (and
confirms), and the run ends INTERRUPTED with every output safe. A screenshot is saved
(``HIL_LIVE_SCREENSHOT=path`` saves the one ``docs/live.md`` shows)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulated_rig import EMULATED_BENCH
from live_child import PATIENCE_S, LiveChild
from playwright.sync_api import Browser, Page, sync_playwright

from hil.config.benchfile import load_bench_file
from hil.records import read_records

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = PATIENCE_S * 1000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("HIL_REQUIRE_BROWSER"):  # .ci/run sets it: in CI this test must run
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def cell(page: Page, unit: str, column: int) -> str:
    return page.inner_text(f"#unit-{unit} td:nth-child({column})")


def test_the_page_shows_every_unit_answers_a_prompt_and_stops_the_run(
    browser: Browser, tmp_path: Path
) -> None:
    units = load_bench_file(EMULATED_BENCH).unit_ids
    run_dir = tmp_path / "run"
    child = LiveChild.pytest(run_dir, "--live", "127.0.0.1:0", prompts=1)
    try:
        url = child.wait_page()
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_function(
            f"document.querySelectorAll('#units tr.unit').length === {len(units)}"
        )
        assert page.eval_on_selector_all("#units tr.unit", "rows => rows.map(r => r.id)") == [
            f"unit-{uid}" for uid in units
        ]
        assert page.is_visible("#stop")
        # the first prompt: the exchange runs, the rows show it (+ sources, - sinks)
        page.wait_for_selector(".prompt button.answer")
        page.wait_for_function("document.querySelector('#unit-E001').dataset.t !== undefined")
        assert float(cell(page, "E001", 4).split()[0]) == pytest.approx(1.0, abs=0.1)
        assert float(cell(page, "E003", 4).split()[0]) == pytest.approx(-1.0, abs=0.1)
        before = float(page.get_attribute("#unit-E001", "data-t") or "nan")
        assert page.inner_text("#conn") == "live"
        page.click(".prompt button.answer:text-is('yes')")
        # the test goes on (5 s of bench time) and asks again: the rows updated
        page.wait_for_selector(".prompt button.answer:text-is('E003')")
        page.wait_for_function(f"Number(document.querySelector('#unit-E001').dataset.t) > {before}")
        page.wait_for_function("document.querySelector('#plotI') !== null")
        shot = tmp_path / "live.png"
        page.screenshot(path=str(shot), full_page=True)
        wanted = os.environ.get("HIL_LIVE_SCREENSHOT")
        if wanted:
            shutil.copyfile(shot, wanted)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#stop")
        page.wait_for_function("document.querySelector('#verdict').textContent === 'INTERRUPTED'")
        assert page.is_disabled("#stop")
        page.close()
        code = child.finish()
    finally:
        child.close()
    assert code == 2, child.output()[-3000:]
    records = read_records(run_dir)
    end = records.end
    assert end is not None and end["outcome"] == "INTERRUPTED"
    assert "live page's Stop, pressed by operator (page, 127.0.0.1)" in end["interrupted"]
    ends = [s for s in records.of_type("shutdown") if s.get("event") == "end"]
    assert ends and all(s["unconfirmed"] == [] for s in ends)
    said = [n["message"] for n in records.of_type("note")]
    assert "session end: every unit made safe" in said
