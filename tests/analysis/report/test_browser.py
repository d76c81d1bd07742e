"""The HTML report in a real browser (headless Chromium): it loads with no console error and no
request beyond the file itself, every picture is drawn, it screenshots at 1280 px and prints to a
PDF of several pages (A4 and Letter) whose text can be extracted."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from analysis.report import render_html
from tests.analysis.report.browser import visit
from tests.analysis.report.conftest import breach_story, breach_timeline, meta

needs_tools = pytest.mark.skipif(not (shutil.which("dot") and shutil.which("pdftotext") and shutil.which("pdfinfo")),
                                 reason="needs Graphviz (graphviz) and poppler-utils (pdftotext, pdfinfo)")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def check_in_browser(page: Path, tmp: Path, must_read: tuple[str, ...]) -> None:
    """The checks the issue asks of the report, for any report file."""
    shot, a4, letter = tmp / "report.png", tmp / "report-a4.pdf", tmp / "report-letter.pdf"
    seen = visit(page, screenshot=shot, pdfs={"A4": a4, "Letter": letter})
    assert seen.requests == [page.resolve().as_uri()], "the report fetched something beyond itself"
    assert [c for c in seen.console if c[0] in ("error", "pageerror", "warning")] == []
    assert len(seen.svgs) == 2
    for svg in seen.svgs:
        assert svg["width"] > 100 and svg["height"] > 50 and svg["shapes"] > 5, svg
    width, height = _png_size(shot)
    assert width == 1280 and height > 2000
    for pdf, paper in ((a4, "A4"), (letter, "letter")):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
        assert pages > 1
        size = next(line for line in info.splitlines() if line.startswith("Page size:"))
        assert paper in size, size
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        flat = " ".join(text.split())
        for phrase in must_read:
            assert phrase in flat, phrase


@needs_tools
def test_hand_built_report_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(breach_story(), breach_timeline(), meta()), encoding="utf-8")
    check_in_browser(page, tmp_path, ("What happened on your network", "Summary for the owner",
                                      "Accounts to reset", "Draft notification to customers",
                                      "4111 **** **** 1111", "203.0.113.66"))


@needs_tools
def test_a_fetch_would_be_seen(tmp_path: Path) -> None:
    """The check above can fail: a page that loads a picture from the network is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"><title>x</title></head><body>'
                    '<img src="http://203.0.113.9/logo.png" alt="logo"></body></html>', encoding="utf-8")
    seen = visit(page)
    assert "http://203.0.113.9/logo.png" in seen.requests
