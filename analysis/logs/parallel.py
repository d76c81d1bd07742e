"""A large plain-text log read by several processes at once: the file cut into byte ranges at line
ends (``parts``), one worker process (``recorder.core.pipeline.child.Child``) per range reading,
parsing and writing its rows into its own scratch SQLite file, then the parent copying those
files' rows into the store in order, by SQLite itself (``store.copy_events``: no Python per row).

Each range keeps its lines' numbers (the ``\\n`` before it counted) and the parsers keep no state
across lines but caches, so the stored rows, their order and their ids are those a serial read
gives. A worker's failure (its scratch file not writable, the disk full) ends the ingest with one
``WiretrailError`` line naming the log file and the line reached, and nothing of the file stored;
the scratch files go whatever happens, an interrupt included."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.logs import store as log_store
from analysis.logs.reading import Options, Part, text_events, tolerant
from recorder.core.errors import WiretrailError
from recorder.core.pipeline.child import Child
from recorder.core.schema import LOG_EVENT_FIELDS
from recorder.core.store import Store

MIN_BYTES = 16 << 20  # below this a file is read serially (measured: README, bench_logs)
MAX_WORKERS = 4
BATCH = 20_000
_SCAN = 1 << 20


def workers_for(size: int, *, min_bytes: int = MIN_BYTES, workers: int | None = None) -> int:
    """How many processes read a plain file of ``size`` bytes: 1 (serially, in this process) when
    it is smaller than ``min_bytes`` or there is one CPU; else ``workers`` or the CPUs, at most
    ``MAX_WORKERS``."""
    if size < min_bytes:
        return 1
    n = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
    return max(1, n)


def parts(path: str, n: int) -> list[Part]:
    """``path`` cut into at most ``n`` ranges of about equal size, each starting just after a
    ``\\n`` (a line longer than a range joins the range it starts in), with the number of lines
    before it."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, n):
            at = max(size * i // n, cuts[-1])
            f.seek(at)
            while True:
                block = f.read(_SCAN)
                if not block:
                    at = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    at += nl + 1
                    break
                at += len(block)
            if cuts[-1] < at < size:
                cuts.append(at)
        ranges = list(zip(cuts, [*cuts[1:], size]))
        out, lines, pos = [], 0, 0
        for start, end in ranges:
            f.seek(pos)
            while pos < start:  # the lines before this range
                block = f.read(min(_SCAN, start - pos))
                if not block:
                    break
                lines += block.count(b"\n")
                pos += len(block)
            out.append(Part(start, end, lines))
    return out


@dataclass(frozen=True, slots=True)
class Job:
    path: str
    kind: str
    options: Options
    part: Part
    source_id: int
    checked_text: bool
    scratch: str


def _work(_inbox, outbox, job: Job) -> None:
    """In a worker: the part's events as rows into the scratch file; replies its counts."""
    counts: dict = {"skipped": 0}
    reached = job.part.lines
    try:
        con = sqlite3.connect(job.scratch, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            con.execute(f"CREATE TABLE log_events ({', '.join(LOG_EVENT_FIELDS)})")
            insert = f"INSERT INTO log_events VALUES ({', '.join('?' * len(LOG_EVENT_FIELDS))})"
            row = log_store.row_maker(job.checked_text)
            host = job.options.host
            batch: list[tuple] = []
            for ev in tolerant(text_events(job.path, job.kind, job.options, counts, job.part), counts):
                batch.append(row(job.source_id, host, ev))
                if len(batch) >= BATCH:
                    reached = ev.line
                    _insert(con, insert, batch)
                    batch = []
            if batch:
                reached = batch[-1][1]
                _insert(con, insert, batch)
        finally:
            con.close()
    except (sqlite3.Error, OSError) as err:
        raise WiretrailError(f"cannot write the scratch file {job.scratch}: {err}", path=job.path,
                             line=reached or None) from None
    outbox.send("done", counts)


def _insert(con: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
    con.execute("BEGIN")
    con.executemany(sql, rows)
    con.execute("COMMIT")


def _scratch_dir(store: Store, scratch_dir: str | None) -> str:
    """Where the scratch files go: ``scratch_dir``, else the store's own folder (the room the load
    needs is there anyway), else the system's temporary folder."""
    if scratch_dir is not None:
        return scratch_dir
    url = store.engine.url
    db = url.database or ""
    if store.is_sqlite and db not in ("", ":memory:") and not db.startswith("file:"):
        return os.path.dirname(os.path.abspath(db))
    return tempfile.gettempdir()


def read_parts(store: Store, path: str, kind: str, options: Options, counts: dict, source_id: int,
               ranges: Sequence[Part], expected: int, *, checked_text: bool,
               scratch_dir: str | None = None) -> int:
    """The ranges of ``path`` read by one worker each, their rows stored in order; ``counts``
    gains theirs (skipped, raw, the first reading error). Returns how many rows were stored.
    Raises WiretrailError (one line: the file, the line reached) when a worker fails; the store
    then holds none of the file's rows."""
    where = _scratch_dir(store, scratch_dir)
    # named before it is made, so that an interrupt at any point leaves nothing behind
    folder = os.path.join(where, f".wiretrail-logs-{os.getpid()}-{secrets.token_hex(6)}")
    children: list[Child] = []
    try:
        try:
            os.mkdir(folder, 0o700)
        except OSError as err:
            raise WiretrailError(f"cannot make a scratch folder in {where}: {err.strerror or err}",
                                 path=path) from None
        for i, part in enumerate(ranges):
            job = Job(path, kind, options, part, source_id, checked_text, os.path.join(folder, f"part{i}.db"))
            children.append(Child(_work, (job,), name=f"wiretrail-log-reader-{i}",
                                  failure=lambda err, p=path: WiretrailError(f"cannot read: {err!r}", path=p),
                                  ended=WiretrailError(f"a log reader process ended unexpectedly (part {i})",
                                                       path=path, line=part.lines + 1)))
        results = [child.finish() for child in children]
        failed = next((c.error for c in children if c.error is not None), None)
        if failed is not None:
            raise failed
        for got in results:
            counts["skipped"] += got["skipped"]
            if got.get("raw"):
                counts["raw"] = counts.get("raw", 0) + got["raw"]
            if got.get("error") and "error" not in counts:
                counts["error"] = got["error"]
        return log_store.copy_events(store, [os.path.join(folder, f"part{i}.db") for i in range(len(ranges))],
                                     expected)
    finally:
        for child in children:  # an interrupt or a failure: the others need not finish
            if child.process.is_alive():
                child.process.terminate()
            child.process.join()
        shutil.rmtree(folder, ignore_errors=True)
