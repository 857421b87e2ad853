"""The PDF: what its pages say (read back from the PDF itself), banners, fonts, plots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports import fonts
from reports.build import build_report
from reports.pdf_text import page_strings, page_texts
from reports.synthetic import SyntheticOptions, write_synthetic_run

JAPANESE_UNITS = ("蓄電池1", "E002", "負荷ユニット", "E004")


@pytest.fixture
def cid_font(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Force the CID font (no embedded TrueType), whatever this machine has installed."""
    monkeypatch.setenv(fonts.ENV_FONT, "/nonexistent/font.ttf")
    fonts.report_fonts.cache_clear()
    yield
    fonts.report_fonts.cache_clear()


def test_complete_report_shows_verdicts_identities_limits_and_plots(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=5, fail_every=3, trip_test=1))
    pdf = build_report(tmp_path).read_bytes()
    pages = page_texts(pdf)
    total = len(pages)
    assert total >= 6
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {total}" in page
        assert "ABORTED" not in page
    cover = pages[0]
    assert "SAFETY TRIP" in cover and "synthetic-0001" in cover
    assert re.search(r"SAFETY TRIP\nFAIL\nPASS\n1\n1\n3", cover)  # the counts table
    text = "\n".join(pages)
    for serial in ("EMU-E001-EZA", "EMU-E004-API"):  # the instrument table
        assert serial in text
    assert "TCPIP0::127.0.0.1::5025::SOCKET" in text.replace("\n", "")
    assert "energy delivered" in text and "FAIL" in text and "98" in text and "102" in text
    assert "Exchange deal-1" in text and "Shutdown 1" in text
    assert "the recorded text matches the recorded SHA-256" in text
    assert pdf.count(b"/Subtype /Image") == 5  # one plot per exchange


def test_report_without_plots_has_no_images(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=2))
    pdf = build_report(tmp_path, tmp_path / "bare.pdf", plots=False).read_bytes()
    assert b"/Subtype /Image" not in pdf
    text = "\n".join(page_texts(pdf))
    assert "(plots left out of this report)" in text and "Steps: " in text


def test_partial_run_is_marked_aborted_on_every_page(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path, SyntheticOptions(tests=4, stop_after=2))
    pages = page_texts(build_report(tmp_path).read_bytes())
    assert len(pages) >= 3
    for page in pages:
        assert "ABORTED — the run did not finish" in page.replace("\x97", "—")
    assert "did not finish (no run_end line)" in pages[0]
    assert "test_deal[02] has no test_end line" in "\n".join(pages)


def test_corrupt_line_is_named_in_the_report(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, SyntheticOptions(tests=2))
    lines = path.read_bytes().split(b"\n")
    lines[6] = b"{not json at all"
    path.write_bytes(b"\n".join(lines))
    text = "\n".join(page_texts(build_report(tmp_path).read_bytes()))
    assert "1 unreadable line(s) skipped: line 7" in text
    assert "Record problems" in text and "unreadable line" in text


def test_japanese_unit_names_print_in_the_cid_font(tmp_path: Path, cid_font: None) -> None:
    bench_text = 'name = "日本語ベンチ"\n'
    options = SyntheticOptions(tests=1, unit_names=JAPANESE_UNITS, bench_text=bench_text)
    write_synthetic_run(tmp_path, options)
    pdf = build_report(tmp_path).read_bytes()
    assert b"/BaseFont /HeiseiKakuGo-W5" in pdf
    strings = b"\n".join(page_strings(pdf))
    for name in ("蓄電池", "負荷ユニット", "日本語ベンチ"):
        assert name.encode("utf-16-be") in strings  # drawn as CID text, not as '?'
    assert b"?" * 3 not in strings


def test_japanese_font_is_embedded_when_one_is_installed(tmp_path: Path) -> None:
    fonts.report_fonts.cache_clear()
    try:
        chosen = fonts.report_fonts()
        if chosen.cjk != fonts.EMBEDDED_CJK:
            pytest.skip("no Japanese TrueType font on this machine (fonts-ipafont-gothic)")
        write_synthetic_run(tmp_path, SyntheticOptions(tests=1, unit_names=JAPANESE_UNITS))
        pdf = build_report(tmp_path).read_bytes()
        assert b"/FontFile2" in pdf  # the TrueType program is inside the PDF
        assert b"HeiseiKakuGo" not in pdf
    finally:
        fonts.report_fonts.cache_clear()


def test_mixed_text_is_cut_into_font_runs() -> None:
    assert fonts.runs("E001 → 蓄電池 ≤ 2 A") == [
        (False, "E001 → "),
        (True, "蓄電池"),
        (False, " ≤ 2 A"),
    ]
    assert fonts.markup("a<b & c") == "a&lt;b &amp; c"
