#!/usr/bin/env python3
"""Ingest speed against peer tools, on the same file, in one run.

    python bench/bench_ingest.py [--packets 1000000] [--seed 2] [--runs 3] [--keep]

Generates the capture with ../shared/bench/gen_traffic.py (or takes --capture FILE), then times,
whole process and wall clock, median of --runs:

* ``wiretrail ingest --no-parsers`` into a fresh SQLite database (flows stored), with its peak
  RSS, the base of the ratios; then ``wiretrail ingest`` with every protocol parser on; then both
  with the core's modules as Python (``WIRETRAIL_PURE_PYTHON=1``) instead of compiled;
* nfstream (flows, no DPI), if the ``nfstream`` module is importable by --nfstream-python;
* argus (``argus -r FILE -w OUT``), if ``argus`` is on PATH;
* tshark, Wireshark's dissectors doing the protocol part of the work (the DNS query, HTTP host
  and URI, TLS server name of every packet: ``tshark -r FILE -T fields -e ...``, output
  discarded), if ``tshark`` is on PATH; its ratio is to the ingest with every parser on.

Prints a Markdown table with ratios to wiretrail and writes bench/out/ingest.json.
No timing is asserted anywhere: this reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
TSHARK_FIELDS = ("dns.qry.name", "http.host", "http.request.uri", "tls.handshake.extensions_server_name")
NFSTREAM_SNIPPET = (
    "import sys\nfrom nfstream import NFStreamer\n"
    "n = sum(1 for _ in NFStreamer(source=sys.argv[1], statistical_analysis=False, n_dissections=0))\n"
    "print(n)\n"
)


def timed(cmd: list[str], *, stdout: bool = True, ok: tuple[int, ...] = (0,),
          env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, the child's own peak RSS in KiB (from wait4), and the tail of its output
    (``stdout=False``: its standard output is dropped and all of its standard error kept);
    ``env`` is added to the child's environment."""
    t = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                          stderr=subprocess.STDOUT if stdout else subprocess.PIPE, text=True,
                          env={**os.environ, **env} if env else None) as p:
        stream = p.stdout if stdout else p.stderr
        out = stream.read() if stream else ""
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {out[-400:]}")
    return wall, usage.ru_maxrss, out[-300:] if stdout else out


def median_runs(make_cmd, runs: int, cleanup=None, **timed_kw) -> tuple[float, int, str]:
    walls, peak, out = [], 0, ""
    for _ in range(runs):
        if cleanup:
            cleanup()
        w, rss, out = timed(make_cmd(), **timed_kw)
        walls.append(w)
        peak = max(peak, rss)
    return statistics.median(walls), peak, out


def bench_capture(capture: str | None, work: Path, packets: int, seed: int) -> Path | None:
    """``capture``, or the gen_traffic.py capture of that size and seed (made once, kept in ``work``);
    None (with a message) when it cannot be made."""
    cap = Path(capture) if capture else work / f"gen_{packets}_s{seed}.pcap"
    if not cap.exists():
        gen = SHARED / "bench" / "gen_traffic.py"
        if not gen.exists():
            print(f"error: {gen} not found; pass --capture FILE", file=sys.stderr)
            return None
        subprocess.run([sys.executable, str(gen), str(cap), "--packets", str(packets), "--seed", str(seed)],
                       check=True)
    return cap


def wiretrail_script() -> str:
    return shutil.which("wiretrail") or str(Path(sys.executable).parent / "wiretrail")


