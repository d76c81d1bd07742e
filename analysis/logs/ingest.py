"""``logs ingest``: each file read by its content (evtx, journalctl JSON, syslog, web access log;
plain or gzip), its events written to the store with where they came from.

A line that does not parse is kept raw (kind ``raw``) and counted as skipped; a line that is not
UTF-8, holds binary bytes (NUL) or is longer than ``MAX_LINE`` is counted as skipped and not
kept; a broken evtx record is counted as skipped. Nothing here is fatal for a file's other lines."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from analysis.logs import store as log_store
from analysis.logs.evtx_reader import is_evtx, read_evtx
from analysis.logs.model import LogEvent, SourceSummary
from analysis.logs.reading import GZIP_MAGIC, MAX_LINE, Options, Part, head, lines, text_events, tolerant
from analysis.logs.syslog import is_journal_line, is_syslog_line
from analysis.logs.web import WebParser
from recorder.core.store import Store

SNIFF_LINES = 50
__all__ = ["MAX_LINE", "Options", "Parallel", "SourceSummary", "ingest_file", "sniff"]


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sniff(path: str, options: Options) -> str:
    """syslog, journal, web, evtx or unknown, from the first lines."""
    first = head(path)
    if is_evtx(first):
        return "evtx"
    web = WebParser(options.log_format)
    votes = {"journal": 0, "syslog": 0, "web": 0}
    for _n, line in zip(range(SNIFF_LINES), lines(path, {"skipped": 0})):
        text = line[1]
        if is_journal_line(text):
            votes["journal"] += 1
        elif web.matches(text):
            votes["web"] += 1
        elif is_syslog_line(text):
            votes["syslog"] += 1
    best = max(votes, key=lambda k: votes[k])
    return best if votes[best] else "unknown"


def _evtx_events(path: str, counts: dict[str, int]) -> Iterator[LogEvent]:
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    if not compressed:
        yield from read_evtx(path, counts)
        return
    with tempfile.NamedTemporaryFile(suffix=".evtx") as tmp, gzip.open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            tmp.write(chunk)
        tmp.flush()
        yield from read_evtx(tmp.name, counts)


@dataclass(frozen=True, slots=True)
class Parallel:
    """When a file is read by several processes (``parallel``): a plain text file (not gzip, not
    evtx) of at least ``min_bytes`` into a SQLite store, by ``workers`` processes (default: the
    CPUs, at most 4); their scratch files in ``scratch_dir`` (default: the store's folder)."""

    min_bytes: int = 16 << 20
    workers: int | None = None
    scratch_dir: str | None = None


def _ranges(store: Store, path: str, kind: str, size: int, parallel: Parallel) -> tuple[list[Part], int]:
    """The parts ``path`` is read in, and by how many processes (no parts: read here, serially)."""
    if kind == "evtx" or not store.is_sqlite:
        return [], 1
    from analysis.logs.parallel import part_count, parts, workers_for

    n = workers_for(size, min_bytes=parallel.min_bytes, workers=parallel.workers)
    if n < 2:
        return [], 1
    try:
        with open(path, "rb") as f:
            if f.read(2) == GZIP_MAGIC:
                return [], 1
        return parts(path, part_count(size, n)), n
    except OSError:
        return [], 1  # read serially, which counts what cannot be read


def ingest_file(store: Store, path: str, options: Options, parallel: Parallel = Parallel()) -> SourceSummary:
    """One file into the store; never raises for the file's content (only for the database, or
    a worker process's failure when the file is read by several: ``Parallel``)."""
    try:
        digest = sha256_of(path)
        kind = sniff(path, options)
    except OSError as err:
        return SourceSummary(path, "unknown", "", 0, 0, problem=err.strerror or str(err))
    seen = log_store.source_by_sha256(store, digest)
    if seen is not None:
        return SourceSummary(path, seen["kind"], digest, 0, 0, source_id=seen["id"], duplicate=True,
                             problem=f"already in the store (same SHA-256 as {seen['path']})")
    counts = {"skipped": 0}
    source_id = log_store.add_source(store, path=path, sha256=digest, kind=kind, host=options.host)
    try:  # about how many lines are coming (a line of an auth or web log is ~100-200 bytes)
        size = os.path.getsize(path)
    except OSError:
        size = 0
    expected = size // 200 if kind != "evtx" else 0
    checked_text = kind not in ("evtx", "journal")
    ranges, workers = _ranges(store, path, kind, size, parallel)
    if len(ranges) > 1:
        from analysis.logs.parallel import read_parts

        try:
            written = read_parts(store, path, kind, options, counts, source_id, ranges, expected,
                                 checked_text=checked_text, scratch_dir=parallel.scratch_dir, workers=workers)
        except BaseException:
            log_store.drop_source(store, source_id)
            raise
    else:
        if kind == "evtx":
            events = _evtx_events(path, counts)
        else:
            events = text_events(path, kind, options, counts)
        written = log_store.write_events(store, source_id, options.host, tolerant(events, counts), expected,
                                         checked_text=checked_text)
    parsed = written - counts.get("raw", 0)
    log_store.finish_source(store, source_id, kind=kind, events=parsed, skipped=counts["skipped"])
    problem = counts.get("error") if not parsed else None  # type: ignore[assignment]
    if kind == "unknown" and not parsed:
        problem = "not a log format this version reads (syslog, journalctl JSON, web access log, evtx)"
    return SourceSummary(path, kind, digest, parsed, counts["skipped"], source_id=source_id,
                         problem=str(problem) if problem else None)
