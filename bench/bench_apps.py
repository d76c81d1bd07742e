#!/usr/bin/env python3
"""The application layer alone (dispatcher, reassembly, every parser), its output discarded.

    .venv/bin/python bench/bench_apps.py [--capture FILE]                  # compiled, if built
    WIRETRAIL_PURE_PYTHON=1 .venv/bin/python bench/bench_apps.py           # the same code as Python

The capture (default: the 1M-packet seed-2 capture bench_ingest.py makes in bench/out) is read
and decoded first; prints the best of --runs of feeding every batch to a fresh ``AppLayer``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

from recorder.core.apps.base import ListOutput
from recorder.core.apps.dispatch import AppLayer
from recorder.core.apps.registry import PARSERS
from recorder.core.compiled import status
from recorder.core.decode import Decoder
from recorder.core.ingest import GC_THRESHOLD
from recorder.core.pcapio import read_batches

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
    args = ap.parse_args()
    if not Path(args.capture).exists():
        print(f"error: {args.capture} not found (python bench/bench_ingest.py makes it)", file=sys.stderr)
        return 1
    gc.set_threshold(GC_THRESHOLD, 50, 1000)  # as the ingest does
    dec = Decoder(fast=True)
    batches = [(raw, dec.decode(raw)) for raw in read_batches(args.capture)]
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


if __name__ == "__main__":
    sys.exit(main())