def remove_sqlite(db: Path) -> None:
    """A SQLite database and its WAL files, so the next run starts from nothing."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--capture", help="use this capture instead of generating one")
    ap.add_argument("--workdir", default=str(HERE / "out"))
    ap.add_argument("--nfstream-python", default=os.environ.get("NFSTREAM_PYTHON", sys.executable),
                    help="a Python with nfstream installed (default: this one)")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cap = bench_capture(args.capture, work, args.packets, args.seed)
    if cap is None:
        return 1
    wiretrail = wiretrail_script()
    results = []
    with tempfile.TemporaryDirectory() as td:
        db = Path(td) / "bench.db"

        def clean():
            remove_sqlite(db)

        # one warm-up run so numba's cache and the page cache are in place, as in steady use
        clean()
        timed([wiretrail, "ingest", "--db", str(db), str(cap)])
        # flows only: what nfstream (no DPI) and argus do; then with every protocol parser on; then
        # both again with the core's modules run as Python instead of compiled (README, "Why Cython")
        pure = {"WIRETRAIL_PURE_PYTHON": "1"}
        for label, extra, env in (("wiretrail ingest --no-parsers (flows stored, SQLite)", ["--no-parsers"], None),
                                  ("wiretrail ingest (flows + protocol logs, SQLite)", [], None),
                                  ("same --no-parsers, core as Python (WIRETRAIL_PURE_PYTHON=1)", ["--no-parsers"], pure),
                                  ("same with parsers, core as Python (WIRETRAIL_PURE_PYTHON=1)", [], pure)):
            wall, rss, out = median_runs(lambda extra=extra: [wiretrail, "ingest", "--db", str(db), *extra, str(cap)],
                                         args.runs, clean, env=env)
            results.append({"tool": label, "wall_s": wall, "peak_rss_mib": rss / 1024,
                            "note": out.strip().splitlines()[-1] if out.strip() else ""})

    probe = subprocess.run([args.nfstream_python, "-c", "import nfstream"], capture_output=True, check=False)
    if probe.returncode == 0:
        wall, rss, _ = median_runs(lambda: [args.nfstream_python, "-c", NFSTREAM_SNIPPET, str(cap)], args.runs)
        results.append({"tool": "nfstream (flows, no DPI)", "wall_s": wall, "peak_rss_mib": rss / 1024})
    else:
        results.append({"tool": "nfstream", "wall_s": None, "note": f"not importable by {args.nfstream_python}"})

    if shutil.which("argus"):
        with tempfile.TemporaryDirectory() as td:
            out_file = Path(td) / "out.argus"
            wall, rss, _ = median_runs(lambda: ["argus", "-r", str(cap), "-w", str(out_file)], args.runs,
                                       lambda: out_file.unlink(missing_ok=True))
        results.append({"tool": "argus (flow records)", "wall_s": wall, "peak_rss_mib": rss / 1024})
    else:
        results.append({"tool": "argus", "wall_s": None, "note": "not on PATH (apt-get install argus-server)"})

    if shutil.which("tshark"):
        fields = [arg for name in TSHARK_FIELDS for arg in ("-e", name)]
        wall, rss, _ = median_runs(lambda: ["tshark", "-r", str(cap), "-T", "fields", *fields], args.runs,
                                   stdout=False)
        results.append({"tool": "tshark (DNS query, HTTP host/URI, TLS SNI)", "wall_s": wall,
                        "peak_rss_mib": rss / 1024})
    else:
        results.append({"tool": "tshark", "wall_s": None, "note": "not on PATH (apt-get install tshark)"})

    base = results[0]["wall_s"]
    print(f"\ninput: {cap} ({cap.stat().st_size / 1e6:.0f} MB), median of {args.runs} runs\n")
    print("| tool | wall s | wiretrail / tool | peak RSS MiB |")
    print("|---|---|---|---|")
    for r in results:
        if r["wall_s"] is None:
            print(f"| {r['tool']} | - | - | - ({r['note']}) |")
            continue
        print(f"| {r['tool']} | {r['wall_s']:.2f} | {base / r['wall_s']:.2f}x | {r.get('peak_rss_mib', 0):.0f} |")
    print(f"\nparsers on / off: {results[1]['wall_s'] / base:.2f}x ({results[1]['note']})")
    if results[-1]["wall_s"] is not None:
        print(f"with parsers / tshark's fields: {results[1]['wall_s'] / results[-1]['wall_s']:.2f}x")
    print(f"as Python: parsers on / off {results[3]['wall_s'] / results[2]['wall_s']:.2f}x; compiled / Python: "
          f"{base / results[2]['wall_s']:.2f}x without parsers, {results[1]['wall_s'] / results[3]['wall_s']:.2f}x with")
    print(subprocess.run([wiretrail, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1])
    (work / "ingest.json").write_text(json.dumps({"capture": str(cap), "runs": args.runs, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
