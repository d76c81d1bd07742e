"""The HTML report in a real browser (headless Chromium): it loads with no console error and no
request beyond the file itself, every picture is drawn, it screenshots at 1280 px and prints to a
PDF of several pages (A4 and Letter) whose text can be extracted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.report import render_html
from tests.analysis.report.breach import breach_story, breach_timeline, meta
from tests.analysis.report.browser import check_in_browser, visit

needs_tools = pytest.mark.skipif(not (shutil.which("dot") and shutil.which("pdftotext") and shutil.which("pdfinfo")),
                                 reason="needs Graphviz (graphviz) and poppler-utils (pdftotext, pdfinfo)")


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
