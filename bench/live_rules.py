"""The recorder bench with rules live (``bench_recorder.py --rules PATH``): the recorder's extra
arguments, the wait for its catch-up, and the report against ``wiretrail replay`` of the sealed
files (the same rules, ``--skip-invalid``, the same default variables)."""

from __future__ import annotations

import os
import re
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

ROTATE_SECONDS = 5
CATCH_UP_TIMEOUT = 1800.0
KEY = "ts_ns, signature_id, src_ip, src_port, dest_ip, dest_port, uid"
CAPTURED = re.compile(r"INFO stats \S+: packets (\d+), kernel drops (\d+)")
STATS = re.compile(r"signatures: packets inspected live (\d+), by catch-up (\d+) \((\d+) files, the last "
                   r"([\d.]+) s after its last packet\)")


def recorder_args(rules: Path) -> tuple[str, ...]:
    return ("--rules", str(rules), "--skip-invalid", *ATTACK_VARS, "--detect-interval", "1s",
            "--stats-interval", "1s", "--rotate-interval", f"{ROTATE_SECONDS}s")


def captures(db: Path) -> list[tuple[int, int | None, int | None]]:
    """(packets, inspected_live, sealed_at) of the recorder's files, in order."""
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT packets, inspected_live, sealed_at FROM captures "
                                "WHERE origin = 'recorder' AND packets > 0 ORDER BY id").fetchall()
    except sqlite3.Error:
        return []


def short(rows) -> list[tuple]:
    """The sealed files the live engine did not inspect in full, and the file after each (the live
    engine met its connections midway): the catch-up's work (``analysis.live.SealedSignatures``)."""
    missed = [r[1] is None or r[1] < r[0] for r in rows]
    return [r for i, r in enumerate(rows) if r[2] is not None and (missed[i] or (i > 0 and missed[i - 1]))]


def wait_caught_up(db: Path, log: Path, replayed: float, proc: subprocess.Popen, sent: int) -> None:
    """Until the recorder has taken or lost every packet sent (its stats line's packets plus kernel
    drops: under load it may still be draining its ring), every file is sealed, and the stats line
    counts as many files caught up as were short."""
    time.sleep(ROTATE_SECONDS + 1)
    drained, last_total, last_change = None, -1, time.monotonic()
    while time.monotonic() - replayed < CATCH_UP_TIMEOUT and proc.poll() is None:
        text = log.read_text()
        seen = CAPTURED.findall(text)
        total = int(seen[-1][0]) + int(seen[-1][1]) if seen else 0
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        if drained is None and seen and (total >= sent or time.monotonic() - last_change > 30):
            drained = time.monotonic()
            print(f"  capture drained its ring {drained - replayed:.0f} s after the replay ended", flush=True)
        rows = captures(db)
        stats = STATS.findall(text)
        done = int(stats[-1][2]) if stats else 0
        if (drained is not None and time.monotonic() - drained > ROTATE_SECONDS + 1 and rows
                and all(r[2] is not None for r in rows) and done >= len(short(rows))):
            print(f"  all caught up {time.monotonic() - replayed:.0f} s after the replay ended "
                  f"({done} files)", flush=True)
            return
        time.sleep(1.0)
    print(f"  catch-up NOT finished {time.monotonic() - replayed:.0f} s after the replay ended", flush=True)


def signature_alerts(db: Path) -> set[tuple]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(f"SELECT {KEY} FROM alerts WHERE kind = 'signature'"))


def report(db: Path, files: list[Path], rules: Path, log_text: str, work: Path) -> None:
    rows = captures(db)
    packets = sum(r[0] for r in rows)
    live = sum(min(r[1] or 0, r[0]) for r in rows)
    behind = short(rows)
    stats = STATS.findall(log_text)
    last = stats[-1] if stats else ("?", "?", "?", "?")
    delays = sorted({float(s[3]) for s in stats if int(s[2]) > 0})
    print(f"  files {len(rows)}, packets {packets:,}: inspected live {live:,} ({100 * live / max(packets, 1):.1f}%; "
          f"{len(behind)} files for the catch-up: short of it, or after one that is); caught up (stats line): {last[1]} packets in {last[2]} "
          f"files (a file counts whole; it is caught up when its live count is short 10 s after it was sealed, "
          f"or missing a minute after); catch-up delays (a file's last packet to its alerts stored) "
          f"{', '.join(f'{d:.1f}' for d in delays) or '-'} s", flush=True)
    replay_db = work / "replay.db"
    wiretrail = Path(sys.executable).with_name("wiretrail")
    t0 = time.monotonic()
    r = subprocess.run([str(wiretrail), "replay", "--rules", str(rules), "--skip-invalid", *ATTACK_VARS,
                        "--db", str(replay_db),
                        *map(str, files)], capture_output=True, text=True)
    if r.returncode not in (0, 1):
        print(f"  replay failed ({r.returncode}): {r.stderr.strip()[-300:]}", flush=True)
        return
    got, expected = signature_alerts(db), signature_alerts(replay_db)
    replay_db.unlink()
    verdict = "EQUAL" if got == expected else (f"DIFFER: {len(got - expected)} only live, "
                                                f"{len(expected - got)} only in the replay")
    print(f"  signature alerts after catch-up {len(got):,}, replay of the sealed files {len(expected):,} "
          f"({time.monotonic() - t0:.0f} s): {verdict}", flush=True)
    for row in sorted(got ^ expected)[:5]:
        print(f"    {'live  ' if row in got else 'replay'} {row}", flush=True)


