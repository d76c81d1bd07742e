#!/usr/bin/env python3
"""Live capture: how many packets the recorder keeps against tcpdump, same replay, same run.

Needs root, iproute2, tcpreplay and tcpdump. Makes a network namespace with a veth pair,
replays a ``gen_traffic.py --loopback`` capture with ``tcpreplay --topspeed`` onto one end, and
captures on the other, first with ``tcpdump -B 65536`` (a 64 MiB buffer), then with
``wiretrail-recorder run`` with 1 and with 2 workers (64 MiB buffer each, writing sealed files,
metering flows and running the protocol parsers into SQLite) and with 1 worker and
``--no-parsers``, ``--rounds`` times each, alternating. Prints packets sent,
kept, kernel drops, the replay rate and CPU time (user + system, per packet kept) per round,
and the median kept. ``--encryption`` runs instead the recorder with and without
``--encrypt-to`` (a key made for the run; the kept packets are counted in the decrypted files),
with the parsers and with ``--no-parsers``; ``--index`` the recorder with ``--no-parsers``
without its packet index (``FileIndexes`` collecting nothing), with it, and with it and
``--encrypt-to``. ``--rules PATH`` (a rule file or folder, such as ET Open
in ``../shared/reference/et-open``; read where it is, never copied) runs instead tcpdump and the
recorder with those rules live (``--rules PATH --skip-invalid``, files sealed every 5 s), keeps it
running after the replay until every sealed file the live engine did not fully inspect has been
caught up (``live_rules.py``), and reports the packets inspected live and by catch-up, the
catch-up delay, and whether the stored signature alerts equal ``wiretrail replay`` of the sealed
files with the same rules (ts, sid, flow uid and endpoints). With ``--warm-up`` the recorder gets the
capture's first 200 packets first and the timed replay starts once it is idle (its parsers'
process loads the rules at its first batch).

    sudo .venv/bin/python bench/bench_recorder.py [--packets 1000000] [--rounds 3] [--pcap FILE] [--encryption]
    sudo .venv/bin/python bench/bench_recorder.py --packets 200000 --rounds 1 --rules ../shared/reference/et-open [--warm-up]

(the project's virtualenv: the recorder runs as ``sys.executable -m recorder.cli``)
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

import live_rules

REPO = Path(__file__).resolve().parents[1]
GEN = REPO.parent / "shared" / "bench" / "gen_traffic.py"
NS, TX, RX = f"wtbench{os.getpid()}", "wtbtx", "wtbrx"  # a name of its own: benches may run side by side


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
    from recorder.core.capio.pcapio import read_batches

    return sum(len(b) for p in paths for b in read_batches(str(p)))


def _wait(p: subprocess.Popen) -> float:
    """Wait for a process; its CPU seconds (user + system), children it waited for included."""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_tcpdump(pcap: Path, work: Path, workers: int = 1) -> tuple[int, str, str, float]:
    out = work / "tcpdump.pcap"
    p = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", RX, "-B", "65536", "-s", "262144", "-n",
                          "-w", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    rate = replay(pcap)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    cpu = _wait(p)
    m = re.search(r"(\d+) packets dropped by kernel", err)
    kept = count_packets([out])
    out.unlink()
    return kept, m.group(1) if m else "?", rate, cpu


def count_encrypted(paths: list[Path], identity) -> int:
    import pyrage

    total = 0
    for p in paths:
        plain = p.with_name(p.name[: -len(".age")])
        with open(p, "rb") as src, open(plain, "wb") as dst:
            pyrage.decrypt_io(src, dst, [identity])
        total += count_packets([plain])
        plain.unlink()
    return total


# the recorder without its packet index (``--index``): FileIndexes collecting nothing, so no file
# gets an index; otherwise the very ``python -m recorder.cli``
NO_INDEX = ("import sys; import recorder.core.flow.packetindex as P; P.FileIndexes.add = lambda self, *a: None; "
            "from recorder.cli import main; sys.argv[0] = 'recorder'; main()")


NOTES: list[str] = []  # lines a run adds below its round's line


def run_recorder(pcap: Path, work: Path, workers: int = 1, parsers: bool = True,
                 identity=None, rules: Path | None = None, sent: int = 0,
                 warm: bool = False, index: bool = True) -> tuple[int, str, str, float]:
    out, db = work / "rec", work / "rec.db"
    sock_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    log = open(work / "recorder.log", "w")  # noqa: SIM115
    start = ("-m", "recorder.cli") if index else ("-c", NO_INDEX)
    p = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, *start, "run", "--interface", RX,
                          "--output-dir", str(out), "--db", str(db), "--buffer-size", "64M", "--rotate-size", "1G",
                          "--stats-interval", "0", "--workers", str(workers),
                          *(() if parsers else ("--no-parsers",)),
                          *(("--encrypt-to", str(identity.to_public())) if identity is not None else ()),
                          *(live_rules.recorder_args(rules) if rules is not None else ())],
                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    notify.settimeout(300)  # ET Open: the rules load before READY
    while b"READY=1" not in notify.recv(4096):
        pass
    if rules is not None and warm:
        print(f"  warm-up: {live_rules.WARM_PACKETS} packets, recorder idle after "
              f"{live_rules.warm_up(NS, TX, pcap, p.pid):.0f} s", flush=True)
    rate = replay(pcap)
    replayed = time.monotonic()
    time.sleep(1.0)
    if rules is not None:
        live_rules.wait_caught_up(db, work / "recorder.log", replayed, p,
                                  sent + (live_rules.WARM_PACKETS if warm else 0))
    p.send_signal(signal.SIGTERM)
    cpu = _wait(p)
    log.close()
    notify.close()
    sock_path.unlink()
    text = (work / "recorder.log").read_text()
    drops = sum(int(x) for x in re.findall(r"stopped \S+: \d+ packets, (\d+) kernel drops", text))
    unparsed = sum(int(x) for x in re.findall(r"(\d+) packets not parsed", text))
    spent = re.findall(r"packet index \S+: ([\d.]+) s of CPU, ([\d.]+)% of this meter process's ([\d.]+) s", text)
    if spent:  # the recorder's own account of its index work (indexing.log_cost), per meter process
        index_s, process_s = sum(float(x[0]) for x in spent), sum(float(x[2]) for x in spent)
        NOTES.append(f"  packet index: {index_s:.2f} s of CPU, {100 * index_s / process_s:.1f}% of the meter "
                     f"process's {process_s:.2f} s, {100 * index_s / cpu:.1f}% of the recorder's {cpu:.2f} s")
    kept = (count_encrypted(sorted(out.glob("*.pcap.age")), identity) if identity is not None
            else count_packets(sorted(out.glob("*.pcap"))))
    if rules is not None:
        live_rules.report(db, sorted(out.glob("*.pcap")), rules, text, work)
        kept -= live_rules.WARM_PACKETS if warm else 0  # the timed replay's
    shutil.rmtree(out)
    db.unlink()
    return kept, f"{drops} (not parsed {unparsed})" if parsers else str(drops), rate, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pcap", type=Path, help="a --loopback capture to replay (default: generated)")
    ap.add_argument("--encryption", action="store_true", help="the recorder with and without --encrypt-to")
    ap.add_argument("--warm-up", action="store_true", help=f"with --rules: replay the first "
                    f"{live_rules.WARM_PACKETS} packets and wait for the recorder to be idle first "
                    "(its rules are then loaded; they are not counted as kept)")
    ap.add_argument("--rules", type=Path, metavar="PATH", help="rules the recorder matches live (ET Open: "
                    "../shared/reference/et-open); reports live/catch-up shares and the alerts against a replay")
    ap.add_argument("--index", action="store_true", help="the recorder (--no-parsers) without the packet index, "
                    "with it, and with it and --encrypt-to")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_recorder.py: needs root (network namespace, capture)", file=sys.stderr)
        return 2
    try:  # the recorder runs with this interpreter
        import recorder.daemon  # noqa: F401
    except ImportError as err:
        print(f"bench_recorder.py: {sys.executable} cannot run the recorder ({err}); "
              "use the project's virtualenv: sudo .venv/bin/python bench/bench_recorder.py", file=sys.stderr)
        return 2
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"bench_recorder.py: {tool} is not installed", file=sys.stderr)
            return 2
    if a.rules is not None and not a.rules.exists():
        print(f"bench_recorder.py: {a.rules}: no such rule file or folder", file=sys.stderr)
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
    if a.rules is not None:  # traffic the rules flag, spread over the capture: alerts to compare
        attacks = live_rules.with_attacks(pcap, work / "with-attacks.pcap")
        pcap = work / "with-attacks.pcap"
        print(f"added {attacks:,} packets of {attacks // 8:,} HTTP requests ET Open flags", flush=True)
    sent = count_packets([pcap])
    netns_up()
    runs = (("tcpdump -B 65536", run_tcpdump, 1), ("recorder, 1 worker", run_recorder, 1),
            ("recorder, 2 workers", run_recorder, 2),
            ("recorder, --no-parsers", lambda p, w, n: run_recorder(p, w, n, parsers=False), 1))
    if a.encryption:
        import pyrage

        ident = pyrage.x25519.Identity.generate()
        runs = (("recorder", run_recorder, 1),
                ("recorder, encrypt_to", lambda p, w, n: run_recorder(p, w, n, identity=ident), 1),
                ("recorder, --no-parsers", lambda p, w, n: run_recorder(p, w, n, parsers=False), 1),
                ("no-parsers, encrypt_to", lambda p, w, n: run_recorder(p, w, n, parsers=False, identity=ident), 1))
    if a.rules is not None:
        rules = a.rules.resolve()
        runs = (("tcpdump -B 65536", run_tcpdump, 1),
                ("recorder, rules live", lambda p, w, n: run_recorder(p, w, n, rules=rules, sent=sent,
                                                                      warm=a.warm_up), 1))
    if a.index:
        import pyrage

        ident = pyrage.x25519.Identity.generate()
        runs = (("no-parsers, no index", lambda p, w, n: run_recorder(p, w, n, parsers=False, index=False), 1),
                ("no-parsers, index", lambda p, w, n: run_recorder(p, w, n, parsers=False), 1),
                ("no-parsers, index, age", lambda p, w, n: run_recorder(p, w, n, parsers=False, identity=ident), 1))
    results: dict[str, list[int]] = {name: [] for name, _, _ in runs}
    try:
        for i in range(a.rounds):
            for name, fn, workers in runs:
                kept, drops, rate, cpu = fn(pcap, work, workers)
                results[name].append(kept)
                print(f"round {i + 1} {name:22s} sent {sent:>9,} kept {kept:>9,} ({100 * kept / sent:6.2f}%) "
                      f"kernel drops {drops:>8} replay {rate} pps, CPU {cpu:.2f} s "
                      f"({1e6 * cpu / max(kept, 1):.2f} us/packet kept)", flush=True)
                while NOTES:
                    print(NOTES.pop(0), flush=True)
    finally:
        sh("ip", "netns", "del", NS, check=False)
        shutil.rmtree(work, ignore_errors=True)
    for name, kept in results.items():
        print(f"median {name:22s} kept {statistics.median(kept):>11,.0f} of {sent:,} "
              f"({100 * statistics.median(kept) / sent:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
