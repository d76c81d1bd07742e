#!/usr/bin/env python3
"""Replay speed: every loadable ET Open rule over a capture, against ingest alone, in one run.

    python bench/bench_replay.py [--packets 1000000] [--seed 2] [--runs 1] [--rules DIR] [--capture FILE]

Generates the capture with ../shared/bench/gen_traffic.py (or takes --capture FILE), then times,
wall clock, median of --runs, each into a fresh SQLite database:

* ``wiretrail ingest`` (flows and protocol logs): the base of the ratio;
* ``wiretrail replay --rules RULES`` (the same ingest, then the signature engine over the same
  packets with every rule that loads, alerts stored), with packets/s;
* ``wiretrail replay --rules RULES`` with a single rule, to show what the rule count itself costs.

Prints a Markdown table and writes bench/out/replay.json. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from bench_ingest import HERE, SHARED, bench_capture, median_runs, remove_sqlite, wiretrail_script  # noqa: I001

ONE_RULE = 'alert http any any -> any any (msg:"one rule"; http.uri; content:"/wiretrail-bench-none"; sid:1;)\n'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--capture", help="use this capture instead of generating one")
    ap.add_argument("--rules", default=str(SHARED / "reference" / "et-open"), help="rules folder or file")
    ap.add_argument("--workdir", default=str(HERE / "out"))
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cap = bench_capture(args.capture, work, args.packets, args.seed)
    if cap is None:
        return 1
    if not Path(args.rules).exists():
        print(f"error: {args.rules} not found; pass --rules", file=sys.stderr)
        return 1
    packets = None
    wiretrail = wiretrail_script()
    results = []
    with tempfile.TemporaryDirectory() as td:
        db = Path(td) / "bench.db"
        one = Path(td) / "one.rules"
        one.write_text(ONE_RULE)

        def clean():
            remove_sqlite(db)

        clean()
        median_runs(lambda: [wiretrail, "ingest", "--db", str(db), str(cap)], 1, clean, stdout=False)  # warm-up
        for label, cmd in (
                ("wiretrail ingest (flows + protocol logs)", [wiretrail, "ingest", "--db", str(db), str(cap)]),
                (f"wiretrail replay, rules: {args.rules}", [wiretrail, "replay", "--db", str(db), "--rules",
                                                           args.rules, "--skip-invalid", str(cap), "--format",
                                                           "jsonl"]),
                ("wiretrail replay, one rule", [wiretrail, "replay", "--db", str(db), "--rules", str(one), str(cap),
                                                "--format", "jsonl"])):
            wall, rss, out = median_runs(lambda cmd=cmd: cmd, args.runs, clean, stdout=False, ok=(0, 3))
            note = [line for line in out.strip().splitlines() if re.match(r"^[\d,]+ packets, ", line)]
            results.append({"what": label, "wall_s": wall, "peak_rss_mib": rss / 1024,
                            "note": note[-1] if note else ""})
            if note:
                packets = int(note[-1].split(" packets", 1)[0].replace(",", "")) or packets

    base = results[0]["wall_s"]
    print(f"\ninput: {cap} ({cap.stat().st_size / 1e6:.0f} MB), median of {args.runs} runs\n")
    print("| what | wall s | packets/s | / ingest alone | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for r in results:
        pps = f"{packets / r['wall_s']:,.0f}" if packets else "-"
        print(f"| {r['what']} | {r['wall_s']:.2f} | {pps} | {r['wall_s'] / base:.2f}x | {r['peak_rss_mib']:.0f} |")
    for r in results[1:]:
        print(f"{r['what']}: {r['note']}")
    (work / "replay.json").write_text(json.dumps({"capture": str(cap), "runs": args.runs, "results": results},
                                                 indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