ATTACK_VARS = ("--var", "HOME_NET=[127.10.0.0/16]")  # the attacked servers below; the rest is outside
REQUESTS = (("GET /cgi-bin/run?c=/bin/sh HTTP/1.1", "curl/8.5"), ("GET /site/.htpasswd HTTP/1.1", "curl/8.5"),
            ("GET /login HTTP/1.1", "Brutus/AET"))  # ET Open sids 2011465, 2101071, 2015703 among others


def span(pcap: Path) -> tuple[float, float]:
    """The first and last packet's time of a pcap file (record headers only)."""
    with open(pcap, "rb") as f:
        head = f.read(24)
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        frac = 1e-9 if head[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
        times = []
        while len(rec := f.read(16)) == 16:
            sec, sub, incl, _ = struct.unpack(order + "IIII", rec)
            times.append(sec + sub * frac)
            f.seek(incl, 1)
    return times[0], times[-1]


def with_attacks(pcap: Path, out: Path, sessions: int = 1000) -> int:
    """``pcap`` with ``sessions`` HTTP requests that ET Open flags (from 127.66/16 to 127.10/16,
    one connection each) spread evenly over its time span (``mergecap``); returns their packets."""
    from scapy.all import IP, TCP, Ether, Raw, wrpcap

    first, last = span(pcap)
    pkts = []
    for i in range(sessions):
        t = first + (last - first) * (i + 0.5) / sessions
        cli, srv = f"127.66.{i // 250}.{i % 250 + 1}", f"127.10.0.{i % 20 + 1}"
        line, agent = REQUESTS[i % len(REQUESTS)]
        req = f"{line}\r\nHost: shop\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\r\n".encode()
        resp = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        sport, c, s = 30000 + i, 1000, 5000
        e, ip_c, ip_s = Ether(), IP(src=cli, dst=srv), IP(src=srv, dst=cli)
        seq = [(ip_c / TCP(sport=sport, dport=80, flags="S", seq=c)),
               (ip_s / TCP(sport=80, dport=sport, flags="SA", seq=s, ack=c + 1)),
               (ip_c / TCP(sport=sport, dport=80, flags="A", seq=c + 1, ack=s + 1)),
               (ip_c / TCP(sport=sport, dport=80, flags="PA", seq=c + 1, ack=s + 1) / Raw(req)),
               (ip_s / TCP(sport=80, dport=sport, flags="PA", seq=s + 1, ack=c + 1 + len(req)) / Raw(resp)),
               (ip_c / TCP(sport=sport, dport=80, flags="FA", seq=c + 1 + len(req), ack=s + 1 + len(resp))),
               (ip_s / TCP(sport=80, dport=sport, flags="FA", seq=s + 1 + len(resp), ack=c + 2 + len(req))),
               (ip_c / TCP(sport=sport, dport=80, flags="A", seq=c + 2 + len(req), ack=s + 2 + len(resp)))]
        for k, p in enumerate(seq):
            p = e / p
            p.time = t + k * 0.0005
            pkts.append(p)
    attacks = out.with_name("attacks.pcap")
    wrpcap(str(attacks), pkts)
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(out), str(pcap), str(attacks)], check=True)
    attacks.unlink()
    return len(pkts)


WARM_PACKETS = 200


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, from /proc."""
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in cpu:
        q = p
        while q and q != pid:
            q = parent.get(q, 0)
        if q == pid:
            total += cpu[p]
    return total


def warm_up(ns: str, tx: str, pcap: Path, pid: int) -> float:
    """The rules are loaded in the parsers' process at its first batch (and in the catch-up worker
    at start): replay the capture's first packets and wait until the recorder's processes are idle
    (under 0.2 CPU-seconds in 2 s, at most 180 s), so the timed replay meets a recorder ready for
    it. Returns the seconds it took."""
    t0 = time.monotonic()
    subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "--topspeed", f"--limit={WARM_PACKETS}", "-i", tx,
                    str(pcap)], check=True, capture_output=True)
    before = tree_cpu(pid)
    while time.monotonic() - t0 < 180:
        time.sleep(2.0)
        now = tree_cpu(pid)
        if now - before < 0.2:
            break
        before = now
    return time.monotonic() - t0
