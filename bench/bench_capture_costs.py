#!/usr/bin/env python3
"""Two per-packet costs of the recorder's capture process, compiled against their numpy code,
on batches of generated traffic (as the recorder bench replays it: ``--loopback``, every
address local):

- the writer's pcap records: ``pcapwrite.pack_records`` (compiled: one loop) against
  ``_pack_numpy`` with the offsets' cumsum (what the writer did before; as Python it still does);
- ``MacTable``'s grouping of a batch's (address, MAC) pairs: ``_pairs_compiled`` (a hash table)
  against ``_pairs_numpy`` (a sort); and the whole ``MacTable.add``.

    python bench/bench_capture_costs.py [--packets 200000] [--batch 16384] [--reps 9] [--pcap FILE]

Prints CPU-time medians per packet (each pair run alternately, ``--reps`` times) and checks that
both sides give the same bytes and pairs. Needs the compiled core (``make``); the machine's load
goes beside the figures (``os.getloadavg``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recorder.core.capio import pcapwrite
from recorder.core.capio.pcapio import read_batches
from recorder.core.decode import mactable
from recorder.core.decode.decode import Decoder
from recorder.core.flow.flowid import LocalNets

GEN = Path(__file__).resolve().parents[2] / "shared" / "bench" / "gen_traffic.py"


def cpu_medians(reps: int, *fns) -> list[float]:
    """CPU seconds of each of ``fns``, median of ``reps`` runs taken in turn."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            t = time.process_time()
            fn()
            times[k].append(time.process_time() - t)
    return [statistics.median(x) for x in times]


def numpy_records(raw):
    """The writer's work before: numpy's records, and the offsets by a cumsum of their sizes."""
    cap = raw.caplen
    return pcapwrite._pack_numpy(raw, 0, len(raw)), np.concatenate(([0], np.cumsum(16 + cap[:-1])))


def mac_rows(raw, dec, local: LocalNets):
    """What MacTable.add groups: the rows of local addresses with an Ethernet header."""
    c = dec.cols
    pkt = c["pkt"]
    keep = (c["tunnel"] == -1) & (raw.linktype[pkt] == 1) & (raw.caplen[pkt] >= 14)
    keep &= local.contains_halves(c["src_hi"], c["src_lo"])
    pkt = pkt[keep]
    return raw.data, raw.off[pkt], c["src_hi"][keep], c["src_lo"][keep], raw.ts[pkt]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--pcap", type=Path, help="a capture to read (default: generated, --loopback)")
    a = ap.parse_args()
    if pcapwrite.__file__.endswith(".py") or mactable.__file__.endswith(".py"):
        print("warning: the core runs as Python (no build, or WIRETRAIL_PURE_PYTHON): both sides are numpy",
              file=sys.stderr)
    with tempfile.TemporaryDirectory() as td:
        cap = a.pcap
        if cap is None:
            cap = Path(td) / "g.pcap"
            subprocess.run([sys.executable, str(GEN), str(cap), "--packets", str(a.packets), "--loopback"],
                           check=True, capture_output=True)
        raws = list(read_batches(str(cap), batch_size=a.batch))
        slow = list(read_batches(str(cap), batch_size=a.batch, fast=False))
    dec = Decoder()
    decs = [dec.decode(raw) for raw in raws]
    n = sum(len(raw) for raw in raws)
    print(f"{n:,} packets in {len(raws)} batches of up to {a.batch:,}; load {os.getloadavg()[0]:.2f}")

    for label, batches in (("libpcap batches (packets back to back)", raws), ("reader batches (gaps)", slow)):
        for raw in batches:
            blob, rel = pcapwrite.pack_records(raw, 0, len(raw))
            old_blob, old_rel = numpy_records(raw)
            assert bytes(blob) == bytes(old_blob) and np.array_equal(rel, old_rel), "records differ"
        old, new = cpu_medians(a.reps, lambda b=batches: [numpy_records(r) for r in b],
                               lambda b=batches: [pcapwrite.pack_records(r, 0, len(r)) for r in b])
        m = sum(len(r) for r in batches)
        print(f"pcap records, {label}: numpy {old / m * 1e6:.3f} us/packet, pack_records {new / m * 1e6:.3f}")

    local = LocalNets()
    rows = [mac_rows(raw, d, local) for raw, d in zip(raws, decs)]
    for args in rows:
        for x, y in zip(mactable._pairs_numpy(*args), mactable._pairs_compiled(*args)):
            assert np.array_equal(x, y), "pairs differ"
    old, new = cpu_medians(a.reps, lambda: [mactable._pairs_numpy(*r) for r in rows],
                           lambda: [mactable._pairs_compiled(*r) for r in rows])
    print(f"MAC pairs grouped: numpy (sort) {old / n * 1e6:.3f} us/packet, hash table {new / n * 1e6:.3f}")
    # in the recorder a batch is grouped right after it was decoded: its headers are in the cache
    warm = Decoder()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(a.reps):
        spent = [0.0, 0.0]
        for raw, r in zip(raws, rows):
            for k, group in enumerate((mactable._pairs_numpy, mactable._pairs_compiled)):
                warm.decode(raw)
                t = time.process_time()
                group(*r)
                spent[k] += time.process_time() - t
        times[0].append(spent[0])
        times[1].append(spent[1])
    old, new = (statistics.median(x) for x in times)
    print(f"  each right after a decode of its batch: numpy {old / n * 1e6:.3f} us/packet, hash table {new / n * 1e6:.3f}")

    def add_all() -> None:
        table = mactable.MacTable(local)
        for raw, d in zip(raws, decs):
            table.add(raw, d, 1)

    (whole,) = cpu_medians(a.reps, add_all)
    print(f"MacTable.add, a fresh table: {whole / n * 1e6:.3f} us/packet; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
