#!/usr/bin/env python3
"""Live capture: how many packets the recorder keeps against tcpdump, same replay, same run.

Needs root, iproute2, tcpreplay and tcpdump. Makes a network namespace with a veth pair,
replays a ``gen_traffic.py --loopback`` capture with ``tcpreplay --topspeed`` onto one end, and
captures on the other, first with ``tcpdump -B 65536`` (a 64 MiB buffer), then with
``wiretrail-recorder run`` (64 MiB buffer, writing sealed files and metering flows into SQLite),
``--rounds`` times each, alternating. Prints packets sent, kept, kernel drops and the replay
rate per round, and the median kept.

    sudo python3 bench/bench_recorder.py [--packets 1000000] [--rounds 3] [--pcap FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "bench" / "gen_traffic.py"
NS, TX, RX = "wtbench", "wtbtx", "wtbrx"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def netns_up() -> None:
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "exec", NS, "ip", "link", "add", TX, "type", "veth", "peer", "name", RX)
    for dev in ("lo", TX, RX):
        sh("ip", "netns", "exec", NS, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
        sh("ip", "netns", "exec", NS, "ip", "link", "set", dev, "up")


def replay(pcap: Path) -> str:
    r = sh("ip", "netns", "exec", NS, "tcpreplay", "--topspeed", "-i", TX, str(pcap))
    m = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", r.stdout)
    return m.group(1) if m else "?"


def count_packets(paths: list[Path]) -> int:
    sys.path.insert(0, str(REPO))
    from recorder.core.pcapio import read_batches

    return sum(len(b) for p in paths for b in read_batches(str(p)))


def run_tcpdump(pcap: Path, work: Path) -> tuple[int, str, str]:
    out = work / "tcpdump.pcap"
    p = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", RX, "-B", "65536", "-s", "262144", "-n",
                          "-w", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    rate = replay(pcap)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    m = re.search(r"(\d+) packets dropped by kernel", err)
    kept = count_packets([out])
    out.unlink()
    return kept, m.group(1) if m else "?", rate


def run_recorder(pcap: Path, work: Path) -> tuple[int, str, str]:
    out, db = work / "rec", work / "rec.db"
    sock_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    log = open(work / "recorder.log", "w")  # noqa: SIM115
    p = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-m", "recorder.cli", "run", "--interface", RX,
                          "--output-dir", str(out), "--db", str(db), "--buffer-size", "64M", "--rotate-size", "1G",
                          "--stats-interval", "0"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    notify.settimeout(120)
    while b"READY=1" not in notify.recv(4096):
        pass
    rate = replay(pcap)
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=300)
    log.close()
    notify.close()
    sock_path.unlink()
    text = (work / "recorder.log").read_text()
    m = re.search(r"stopped \S+: \d+ packets, (\d+) kernel drops", text)
    kept = count_packets(sorted(out.glob("*.pcap")))
    shutil.rmtree(out)
    db.unlink()
    return kept, m.group(1) if m else "?", rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pcap", type=Path, help="a --loopback capture to replay (default: generated)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_recorder.py: needs root (network namespace, capture)", file=sys.stderr)
        return 2
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"bench_recorder.py: {tool} is not installed", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wiretrail-bench-"))
    pcap = a.pcap
    if pcap is None:
        if not GEN.exists():
            print(f"bench_recorder.py: {GEN} is missing; give --pcap", file=sys.stderr)
            return 2
        pcap = work / "loop.pcap"
        subprocess.run([sys.executable, str(GEN), str(pcap), "--packets", str(a.packets), "--seed", "2",
                        "--loopback"], check=True, stdout=subprocess.DEVNULL)
    sent = count_packets([pcap])
    netns_up()
    results: dict[str, list[int]] = {"tcpdump -B 65536": [], "wiretrail-recorder": []}
    try:
        for i in range(a.rounds):
            for name, fn in (("tcpdump -B 65536", run_tcpdump), ("wiretrail-recorder", run_recorder)):
                kept, drops, rate = fn(pcap, work)
                results[name].append(kept)
                print(f"round {i + 1} {name:20s} sent {sent:>9,} kept {kept:>9,} ({100 * kept / sent:6.2f}%) "
                      f"kernel drops {drops:>8} replay {rate} pps", flush=True)
    finally:
        sh("ip", "netns", "del", NS, check=False)
        shutil.rmtree(work, ignore_errors=True)
    for name, kept in results.items():
        print(f"median {name:20s} kept {statistics.median(kept):>11,.0f} of {sent:,} "
              f"({100 * statistics.median(kept) / sent:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
