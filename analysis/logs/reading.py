"""Reading a text log's lines (plain, in 1 MiB blocks, whole or a byte range of it; or gzip, line
by line) and parsing them into events: the part of ``logs ingest`` that a worker process runs on
its range of a large file (``parallel``) as well.

A line that is not UTF-8, holds binary bytes (NUL) or is longer than ``MAX_LINE`` is counted as
skipped and not kept; one that does not parse is kept raw (kind ``raw``) and counted as skipped."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo

from analysis.logs.model import LogEvent
from analysis.logs.syslog import SyslogParser, parse_journal_line
from analysis.logs.web import WebParser

MAX_LINE = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Options:
    host: str | None = None
    tz: tzinfo | None = None  # zone of timestamps written without one (default UTC)
    log_format: str | None = None  # Apache LogFormat for web logs


def _open(path: str):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == GZIP_MAGIC else open(path, "rb")


def head(path: str) -> bytes:
    with _open(path) as f:
        try:
            return f.read(8)
        except (OSError, EOFError, zlib.error):
            return b""


def lines(path: str, counts: dict[str, int], part: Part | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each readable line; the others counted in ``skipped``. A plain file
    is read in blocks (``_block_lines``), whole or only ``part`` of it; a gzip file line by line,
    so that what was read before a cut in it stays."""
    if part is not None:
        yield from _block_lines(path, counts, part)
        return
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    if not compressed:
        yield from _block_lines(path, counts)
        return
    with _open(path) as f:
        number = 0
        try:
            while True:
                data = f.readline(MAX_LINE + 1)
                if not data:
                    break
                number += 1
                if len(data) > MAX_LINE and not data.endswith(b"\n"):
                    counts["skipped"] += 1
                    while data and not data.endswith(b"\n"):  # the rest of the long line
                        data = f.readline(MAX_LINE + 1)
                    continue
                text = _text(data, counts)
                if text is not None:
                    yield number, text
        except (OSError, EOFError, zlib.error):  # a gzip cut short: what was read stays
            counts["skipped"] += 1


def _text(data: bytes, counts: dict[str, int]) -> str | None:
    """One line's text (without its end of line), or None: not UTF-8 or holding NUL (counted as
    skipped), or blank."""
    if b"\x00" in data:
        counts["skipped"] += 1
        return None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        counts["skipped"] += 1
        return None
    return text if text.strip() else None


BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Part:
    """A byte range of a plain file, cut at line ends: it starts just after a ``\n`` (or at 0) and
    ``lines`` lines come before it, so its lines keep their numbers in the whole file."""

    start: int
    end: int
    lines: int


def _block_lines(path: str, counts: dict[str, int], part: Part | None = None) -> Iterator[tuple[int, str]]:
    """"``lines`` of a plain file (or of ``part`` of it), the same lines and counts, read 1 MiB at
    a time: a block of whole lines without NUL is decoded at once and split, and only a block that
    does not decode goes line by line. A line longer than ``MAX_LINE`` bytes (its end of line
    aside) is skipped. What a line gives depends on its bytes only, not on where the blocks cut."""
    number = part.lines if part else 0
    left = part.end - part.start if part else -1  # bytes still to read (-1: to the end)
    carry = b""
    dropping = False  # inside a long line already counted as skipped
    with open(path, "rb") as f:
        try:
            if part:
                f.seek(part.start)
            while True:
                block = f.read(BLOCK if left < 0 else min(BLOCK, left))
                left -= len(block) if left > 0 else 0
                if not block:
                    break
                end = block.rfind(b"\n")
                if dropping:
                    if end < 0:
                        continue
                    block, dropping = block[block.find(b"\n") + 1:], False
                    end = block.rfind(b"\n")
                if end < 0:
                    carry += block
                    if len(carry) > MAX_LINE:
                        number += 1
                        counts["skipped"] += 1
                        carry, dropping = b"", True
                    continue
                whole, carry = carry + block[:end], block[end + 1:]
                for text in _block_texts(whole, counts):
                    number += 1
                    if text:
                        yield number, text
                if len(carry) > MAX_LINE:
                    number += 1
                    counts["skipped"] += 1
                    carry, dropping = b"", True
        except OSError:
            counts["skipped"] += 1
            return
    if carry:  # a last line without its end of line
        number += 1
        text = _text(carry, counts)
        if text is not None:
            yield number, text


def _block_texts(whole: bytes, counts: dict[str, int]) -> list[str | None]:
    """The text of each line of ``whole`` (lines without their final ``\\n``), None for one skipped
    or blank (the skipped counted)."""
    if b"\x00" not in whole:
        try:
            texts = whole.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            pass
        else:
            out: list[str | None] = texts
            for i, text in enumerate(texts):
                if len(text) > MAX_LINE // 4 and len(text.encode("utf-8")) > MAX_LINE:
                    counts["skipped"] += 1
                    out[i] = None
                elif not text or text[-1] == "\r" or text[0].isspace() or text[-1].isspace():
                    text = text.rstrip("\r")
                    out[i] = text if text.strip() else None
            return out
    out = []
    for data in whole.split(b"\n"):
        if len(data) > MAX_LINE:
            counts["skipped"] += 1
            out.append(None)
        else:
            out.append(_text(data, counts))
    return out


def text_events(path: str, kind: str, options: Options, counts: dict[str, int],
                 part: Part | None = None) -> Iterator[LogEvent]:
    """The events of a text file's lines (or of ``part`` of them): the parsers keep no state from
    one line to the next but caches, so parts of a file read apart give the same events."""
    if kind == "journal":
        for number, text in lines(path, counts, part):
            ev = parse_journal_line(number, text)
            if ev is None:
                counts["skipped"] += 1
                ev = LogEvent(line=number, kind="raw", raw=text)
            yield ev
        return
    if kind == "web":
        parser = WebParser(options.log_format)
        for number, text in lines(path, counts, part):
            ev = parser.parse(number, text)
            if ev is None:
                counts["skipped"] += 1
                ev = LogEvent(line=number, kind="raw", raw=text)
            yield ev
        return
    mtime = os.stat(path).st_mtime
    syslog = SyslogParser(mtime=mtime, tz=options.tz)
    for number, text in lines(path, counts, part):
        ev = syslog.parse(number, text) if kind == "syslog" else None
        if ev is None:
            counts["skipped"] += 1
            ev = LogEvent(line=number, kind="raw", raw=text)
        yield ev


def tolerant(events: Iterator[LogEvent], counts: dict[str, int]) -> Iterator[LogEvent]:
    """The events, counting raw ones; a reader failing midway (a truncated evtx, a broken gzip)
    ends the file with what was read, counted as one skipped part (its error kept in ``error``)."""
    try:
        for ev in events:
            if ev.kind == "raw":
                counts["raw"] = counts.get("raw", 0) + 1
            yield ev
    except (OSError, RuntimeError, ValueError, EOFError, zlib.error) as err:
        counts["skipped"] += 1
        counts["error"] = (str(err).splitlines() or [type(err).__name__])[0][:200]  # type: ignore[assignment]
