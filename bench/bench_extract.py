#!/usr/bin/env python3
"""Extracting one flow through the packet index against ``tcpdump -r`` over the same files.

    python bench/bench_extract.py [--packets 5000000] [--per-file 1000000] [--runs 3]
                                  [--workdir DIR] [--index-cost]

Generates a capture with ../shared/bench/gen_traffic.py, cuts it into files of --per-file
packets (records copied byte for byte, so flows span files), ingests them (``--no-parsers``),
picks the TCP flow with the most packets among those whose packets lie in more than one file,
and then, with the page cache dropped before every run (``echo 3 > /proc/sys/vm/drop_caches``,
root only; without it the figures are warm-cache and say so), times, best of --runs:

* ``wiretrail extract --uid UID`` and ``tcpdump -r FILE -w OUT 'tcp and host A and host B and
  port P and port Q'`` over each file in turn (the same packets);
* ``wiretrail extract --host A --since T --until T+60s`` and ``tcpdump 'host A'`` over every file;

reporting wall seconds and bytes the process read from disk (the child's ``ru_inblock`` * 512,
from wait4: its Python, libraries and database included), and for extract also the capture bytes
it read (its own count). The index size is given per million packets. ``--index-cost`` also
times the ingest in this process with the packet index and without it (the builder replaced by
one that does nothing), best of --runs each, alternating.

Writes bench/out/extract.json. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run(cmd: list[str], cold: bool) -> tuple[float, int, str, float]:
    """Wall seconds, bytes read from disk (ru_inblock * 512), standard error and CPU seconds of one run."""
    if cold:
        drop_caches()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err[-400:]}")
    return wall, usage.ru_inblock * 512, err, usage.ru_utime + usage.ru_stime


def best(make, runs: int, cold: bool) -> dict:
    results = [make(cold) for _ in range(runs)]
    wall = min(r[0] for r in results)
    return {"wall_s": round(wall, 3), "cpu_s": round(min(r[3] for r in results), 3),
            "disk_read_bytes": min(r[1] for r in results), "stderr": results[-1][2][-300:],
            "load_average": os.getloadavg()[0]}


def tcpdump_over(files: list[Path], expr: str, out: Path):
    def go(cold: bool) -> tuple[float, int, str]:
        if cold:
            drop_caches()
        wall = read = cpu = 0
        for f in files:  # one process per file, as a shell loop over an archive does
            w, r, _, c = run(["tcpdump", "-r", str(f), "-w", str(out), expr], False)
            wall += w
            read += r
            cpu += c
        return wall, read, "", cpu
    return go


class NoIndex:
    """The packet index's builder doing nothing (the ingest without the index)."""

    packets = 0

    def __init__(self, **_options) -> None:
        pass

    def add(self, raw, dec) -> None:
        pass

    def entries(self) -> list:
        return []


