"""The recorder for real: tcpreplay over a veth pair in a namespace, the daemon capturing on it."""

from __future__ import annotations

import collections
import json
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

from click.testing import CliRunner

from analysis.cli import main as wiretrail
from recorder.core.capio.pcapwrite import scan_pcap
from tests.recorder.live import flows, packets, sealed
from tests.recorder.traffic import write_loopback_capture


def capture_rows(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM captures ORDER BY id")]


def cli(*args: str):
    return CliRunner().invoke(wiretrail, list(args))


def test_every_packet_sealed_and_flows_equal_an_ingest(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0").ready()
    netns.replay(loop_pcap, pps=10000)
    rec.wait_for("WATCHDOG=1")
    assert rec.stop() == 0, rec.text()

    files = sealed(rec.out)
    assert not list(rec.out.glob("*.part")), "a file was left unsealed"
    assert len(files) >= 5, files  # ~9 MB of packets in files of at most 1 MiB
    sent, kept = packets([loop_pcap]), packets(files)
    assert sum(sent.values()) == 20_000
    assert sent - kept == collections.Counter(), f"{sum((sent - kept).values())} sent packets missing"
    for f in files:  # the size limit holds to within one record
        assert f.stat().st_size <= (1 << 20) + 16 + 1514

    # the flows the daemon metered live are the flows an ingest of its sealed files gives
    again = tmp_path / "ingest.db"
    r = cli("ingest", "--db", str(again), *map(str, files))
    assert r.exit_code == 0, r.output
    live = flows(rec.db)
    assert len(live) > 1000 and live == flows(again)

    rows = capture_rows(rec.db)
    assert [Path(r["path"]) for r in rows] == files
    assert all(r["sealed_at"] and r["sha256"] and r["kernel_drops"] == 0 for r in rows)
    assert sum(r["packets"] for r in rows) == sum(kept.values())
    assert rows[0]["prev_chain"] == "0" * 64
    assert all(b["prev_chain"] == a["chain"] for a, b in zip(rows, rows[1:]))
    r = cli("verify", "--db", str(rec.db))
    assert r.exit_code == 0 and "verified" in r.output, r.output

    text = rec.text()
    assert "stats rx" in text.replace(netns.rx, "rx") and "kernel drops 0" in text


def test_verify_shows_an_altered_file_and_a_removed_record(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    rec = Recorder(netns, tmp_path, "--rotate-size", "1M").ready()
    netns.replay(loop_pcap, pps=20000)
    assert rec.stop() == 0, rec.text()
    files = sealed(rec.out)
    with open(files[1], "r+b") as f:  # one byte of a packet changed
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 1]))
    r = cli("verify", "--db", str(rec.db))
    assert r.exit_code == 1
    assert f"{files[1]}: SHA-256" in r.output and "NOT verified: 1 problem" in r.output
    with sqlite3.connect(rec.db) as conn:  # a record deleted to hide a file
        conn.execute("DELETE FROM captures WHERE path = ?", (str(files[2]),))
    r = cli("verify", "--db", str(rec.db), "--no-files")
    assert r.exit_code == 1 and f"{files[3]}: chain broken before this file" in r.output


