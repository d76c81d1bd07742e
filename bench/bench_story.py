#!/usr/bin/env python3
"""The breach story's speed: ``wiretrail incidents``, ``wiretrail timeline`` and ``wiretrail
report`` (the owner's HTML report) on a store of N flows and 10k alerts, for each N given.

    python bench/bench_story.py [--flows 100000 1000000] [--alerts 10000] [--seed 19]

Builds each store synthetically in SQLite (no capture: a site of 200 local hosts talking to 20,000
Internet addresses over a day, DNS records for a tenth of the flows, alerts from 300 scanners,
one brute force and one beacon), then runs each command as a child process (the CLI as a user
runs it) and reports wall clock and the child's peak RSS. Prints a Markdown table and writes
bench/out/story.json. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from recorder.core.schema import FLOW_FIELDS  # noqa: E402
from recorder.core.store import Store, addr16  # noqa: E402

T0 = 1_714_557_600 * 1_000_000_000
DAY = 86_400 * 1_000_000_000


def build(db: str, flows: int, alerts: int, seed: int) -> None:
    from analysis.alerts import Alert
    from analysis.replay import alert_row
    from recorder.core.store.records import StoreOutput  # noqa: F401  (schema for the app tables)

    rng = random.Random(seed)
    local = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(200)]
    remote = [f"{rng.choice((198, 203, 45, 91))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
              for _ in range(20_000)]
    with Store(db) as store:
        store.ensure_schema()
        a16 = {h: addr16(h) for h in local + remote}
        batch = []
        for i in range(flows):
            o, r = rng.choice(local), rng.choice(remote) if rng.random() < 0.8 else rng.choice(local)
            port = rng.choice((443, 443, 443, 80, 53, 22, 445, 8080, rng.randrange(1024, 65535)))
            row = dict.fromkeys(FLOW_FIELDS)
            row.update(uid=f"C{i:011d}", ts_ns=T0 + rng.randrange(DAY), duration_ns=rng.randrange(10**10),
                       orig_h=o, orig_p=rng.randrange(1024, 65535), resp_h=r, resp_p=port, orig_a=a16[o], resp_a=a16[r],
                       proto="tcp", ip_proto=6, orig_bytes=rng.randrange(2000), resp_bytes=rng.randrange(50_000),
                       conn_state="SF", local_orig=True, local_resp=r.startswith("10."), history="ShADadFf",
                       orig_pkts=5, resp_pkts=7, community_id=f"1:{i}")
            batch.append(tuple(row[f] for f in FLOW_FIELDS))
            if len(batch) == 50_000:
                store.insert_flows(batch)
                batch = []
        store.insert_flows(batch)
        rows = []
        scanners = remote[:300]
        for k in range(alerts - 40):
            s = scanners[k % 300]
            rows.append(alert_row(Alert(ts_ns=T0 + rng.randrange(DAY), signature_id=9000001, severity=2,
                                        signature=f"Port scan: {s} probed 40 tcp ports on {local[k % 50]}",
                                        src_ip=s, dest_ip=local[k % 50], tactic="TA0007 Discovery",
                                        rule_kind="port_scan"), "behaviour", None))
        for k in range(30):
            rows.append(alert_row(Alert(ts_ns=T0 + 3600 * 10**9 + k, signature_id=9000008, severity=2,
                                        signature="Cleartext credentials: FTP login for 'root' sent in clear text",
                                        src_ip=remote[500], dest_ip=local[7], tactic="TA0006 Credential Access",
                                        rule_kind="cleartext_credentials"), "behaviour", None))
        rows.append(alert_row(Alert(ts_ns=T0 + 3600 * 10**9, signature_id=9000003, severity=1,
                                    signature="Brute force login: 40 failed FTP logins", src_ip=remote[500],
                                    dest_ip=local[7], tactic="TA0006 Credential Access", rule_kind="brute_force"),
                              "behaviour", None))
        rows.append(alert_row(Alert(ts_ns=T0 + 4000 * 10**9, signature_id=9000006, severity=2,
                                    signature="Beaconing: regular", src_ip=local[7], dest_ip=remote[501],
                                    tactic="TA0011 Command and Control", rule_kind="beaconing"), "behaviour", None))
        store.add_alerts(rows)


def run(cmd: list[str]) -> tuple[float, int, int]:
    """Wall clock, the child's own peak RSS (KiB, from wait4) and the lines it printed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode())
            raise SystemExit(f"{' '.join(cmd)}: exit {os.waitstatus_to_exitcode(status)}")
        out.seek(0)
        return wall, usage.ru_maxrss, sum(1 for _ in out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--workdir", default=str(HERE / "out"))
    args = ap.parse_args()
    wiretrail = str(Path(sys.executable).with_name("wiretrail"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-story-") as tmp:
        for n in args.flows:
            db = os.path.join(tmp, f"story-{n}.db")
            t = time.perf_counter()
            build(db, n, args.alerts, args.seed)
            built = time.perf_counter() - t
            for name in ("incidents", "timeline", "report"):
                cmd = ([wiretrail, name, "--db", db, "--out", os.path.join(tmp, "report.html")] if name == "report"
                       else [wiretrail, name, "--db", db, "--format", "jsonl"])
                wall, peak_kb, lines = run(cmd)
                results.append({"flows": n, "alerts": args.alerts, "command": name, "seconds": round(wall, 2),
                                "peak_rss_mib": round(peak_kb / 1024), "rows": lines, "build_seconds": round(built, 1)})
                print(f"| {n:,} | {name} | {wall:.1f} s | {peak_kb / 1024:.0f} MiB | {lines:,} rows |", flush=True)
            os.unlink(db)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    (Path(args.workdir) / "story.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
