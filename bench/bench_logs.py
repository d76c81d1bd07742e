#!/usr/bin/env python3
"""Log ingest and Sigma detection speed: generated auth and web logs into a fresh SQLite store,
then 100 Sigma rules over them.

    PYTHONPATH=. .venv/bin/python bench/bench_logs.py [--lines 1000000] [--rules 100]

The logs: 70% syslog auth lines (sshd failures, accepted logins, connections, disconnects, sudo,
session lines; 1% left unparseable), 30% combined-format web requests (1% attacks), written to a
temporary folder. Timed: `logs ingest`'s library call per file (read, parse, store), then
`logs detect`'s (rules loaded and converted, the events laid out, every rule run), each in CPU
seconds (user + system of this process and its worker processes) and wall seconds, with the load average before and after
(on a shared machine the CPU figure is the fairer one). The rules:
Wiretrail's own (rules/sigma) and generated webserver/linux rules with contains, endswith,
startswith and regular-expression matches until --rules is reached.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.logs.detect import run  # noqa: E402
from analysis.logs.ingest import Options, Parallel, ingest_file  # noqa: E402
from analysis.logs.sigma import load_rules  # noqa: E402
from recorder.core.store import Store  # noqa: E402

USERS = ["root", "admin", "alice", "bob", "oracle", "test", "ubuntu", "deploy", "git", "postgres"]
PATHS = ["/", "/index.html", "/login", "/api/v1/items", "/static/app.js", "/img/logo.png", "/cart", "/search"]
ATTACKS = ["/item.php?id=1%27%20union%20select%201,2--", "/../../etc/passwd", "/uploads/shell.php?cmd=id"]


def auth_line(rng: random.Random, t: int) -> str:
    stamp = time.strftime("%b %e %H:%M:%S", time.gmtime(t))
    ip = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    port = rng.randrange(1024, 65535)
    user = rng.choice(USERS)
    pid = rng.randrange(1000, 99999)
    k = rng.random()
    if k < 0.45:
        msg = f"sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2"
    elif k < 0.55:
        msg = f"sshd[{pid}]: Invalid user {user}{rng.randrange(99)} from {ip} port {port}"
    elif k < 0.65:
        msg = f"sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:abc"
    elif k < 0.75:
        msg = f"sshd[{pid}]: Connection closed by authenticating user {user} {ip} port {port} [preauth]"
    elif k < 0.85:
        msg = f"sudo:   {user} : TTY=pts/{rng.randrange(9)} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/apt update"
    elif k < 0.99:
        msg = f"systemd-logind[{pid}]: New session {rng.randrange(9999)} of user {user}."
    else:
        return "junk \x7f not a syslog line"
    return f"{stamp} host{rng.randrange(20)} {msg}"


def web_line(rng: random.Random, t: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    path = rng.choice(ATTACKS) if rng.random() < 0.01 else rng.choice(PATHS)
    return (f'203.0.{rng.randrange(256)}.{rng.randrange(1, 255)} - - [{stamp}] "GET {path} HTTP/1.1" '
            f'{rng.choice((200, 200, 200, 304, 404))} {rng.randrange(100000)} "-" "Mozilla/5.0 (X11; Linux x86_64)"')


def generated_rules(folder: Path, n: int) -> None:
    tokens = ["wp-admin", "phpmyadmin", ".env", "xmlrpc", "cgi-bin", "actuator", "config.json", "backup",
              "server-status", ".git/"]
    for i in range(n):
        tok = tokens[i % len(tokens)] + (str(i) if i >= len(tokens) else "")
        if i % 4 == 0:
            det = f"    sel:\n        cs-uri-stem|contains: '{tok}'\n"
            src = "    category: webserver\n"
        elif i % 4 == 1:
            det = f"    sel:\n        cs-user-agent|startswith: '{tok}'\n        sc-status: 200\n"
            src = "    category: webserver\n"
        elif i % 4 == 2:
            det = f"    sel:\n        command|endswith: '/{tok}'\n"
            src = "    product: linux\n    service: sudo\n"
        else:
            det = f"    sel:\n        user|re: '^{tok.replace('.', '[.]')}[0-9]+$'\n        action: login\n"
            src = "    product: linux\n    service: sshd\n"
        (folder / f"gen{i:03d}.yml").write_text(
            f"title: generated {i}\nid: 00000000-0000-4000-8000-{i:012d}\nlogsource:\n{src}detection:\n{det}"
            "    condition: sel\nlevel: low\n")


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its ended children (the ingest's
    worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes reading a large log (default: the CPUs, at most 4; 1: serially)")
    ap.add_argument("--no-detect", action="store_true", help="time the ingest only")
    a = ap.parse_args()
    rng = random.Random(7)
    print("load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as td:
        tdp = Path(td)
        n_auth = a.lines * 7 // 10
        t0 = 1_798_000_000
        with open(tdp / "auth.log", "w") as f:
            for i in range(n_auth):
                f.write(auth_line(rng, t0 + i // 20) + "\n")
        with open(tdp / "access.log", "w") as f:
            for i in range(a.lines - n_auth):
                f.write(web_line(rng, t0 + i // 10) + "\n")
        os.utime(tdp / "auth.log", (t0 + 86400, t0 + 86400))
        store = Store(str(tdp / "w.db"))
        store.ensure_schema()
        start, cpu = time.perf_counter(), cpu_s()
        events = skipped = 0
        for name in ("auth.log", "access.log"):
            s = ingest_file(store, str(tdp / name), Options(), Parallel(workers=a.workers))
            events += s.events
            skipped += s.skipped
        ingest_s, ingest_cpu = time.perf_counter() - start, cpu_s() - cpu
        print(f"ingest: {a.lines:,} lines ({events:,} events, {skipped:,} skipped) in {ingest_s:.2f} s "
              f"({a.lines / ingest_s:,.0f} lines/s; {ingest_cpu:.2f} s of CPU)")
        if a.no_detect:
            store.close()
            print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
            return 0
        rules_dir = tdp / "rules"
        rules_dir.mkdir()
        shipped = Path(__file__).resolve().parents[1] / "rules" / "sigma"
        own = load_rules([str(shipped)])
        generated_rules(rules_dir, max(0, a.rules - len(own.rules)))
        start, cpu = time.perf_counter(), time.process_time()
        ruleset = load_rules([str(shipped), str(rules_dir)])
        load_s = time.perf_counter() - start
        matches, failed, count = run(store, ruleset)
        detect_s, detect_cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"detect: {len(ruleset.rules)} rules ({len(ruleset.rejected)} rejected, {len(failed)} failed) over "
              f"{count:,} events: {len(matches):,} alerts in {detect_s:.2f} s ({detect_cpu:.2f} s of CPU; "
              f"rules loaded in {load_s:.2f} s)")
        store.close()
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