def test_rotation_by_interval_and_retention_by_bytes(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "1s",
                   "--retain-bytes", "3M").ready()
    netns.replay(loop_pcap, pps=5000)  # 4 s of traffic
    # the capture ends with connections still open: after the next rotation they show as
    # interim records (wiretrail flows --open), with the uids they will end with
    import time

    time.sleep(2.5)
    r = cli("flows", "--db", str(rec.db), "--open", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    interim = {json.loads(line)["uid"] for line in r.stdout.splitlines()}
    assert len(interim) > 10
    assert rec.stop() == 0, rec.text()
    r = cli("flows", "--db", str(rec.db), "--open", "--format", "jsonl")
    assert r.stdout == ""  # stopped: every connection is a final flow now
    final = {row[0] for row in flows(rec.db)}
    assert interim <= final
    rows = capture_rows(rec.db)
    deleted = [r for r in rows if r["deleted_at"] is not None]
    kept = [r for r in rows if r["deleted_at"] is None]
    assert deleted, "retention deleted nothing"
    assert all("retain_bytes" in r["deleted_reason"] for r in deleted)
    assert sorted(Path(r["path"]) for r in kept) == sealed(rec.out)
    assert sum(p.stat().st_size for p in sealed(rec.out)) <= 3 << 20
    # the oldest went first: every deleted file was sealed before every kept one
    assert max(r["sealed_at"] for r in deleted) <= min(r["sealed_at"] for r in kept)
    # 1 s interval rotation: no file's packets span more than one aligned second (+ the loop's
    # 100 ms read timeout and batching)
    for r in rows:
        assert r["last_ts_ns"] - r["first_ts_ns"] < 2.0e9, r
    assert len(rows) >= 4
    r = cli("verify", "--db", str(rec.db))
    assert r.exit_code == 0 and f"{len(deleted)} deleted by retention" in r.output, r.output


def test_sigkill_then_restart_repairs_and_resumes(netns, tmp_path):
    from tests.recorder.live import Recorder

    slow = tmp_path / "slow.pcap"
    write_loopback_capture(slow, 6000, seed=11)
    rec = Recorder(netns, tmp_path, "--rotate-size", "100M", "--rotate-interval", "0").ready()
    replay = subprocess.Popen(["ip", "netns", "exec", netns.name, "tcpreplay", "-q", "--pps", "2000",
                               "-i", netns.tx, str(slow)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec.wait_for("WATCHDOG=1")
    import time

    time.sleep(1.5)
    assert rec.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 15  # its flow-writer process notices and ends too
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-s", str(rec.proc.pid)],
                                                         capture_output=True).returncode == 0:
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-s", str(rec.proc.pid)], capture_output=True).returncode == 1, \
        "a process of the killed recorder is still running"
    replay.wait(timeout=60)
    parts = list(rec.out.glob("*.pcap.part"))
    assert len(parts) == 1, "the killed recorder should leave its open file unsealed"
    with open(parts[0], "ab") as f:  # a record cut short, as a crash mid-write leaves it
        f.write(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09")
    scan = scan_pcap(parts[0])
    assert scan.good_size < scan.size and scan.packets > 0

    rec2 = Recorder(netns, tmp_path, "--rotate-size", "100M", "--rotate-interval", "0").ready()
    assert "left unsealed by an unclean stop; repaired" in rec2.text()
    netns.replay(slow, pps=20000)
    assert rec2.stop() == 0, rec2.text()

    assert not list(rec.out.glob("*.part"))
    rows = capture_rows(rec.db)
    assert len(rows) == 2 and rows[0]["repaired"] == 1 and rows[1]["repaired"] == 0
    assert rows[0]["packets"] == scan.packets and rows[0]["bytes"] == scan.good_size
    assert rows[1]["packets"] >= 6000  # capture resumed after the restart
    assert rows[1]["prev_chain"] == rows[0]["chain"]
    r = cli("verify", "--db", str(rec.db))
    assert r.exit_code == 0, r.output
    # the database is consistent: every flow names a capture file that exists in it
    with sqlite3.connect(rec.db) as conn:
        orphans = conn.execute("SELECT count(*) FROM flows WHERE capture_id NOT IN (SELECT id FROM captures)").fetchone()
        assert orphans == (0,)
    # the repaired file got its packet index at the restart: the one an ingest of it builds
    from tests.recorder.live import index_rows

    repaired = rows[0]["path"]
    assert "indexed after the repair" in rec2.text()
    again = tmp_path / "again.db"
    r = cli("ingest", "--no-parsers", "--db", str(again), repaired)
    assert r.exit_code == 0, r.output
    mine = [x for x in index_rows(rec.db) if x[0] == repaired]
    assert mine and sum(x[4] for x in mine) == scan.packets and mine == index_rows(again)


def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    return path


def test_full_disk_retention_deletes_the_oldest(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    # 31 MB of packets into 16 MB: retention deletes the oldest sealed files to go on. The disk
    # must hold more than one read batch (up to 16384 packets, about 8.6 MB of these when the
    # machine is busy and packets wait in the ring): a batch larger than all that retention can
    # free pauses the capture, rightly (it was 3 MB here once, and failed under load)
    out = _tmpfs(tmp_path / "small", "16m")
    try:
        rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--min-free-percent", "0", out=out).ready()
        for _ in range(3):
            netns.replay(loop_pcap, pps=20000)
        assert rec.stop() == 0, rec.text()
        rows = capture_rows(rec.db)
        deleted = [r for r in rows if r["deleted_at"] is not None]
        assert len(deleted) >= 4 and all(r["sealed_at"] for r in rows)
        assert "capture paused" not in rec.text() and ", 0 paused drops" in rec.text()
        newest = packets(sealed(out))  # what is kept is the newest traffic, every packet of it
        assert sum(newest.values()) == sum(r["packets"] for r in rows if r["deleted_at"] is None)
        r = cli("verify", "--db", str(rec.db))
        assert r.exit_code == 0, r.output
    finally:
        subprocess.run(["umount", str(out)], capture_output=True)


def test_full_disk_with_nothing_to_delete_pauses_then_resumes(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    out = _tmpfs(tmp_path / "small", "2m")
    try:
        filler = out / "filler.bin"  # not a capture: retention may not delete it
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--min-free-percent", "0", out=out).ready()
        netns.replay(loop_pcap, pps=20000)
        rec.wait_for("WATCHDOG=1")
        text = rec.text()
        assert "no space left and no sealed capture left to delete; capture paused" in text, text
        assert text.count("capture paused") == 1  # one line, not one per packet
        assert rec.proc.poll() is None  # still running
        filler.unlink()
        netns.replay(loop_pcap, pps=20000)
        assert rec.stop() == 0, rec.text()
        text = rec.text()
        assert "space available again; capture resumed" in text
        paused = re.search(r"stopped .*, (\d+) paused drops", text)
        assert paused and int(paused.group(1)) > 0, text  # what could not be written is counted
        rows = capture_rows(rec.db)
        assert rows and all(r["sealed_at"] for r in rows)
        r = cli("verify", "--db", str(rec.db))
        assert r.exit_code == 0, r.output
    finally:
        subprocess.run(["umount", str(out)], capture_output=True)


def test_workers_share_a_fanout_group(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    rec = Recorder(netns, tmp_path, "--workers", "2", "--rotate-size", "100M").ready()
    netns.replay(loop_pcap, pps=10000)
    assert rec.stop() == 0, rec.text()
    files = sealed(rec.out)
    assert {f.name.split("-")[2] for f in files} == {"w0", "w1"}, files
    sent, kept = packets([loop_pcap]), packets(files)
    assert sent - kept == collections.Counter()
    again = tmp_path / "ingest.db"
    assert cli("ingest", "--db", str(again), *map(str, files)).exit_code == 0
    # each flow stayed on one worker: the same flows as one stream gives
    one = tmp_path / "one.db"
    assert cli("ingest", "--db", str(one), str(loop_pcap)).exit_code == 0
    key = "SELECT proto, orig_p, resp_p, orig_pkts, resp_pkts, orig_bytes, resp_bytes FROM flows ORDER BY 1,2,3,4"
    with sqlite3.connect(rec.db) as a, sqlite3.connect(one) as b:
        assert a.execute(key).fetchall() == b.execute(key).fetchall()


def test_runs_as_an_unprivileged_user_with_only_the_capture_capabilities(netns, loop_pcap):
    """What the systemd unit grants: a user of its own, CAP_NET_RAW and CAP_NET_ADMIN ambient."""
    import os
    import shutil
    import sys
    import tempfile

    import pytest

    from tests.recorder.live import Recorder

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    wrap = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all,+net_raw,+net_admin", "--ambient-caps=-all,+net_raw,+net_admin",
            "--bounding-set=-all,+net_raw,+net_admin", "--no-new-privs")
    probe = subprocess.run([*wrap, sys.executable, "-c", "import recorder.daemon"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this checkout is not readable by an unprivileged user: {probe.stderr.strip().splitlines()[-1]}")
    state = Path(tempfile.mkdtemp(prefix="wiretrail-state-"))
    try:
        state.chmod(0o755)
        os.chown(state, 65534, 65534)  # nobody
        rec = Recorder(netns, state, "--rotate-size", "1M", wrap=wrap)
        rec.sock_path.chmod(0o777)  # reachable by the service, as systemd's notify socket is
        rec.ready()
        netns.replay(loop_pcap, pps=20000)
        assert rec.stop() == 0, rec.text()
        files = sealed(rec.out)
        assert files and all(f.stat().st_uid == 65534 for f in files)
        assert packets([loop_pcap]) - packets(files) == collections.Counter()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _records(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


APP_QUERIES = {
    "dns": "SELECT uid, query, qtype_name, rcode_name, answers FROM dns",
    "http": "SELECT uid, method, host, uri, status_code, response_body_len, resp_mime_types FROM http",
    "files": "SELECT uid, source, mime_type, seen_bytes, sha256 FROM files",
    "services": "SELECT uid, service FROM flows WHERE service IS NOT NULL",
    "macs": "SELECT addr, mac, ts_ns FROM macs",
}


def test_protocol_records_written_live_equal_an_ingest(netns, tmp_path):
    """The parsers run beside capture: the dns, http and files records, the flows' services and the MACs
    the daemon stored are those an ingest of its sealed files gives; --no-parsers stores none."""
    from tests.recorder.live import Recorder
    from tests.recorder.traffic import write_protocol_capture

    cap = tmp_path / "protocols.pcap"
    sent = write_protocol_capture(cap, 100)
    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0").ready()
    netns.replay(cap, pps=2000)
    rec.wait_for("WATCHDOG=1")
    assert rec.stop() == 0, rec.text()
    assert "0 packets not parsed" in rec.text(), rec.text()[-2000:]
    assert sum(packets(sealed(rec.out)).values()) == sent

    again = tmp_path / "ingest.db"
    r = cli("ingest", "--db", str(again), *map(str, sealed(rec.out)))
    assert r.exit_code == 0, r.output
    for name, sql in APP_QUERIES.items():
        live, ingested = _records(rec.db, sql), _records(again, sql)
        assert live == ingested, name
    assert len(_records(rec.db, APP_QUERIES["dns"])) == 100
    assert len(_records(rec.db, APP_QUERIES["http"])) == 100
    assert {s for _, s in _records(rec.db, APP_QUERIES["services"])} == {"dns", "http"}
    assert len(_records(rec.db, APP_QUERIES["services"])) == 200
    assert _records(rec.db, APP_QUERIES["macs"]) != []  # the local hosts' hardware addresses

    flows_only = Recorder(netns, tmp_path, "--no-parsers", out=tmp_path / "out2", db=tmp_path / "flows.db").ready()
    netns.replay(cap, pps=5000)
    flows_only.wait_for("WATCHDOG=1")
    assert flows_only.stop() == 0, flows_only.text()
    assert len(flows(tmp_path / "flows.db")) == 200
    assert _records(tmp_path / "flows.db", APP_QUERIES["dns"]) == []
    assert _records(tmp_path / "flows.db", APP_QUERIES["services"]) == []
    assert _records(tmp_path / "flows.db", APP_QUERIES["macs"]) == []
