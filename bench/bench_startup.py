"""How fast the ``wiretrail`` commands an investigator runs dozens of times in a row answer.

    .venv/bin/python bench/bench_startup.py [--runs 9] [--before CHECKOUT] [--importtime]

Times, as whole processes (wall clock, median of ``--runs``), ``wiretrail --help``, ``flows
--limit 1``, ``alerts --limit 1``, ``dns --limit 1`` and ``db info`` on a small store (the
shipped demo capture, ingested and replayed once), beside the same queries through
``sqlite-utils`` when it is installed (the peer the issue names). ``--before CHECKOUT`` times
another checkout's code in the same run (run with ``PYTHONPATH=CHECKOUT``, e.g. a ``git worktree``
of an older commit), so the change is measured against its own baseline on the same machine
state. ``--importtime`` prints ``python -X importtime``'s ten slowest imports for each command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "captures" / "demo.pcap"
COMMANDS = {
    "--help": ["--help"],
    "flows --limit 1": ["flows", "--db", "{db}", "--limit", "1"],
    "alerts --limit 1": ["alerts", "--db", "{db}", "--limit", "1"],
    "dns --limit 1": ["dns", "--db", "{db}", "--limit", "1"],
    "db info": ["db", "info", "--db", "{db}"],
}
PEER = {  # the same questions asked of the same SQLite file through sqlite-utils
    "flows --limit 1": ["rows", "{db}", "flows", "--limit", "1"],
    "alerts --limit 1": ["rows", "{db}", "alerts", "--limit", "1"],
    "dns --limit 1": ["rows", "{db}", "dns", "--limit", "1"],
    "db info": ["tables", "{db}", "--counts"],
}


def wiretrail_cli() -> list[str]:
    """The wiretrail of the interpreter running this bench (the project's virtualenv)."""
    script = Path(sys.executable).with_name("wiretrail")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from analysis.cli import main; main()"]


def timed(cmd: list[str], runs: int, env: dict) -> float:
    """Median wall seconds of ``runs`` runs (one untimed run first, to warm the page cache)."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def importtime(cmd: list[str], env: dict, top: int = 10) -> list[str]:
    """The ``top`` slowest imports (cumulative microseconds) of one run of ``cmd``."""
    script = cmd[0]
    r = subprocess.run([sys.executable, "-X", "importtime", script, *cmd[1:]], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line[len("import time:"):].split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"{us / 1000:8.1f} ms  {name}" for us, name in rows[:top]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", metavar="CHECKOUT", help="also time this checkout's code (PYTHONPATH=CHECKOUT)")
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    cli = wiretrail_cli()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="wiretrail-startup-") as tmp:
        db, old_db = str(Path(tmp) / "small.db"), str(Path(tmp) / "small-before.db")
        subprocess.run([*cli, "replay", "--db", db, str(DEMO)], env=env, stdout=subprocess.DEVNULL, check=True)
        before_env = {**env, "PYTHONPATH": args.before} if args.before else None
        if before_env:  # the older code makes its own store: its schema may be older
            subprocess.run([*cli, "replay", "--db", old_db, str(DEMO)], env=before_env, stdout=subprocess.DEVNULL,
                           check=True)
        peer = shutil.which("sqlite-utils") or (str(Path(sys.executable).with_name("sqlite-utils"))
                                               if Path(sys.executable).with_name("sqlite-utils").exists() else None)
        header = "| command | wiretrail s |" + (" before s |" if args.before else "") + (" sqlite-utils s |" if peer else "")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for name, argv in COMMANDS.items():
            cmd = [*cli, *(a.format(db=db) for a in argv)]
            row = f"| `{name}` | {timed(cmd, args.runs, env):.3f} |"
            if before_env:
                old = [*cli, *(a.format(db=old_db) for a in argv)]
                row += f" {timed(old, args.runs, before_env):.3f} |"
            if peer:
                row += (f" {timed([peer, *(a.format(db=db) for a in PEER[name])], args.runs, env):.3f} |"
                        if name in PEER else " |")
            print(row, flush=True)
        if args.importtime:
            for name, argv in COMMANDS.items():
                print(f"\n{name}: slowest imports (cumulative)")
                print("\n".join(importtime([*cli, *(a.format(db=db) for a in argv)], env)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