def index_cost(files: list[Path], runs: int) -> dict:
    """The ingest (in this process, ``--no-parsers``) with and without the index, alternating,
    best of ``runs``: wall and CPU seconds (this process and its flow writer); and, in the runs
    with the index, the CPU seconds spent in the index itself, timed around its three steps:
    ``IndexBuilder.add`` in the metering pass, ``entries`` (sort, encode) and the store's
    ``add_packet_index`` in the writer process (which reports them through a file)."""
    sys.path.insert(0, str(REPO))
    import resource
    import tempfile

    import recorder.core.pipeline.ingest as ing
    from recorder.core.store import Store
    from recorder.core.store.packets import PacketIndexTable

    real, real_store = ing.IndexBuilder, PacketIndexTable.add_packet_index
    spent: list[float] = []  # this process's index CPU seconds
    log = Path(tempfile.mkstemp(prefix="wiretrail-index-cpu-")[1])

    class TimedBuilder(real):
        def add(self, raw, dec) -> None:
            t = time.process_time()
            super().add(raw, dec)
            spent.append(time.process_time() - t)

        def entries(self):  # in the writer process
            t = time.process_time()
            out = super().entries()
            with open(log, "a") as f:
                f.write(f"{time.process_time() - t}\n")
            return out

    # sent to the writer process by pickle, which names the class by module and name
    TimedBuilder.__qualname__ = TimedBuilder.__name__ = "TimedBuilder"
    TimedBuilder.__module__ = __name__
    globals()["TimedBuilder"] = TimedBuilder

    def timed_store(self, *args, **kwargs):
        t = time.process_time()
        real_store(self, *args, **kwargs)
        with open(log, "a") as f:
            f.write(f"{time.process_time() - t}\n")

    def cpu() -> float:  # this process and its waited-for children (the flow writer)
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    times: dict[str, list[float]] = {"with": [], "without": []}
    cpus: dict[str, list[float]] = {"with": [], "without": []}
    own: list[float] = []
    PacketIndexTable.add_packet_index = timed_store
    try:
        for _ in range(runs):
            for name, builder in (("without", NoIndex), ("with", TimedBuilder)):
                ing.IndexBuilder = builder
                spent.clear()
                log.write_text("")
                with tempfile.TemporaryDirectory() as d:
                    store = Store(os.path.join(d, "b.db"))
                    store.ensure_schema()
                    t, c = time.perf_counter(), cpu()
                    ing.ingest([str(f) for f in files], store, parsers=False)
                    times[name].append(time.perf_counter() - t)
                    cpus[name].append(cpu() - c)
                    store.close()
                if name == "with":
                    own.append(sum(spent) + sum(float(x) for x in log.read_text().split()))
    finally:
        ing.IndexBuilder, PacketIndexTable.add_packet_index = real, real_store
        log.unlink()
    w, wo = min(times["with"]), min(times["without"])
    cw, cwo = min(cpus["with"]), min(cpus["without"])
    shares = [o / c for o, c in zip(own, cpus["with"])]
    return {"with_index_s": round(w, 3), "without_index_s": round(wo, 3),
            "cost_percent": round(100 * (w - wo) / wo, 1),
            "cpu_with_s": round(cw, 3), "cpu_without_s": round(cwo, 3),
            "cpu_cost_percent": round(100 * (cw - cwo) / cwo, 1),
            "index_cpu_s": [round(o, 3) for o in own],
            "index_share_of_ingest_cpu_percent": [round(100 * x, 1) for x in shares],
            "runs": runs, "load_average": os.getloadavg()}


