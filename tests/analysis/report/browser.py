"""Open a report in headless Chromium (Debian's ``chromium``, driven by playwright-python without a
browser download) and say what a reader's browser would do with it: every request it made, every
console message and page error, each SVG's drawn size, a screenshot and a PDF."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# The flags /work/.library/env/machines/python.md lists for quiet headless runs, and a resolver
# that answers nothing: a request that tries to leave still shows in ``requests``, and fails.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND"]

# Per SVG: its bounding box and how many drawing elements it holds
SVG_SIZES = """() => Array.from(document.querySelectorAll('svg')).map(s => {
    const box = s.getBBox();
    return {width: box.width, height: box.height,
            shapes: s.querySelectorAll('path, text, polygon, polyline, ellipse, rect, line, circle').length};
})"""


@dataclass
class Visit:
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    svgs: list[dict] = field(default_factory=list)
    title: str = ""


def need_chromium():
    """playwright's sync API, or a skip naming what is missing."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; make test installs it)")
    sync = pytest.importorskip("playwright.sync_api", reason="playwright-python is not installed (pip install -e '.[test]')")
    return sync.sync_playwright


def visit(page_path: Path, *, screenshot: Path | None = None, pdfs: dict[str, Path] | None = None,
          width: int = 1280) -> Visit:
    """Load ``page_path`` by file:// and record what happened; optionally screenshot and print it."""
    sync_playwright = need_chromium()
    out = Visit()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.on("request", lambda r: out.requests.append(r.url))
            page.on("console", lambda m: out.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: out.console.append(("pageerror", str(e))))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(300)  # late fetches (fonts, images) would show by now
            out.svgs = page.evaluate(SVG_SIZES)
            out.title = page.title()
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=True)
            for paper, path in (pdfs or {}).items():
                page.pdf(path=str(path), format=paper, print_background=False)
        finally:
            browser.close()
    return out


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
