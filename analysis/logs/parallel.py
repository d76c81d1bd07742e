"""A large plain-text log read by several processes at once: the file cut into byte ranges at line
ends (``parts``: a few per worker process, ``recorder.core.pipeline.child.Child``), each worker
reading, parsing and writing its ranges' rows into one scratch SQLite file per range, and the
parent copying each file's rows into the store in order, by SQLite itself (``store.copy_events``:
no Python per row), as soon as it is written, while the workers read the later ranges.

Each range keeps its lines' numbers (the ``\\n`` before it counted) and the parsers keep no state
across lines but caches, so the stored rows, their order and their ids are those a serial read
gives. A worker's failure (its scratch file not writable, the disk full) ends the ingest with one
``WiretrailError`` line naming the log file and the line reached, and nothing of the file stored;
the scratch files go whatever happens, an interrupt included."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
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
PARTS_PER_WORKER = 4
PART_MIN_BYTES = 4 << 20
_SCAN = 1 << 20


def workers_for(size: int, *, min_bytes: int = MIN_BYTES, workers: int | None = None) -> int:
    """How many processes read a plain file of ``size`` bytes: 1 (serially, in this process) when
    it is smaller than ``min_bytes`` or there is one CPU; else ``workers`` or the CPUs, at most
    ``MAX_WORKERS``."""
    if size < min_bytes:
        return 1
    n = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
    return max(1, n)


def part_count(size: int, workers: int) -> int:
    """How many ranges ``workers`` processes read a file of ``size`` bytes in: ``PARTS_PER_WORKER``
    each, so that the parent copies the first ranges while the workers read the later ones (and a
    worker that is done early takes none of the others' time), each of ``PART_MIN_BYTES`` or more
    (one per worker at least)."""
    return max(workers, min(workers * PARTS_PER_WORKER, size // PART_MIN_BYTES))


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


def _work(_inbox, outbox, jobs: tuple[Job, ...]) -> None:
    """In a worker: each of its parts, in order, into its scratch file; replies each part's counts
    as soon as it is written (the parent copies it meanwhile), then ``done``."""
    for job in jobs:
        outbox.send("part", _write_part(job))
    outbox.send("done", None)


def _write_part(job: Job) -> dict:
    """One part's events as rows into its scratch file; returns its counts."""
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
    return counts


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
               ranges: Sequence[Part], expected: int, *, checked_text: bool, workers: int | None = None,
               scratch_dir: str | None = None) -> int:
    """The ranges of ``path`` read by ``workers`` processes (default: one per range), each taking
    every ``workers``-th range in turn; their rows stored in order, each range's copied as soon as
    it is written and every earlier one copied, while the workers go on with the later ranges.
    ``counts`` gains theirs (skipped, raw, the first reading error). Returns how many rows were
    stored. Raises WiretrailError (one line: the file, the line reached) when a worker fails; the
    caller then drops what was stored of the file (``ingest_file``)."""
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
        jobs = [Job(path, kind, options, part, source_id, checked_text, os.path.join(folder, f"part{i}.db"))
                for i, part in enumerate(ranges)]
        n = max(1, min(workers or len(jobs), len(jobs)))
        for w in range(n):
            children.append(Child(_work, (tuple(jobs[w::n]),), name=f"wiretrail-log-reader-{w}",
                                  failure=lambda err, p=path: WiretrailError(f"cannot read: {err!r}", path=p)))
        return log_store.copy_events(store, _written(children, jobs, counts), expected)
    finally:
        for child in children:  # an interrupt or a failure: the others need not finish
            if child.process.is_alive():
                child.process.terminate()
            child.process.join()
        shutil.rmtree(folder, ignore_errors=True)


def _written(children: Sequence[Child], jobs: Sequence[Job], counts: dict) -> Iterator[str]:
    """The scratch files in the ranges' order, each as soon as its worker has written it (its counts
    added to ``counts``); each removed once the next is asked for (it has been copied). Raises the
    failure of the worker a range waits for."""
    for i, job in enumerate(jobs):
        child = children[i % len(children)]
        try:
            got = child.reply()
        except WiretrailError:
            if child.error is child.ended:  # gone without a word: say which range it was reading
                raise WiretrailError(f"a log reader process ended unexpectedly (part {i})", path=job.path,
                                     line=job.part.lines + 1) from None
            raise
        counts["skipped"] += got["skipped"]
        if got.get("raw"):
            counts["raw"] = counts.get("raw", 0) + got["raw"]
        if got.get("error") and "error" not in counts:
            counts["error"] = got["error"]
        yield job.scratch
        with contextlib.suppress(OSError):
            os.remove(job.scratch)
    for child in children:  # every range is in: only its "done" is left to read
        child.finish()
