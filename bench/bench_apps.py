#!/usr/bin/env python3
"""The application layer alone (dispatcher, reassembly, every parser), its output discarded.

    .venv/bin/python bench/bench_apps.py [--capture FILE]                  # compiled, if built
    WIRETRAIL_PURE_PYTHON=1 .venv/bin/python bench/bench_apps.py           # the same code as Python

The capture (default: the 1M-packet seed-2 capture bench_ingest.py makes in bench/out) is read
and decoded first; prints the best of --runs of feeding every batch to a fresh ``AppLayer``.

With ``--store``, the records are kept as an ingest keeps them, all in this one process (no
writer process, nothing handed between processes), into a fresh SQLite database, and the time is
split: the application layer with the records' building (file hashes included: in one process
they are computed there), the rows made of them, the SQLite inserts. Their sum is the CPU time the parsers add to an ingest before any
cost of running on two cores; the ingest's speed target is set against that (README, "Speed").
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

from recorder.core.apps.base import ListOutput
from recorder.core.apps.dispatch import AppLayer
from recorder.core.apps.registry import PARSERS
from recorder.core.capio.pcapio import read_batches
from recorder.core.compiled import status
from recorder.core.decode.decode import Decoder
from recorder.core.pipeline.ingest import GC_THRESHOLD
from recorder.core.store import Store
from recorder.core.store import records as store_records

DEFAULT = Path(__file__).resolve().parent / "out" / "gen_1000000_s2.pcap"


class Discard(ListOutput):
    """Takes what the parsers emit and keeps nothing (file hashes are not computed)."""

    def log(self, name, record, conn):
        pass

    def file(self, conn, **kw):
        return "F"

    def name(self, *a, **kw):
        pass

    def credential(self, *a, **kw):
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--store", action="store_true", help="keep the records in SQLite, timed apart")
    args = ap.parse_args()
    if not Path(args.capture).exists():
        print(f"error: {args.capture} not found (python bench/bench_ingest.py makes it)", file=sys.stderr)
        return 1
    gc.set_threshold(GC_THRESHOLD, 50, 1000)  # as the ingest does
    dec = Decoder(fast=True)
    batches = [(raw, dec.decode(raw)) for raw in read_batches(args.capture)]
    if args.store:
        return _with_store(batches, args.runs)
    best = float("inf")
    for _ in range(args.runs):
        app = AppLayer(Discard(), PARSERS)
        t = time.perf_counter()
        for raw, d in batches:
            app.feed(raw, d)
        app.finish()
        best = min(best, time.perf_counter() - t)
    print(f"application layer: {best:.2f} s (best of {args.runs}); {status()}")
    return 0


def _with_store(batches: list, runs: int) -> int:
    spent = {"rows": 0.0, "inserts": 0.0}
    make_rows, insert_rows = store_records.make_rows, store_records.insert_rows

    def timed(key, fn):
        def call(*a):
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent[key] += time.perf_counter() - t
        return call

    store_records.make_rows, store_records.insert_rows = timed("rows", make_rows), timed("inserts", insert_rows)
    best = None
    for _ in range(runs):
        spent.update(rows=0.0, inserts=0.0)
        with tempfile.TemporaryDirectory() as td, Store(str(Path(td) / "apps.db")) as store:
            store.ensure_schema()
            out = store_records.StoreOutput(store)
            app = AppLayer(out, PARSERS)
            t = time.perf_counter()
            for raw, d in batches:
                app.feed(raw, d)
            app.finish()
            out.close()
            total = time.perf_counter() - t
            records = sum(out.rows_written.values())
        if best is None or total < best[0]:
            best = (total, spent["rows"], spent["inserts"], records)
    total, rows, inserts, records = best
    print(f"application layer and its records: {total - rows - inserts:.2f} s; rows made of {records:,} records: "
          f"{rows:.2f} s; SQLite inserts: {inserts:.2f} s; in all {total:.2f} s (best of {runs}); {status()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