def growth(wt: list[str], work: Path, parts: list[Path], runs: int, cold: bool) -> list[dict]:
    """The archive growing: after ingesting each next file into a store of its own, extract one
    flow of the first file by uid and tcpdump its filter over the files so far."""
    db = work / f"growth{len(parts)}.db"
    if db.exists():
        db.unlink()
    out, steps, chosen = work / "out.pcap", [], None
    for k, part in enumerate(parts, 1):
        subprocess.run([*wt, "ingest", "--no-parsers", "--db", str(db), str(part)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if chosen is None:
            con = sqlite3.connect(db)
            con.row_factory = sqlite3.Row
            chosen = dict(con.execute("SELECT * FROM flows WHERE proto = 'tcp' ORDER BY orig_pkts + resp_pkts DESC "
                                      "LIMIT 1").fetchone())
            con.close()
        expr = (f"tcp and host {chosen['orig_h']} and host {chosen['resp_h']} and port {chosen['orig_p']} "
                f"and port {chosen['resp_p']}")
        cmd = [*wt, "extract", "--db", str(db), "--uid", chosen["uid"], "--out", str(out)]
        ex = best(lambda c, cmd=cmd: run(cmd, c), runs, cold)
        td = best(tcpdump_over(parts[:k], expr, work / "ref.pcap"), runs, cold)
        steps.append({"files": k, "bytes": sum(p.stat().st_size for p in parts[:k]),
                      "extract_wall_s": ex["wall_s"], "extract_cpu_s": ex["cpu_s"],
                      "extract_disk_read_bytes": ex["disk_read_bytes"], "tcpdump_wall_s": td["wall_s"],
                      "tcpdump_cpu_s": td["cpu_s"], "tcpdump_disk_read_bytes": td["disk_read_bytes"],
                      "load_average": os.getloadavg()[0]})
        print(json.dumps(steps[-1]), file=sys.stderr)
    db.unlink()
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--per-file", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/wiretrail-bench-extract")
    ap.add_argument("--index-cost", action="store_true")
    ap.add_argument("--only-index-cost", action="store_true", help="skip the extract and tcpdump runs")
    ap.add_argument("--growth", action="store_true", help="also the archive growing from one file to all: "
                    "a second store ingested one file at a time, one flow of the first file extracted after each")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    whole = work / f"gen{a.packets}.pcap"
    parts = sorted(work.glob(f"part{a.packets}_{a.per_file}_*.pcap"))
    if not parts:
        if not whole.exists():
            subprocess.run([sys.executable, str(SHARED / "bench" / "gen_traffic.py"), str(whole), "--packets",
                            str(a.packets), "--seed", str(a.seed)], check=True)
        subprocess.run(["editcap", "-F", "pcap", "-c", str(a.per_file), str(whole), str(work / f"part{a.packets}_{a.per_file}.pcap")],
                       check=True)
        parts = sorted(work.glob(f"part{a.packets}_{a.per_file}_*.pcap"))
    wt = [str(Path(sys.executable).parent / "wiretrail")]
    db = work / f"index{a.packets}_{a.per_file}.db"
    if not db.exists():
        t = time.perf_counter()
        subprocess.run([*wt, "ingest", "--no-parsers", "--db", str(db), *map(str, parts)], check=True)
        print(f"ingest: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if a.only_index_cost:
        print(json.dumps(index_cost(parts, a.runs), indent=2))
        return
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows, entries, packets, blob, directory = con.execute(
        "SELECT count(*), sum(keys), sum(packets), sum(length(ranges)), sum(length(directory)) "
        "FROM packet_index").fetchone()
    total_packets = con.execute("SELECT sum(packets) FROM captures").fetchone()[0]
    flows = con.execute("SELECT * FROM flows WHERE proto = 'tcp' ORDER BY orig_pkts + resp_pkts DESC LIMIT 200").fetchall()
    con.close()
    cold = os.geteuid() == 0 and drop_caches()
    res0 = {"load_average_start": os.getloadavg()}
    out = work / "out.pcap"
    chosen = None
    for f in flows:  # the biggest flow with packets in more than one file
        w, r, err, _ = run([*wt, "extract", "--db", str(db), "--uid", f["uid"], "--out", str(out)], False)
        if "from 1 file" not in err:
            chosen = f
            break
    chosen = chosen or flows[0]
    expr = (f"tcp and host {chosen['orig_h']} and host {chosen['resp_h']} and port {chosen['orig_p']} "
            f"and port {chosen['resp_p']}")
    res: dict = {"packets": total_packets, "files": len(parts), "bytes": sum(p.stat().st_size for p in parts),
                 **res0, "cold_cache": cold, "uid": chosen["uid"], "flow_packets": chosen["orig_pkts"] + chosen["resp_pkts"]}
    res["index"] = {"rows": rows, "keys": entries, "packets": packets, "ranges_bytes": blob,
                    "directory_bytes": directory,
                    "ranges_bytes_per_million_packets": round(blob * 1e6 / total_packets),
                    "bytes_per_million_packets": round((blob + directory) * 1e6 / total_packets)}
    res["extract_uid"] = best(lambda c: run([*wt, "extract", "--db", str(db), "--uid", chosen["uid"], "--out", str(out)], c),
                              a.runs, cold)
    m = re.search(r"\((\d+) bytes read from (\d+) file", res["extract_uid"]["stderr"])
    res["extract_uid"]["capture_bytes_read"] = int(m.group(1)) if m else None
    res["tcpdump_uid"] = best(tcpdump_over(parts, expr, work / "ref.pcap"), a.runs, cold)
    res["tcpdump_uid_one_file"] = best(tcpdump_over(parts[:1], expr, work / "ref.pcap"), a.runs, cold)
    host, t0 = chosen["orig_h"], int(chosen["ts_ns"]) // 10**9
    res["extract_host_minute"] = best(lambda c: run([*wt, "extract", "--db", str(db), "--host", host, "--since", str(t0),
                                                     "--until", str(t0 + 60), "--out", str(out)], c), a.runs, cold)
    m = re.search(r"\((\d+) bytes read from (\d+) file", res["extract_host_minute"]["stderr"])
    res["extract_host_minute"]["capture_bytes_read"] = int(m.group(1)) if m else None
    res["tcpdump_host"] = best(tcpdump_over(parts, f"host {host}", work / "ref.pcap"), a.runs, cold)
    if a.growth:
        res["growth"] = growth(wt, work, parts, a.runs, cold)
    if a.index_cost:  # on the first file only (each run is two whole ingests)
        res["index_cost"] = index_cost(parts[:1], a.runs)
    res["load_average_end"] = os.getloadavg()
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "extract.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
