#!/usr/bin/env python3
"""The flow meter alone, compiled (numba) or interpreted, on decoded generated traffic.

    python bench/bench_meter.py [--packets 200000]            # compiled
    NUMBA_DISABLE_JIT=1 python bench/bench_meter.py           # the same code, interpreted

Prints the seconds spent metering (decoding excluded, a warm-up batch first).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.flow.flowmeter import FlowMeter

GEN = Path(__file__).resolve().parents[2] / "shared" / "bench" / "gen_traffic.py"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        cap = Path(td) / "g.pcap"
        subprocess.run([sys.executable, str(GEN), str(cap), "--packets", str(a.packets), "--seed", str(a.seed)],
                       check=True, capture_output=True)
        dec = Decoder()
        batches = [(raw, dec.decode(raw)) for raw in read_batches(str(cap))]
    warm = FlowMeter(lambda b: None)
    warm.add(batches[0][0], batches[0][1], 1, dec.tunnels)
    warm.finish()
    meter = FlowMeter(lambda b: None)
    t = time.perf_counter()
    for raw, d in batches:
        meter.add(raw, d, 1, dec.tunnels)
    meter.finish()
    print(f"metered {a.packets:,} packets into {meter.flows_out:,} flows in {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
