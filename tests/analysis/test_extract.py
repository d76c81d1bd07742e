"""`wiretrail extract`: a flow's packets through the packet index equal the same flow filtered
out of the original capture by tcpdump, also when the flow spans rotated files; bad input is one
line and exit 1 with nothing left at --out."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from analysis.cli import main
from recorder.core.capio.pcapio import read_batches
from tests.helpers import REFERENCE, need

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
DEMO = CAPTURES / "demo.pcap"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def ingest(db: Path, *files: Path) -> None:
    r = run("ingest", "--no-parsers", "--db", str(db), *map(str, files))
    assert r.exit_code == 0, r.output


def flows(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select * from flows order by ts_ns")]
    finally:
        con.close()


def records(path: Path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as f:
        return [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]


def tcpdump(src: Path, out: Path, expr: str) -> list[tuple[float, bytes]]:
    subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), expr], check=True, capture_output=True)
    return records(out)


def flow_expr(f: dict) -> str:
    return f"{f['proto']} and host {f['orig_h']} and host {f['resp_h']} and port {f['orig_p']} and port {f['resp_p']}"


@pytest.fixture(scope="module")
def need_tcpdump():
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (Debian: apt-get install tcpdump)")


def split(src: Path, dirpath: Path, cuts: list[int]) -> list[Path]:
    """The capture cut into files at these packet numbers, records copied byte for byte."""
    data = src.read_bytes()
    offs = [int(o) for b in read_batches(src) for o in b.file_off] + [len(data)]
    bounds = [0, *cuts, len(offs) - 1]
    out = []
    for i in range(len(bounds) - 1):
        p = dirpath / f"part{i}.pcap"
        p.write_bytes(data[:24] + data[offs[bounds[i]]:offs[bounds[i + 1]]])
        out.append(p)
    return out


def test_every_tcp_udp_flow_equals_tcpdump(tmp_path, need_tcpdump):
    db = tmp_path / "w.db"
    ingest(db, DEMO)
    checked = 0
    for f in flows(db):
        if f["proto"] not in ("tcp", "udp"):
            continue
        out = tmp_path / f"{f['uid']}.pcap"
        r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
        assert r.exit_code == 0, r.output
        want = tcpdump(DEMO, tmp_path / "ref.pcap", flow_expr(f))
        assert records(out) == want, f["uid"]
        assert out.read_bytes() == (tmp_path / "ref.pcap").read_bytes()  # the file too, header and all
        assert os.stat(out).st_mode & 0o777 == 0o600
        checked += 1
    assert checked >= 10


def test_flow_spanning_rotated_files(tmp_path, need_tcpdump):
    offs = [int(o) for b in read_batches(DEMO) for o in b.file_off]
    n = len(offs)
    parts = split(DEMO, tmp_path, [n // 4, n // 2, 3 * n // 4])
    db = tmp_path / "w.db"
    ingest(db, *parts)
    # a flow whose packets are in more than one file: found by comparing with the originals' split
    multi = []
    for f in flows(db):
        if f["proto"] not in ("tcp", "udp"):
            continue
        want = tcpdump(DEMO, tmp_path / "ref.pcap", flow_expr(f))
        out = tmp_path / "x.pcap"
        r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
        assert r.exit_code == 0, r.output
        assert records(out) == want, f["uid"]
        if "from 1 file" not in r.stderr:
            multi.append(f["uid"])
    assert multi, "no flow spans the cut files: choose other cuts"


def test_pcapng_comments_and_bpf(tmp_path, need_tcpdump):
    db = tmp_path / "w.db"
    ingest(db, DEMO)
    f = next(f for f in flows(db) if f["proto"] == "tcp" and f["orig_pkts"] > 2)
    out = tmp_path / "x.pcapng"
    r = run("extract", "--db", str(db), "--uid", f["uid"], "--pcapng", "--out", str(out))
    assert r.exit_code == 0, r.output
    with open(out, "rb") as fh:
        got = [bytes(buf) for _, buf in dpkt.pcapng.Reader(fh)]
    want = tcpdump(DEMO, tmp_path / "ref.pcap", flow_expr(f))
    assert got == [b for _, b in want]
    if shutil.which("tshark"):
        comments = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.comment"],
                                  capture_output=True, text=True, check=True).stdout.split()
        assert comments == [f["uid"]] * len(want) or set(comments) <= {"uid", f["uid"]}
    # --bpf narrows with libpcap's compiler: only the originator's packets
    out = tmp_path / "y.pcap"
    r = run("extract", "--db", str(db), "--uid", f["uid"], "--bpf", f"src host {f['orig_h']} and tcp",
            "--out", str(out))
    assert r.exit_code == 0, r.output
    assert records(out) == tcpdump(DEMO, tmp_path / "ref.pcap", f"{flow_expr(f)} and src host {f['orig_h']}")


def test_host_and_time_selection(tmp_path, need_tcpdump):
    db = tmp_path / "w.db"
    ingest(db, DEMO)
    f = flows(db)[0]
    out = tmp_path / "h.pcap"
    r = run("extract", "--db", str(db), "--host", f["orig_h"], "--out", str(out))
    assert r.exit_code == 0, r.output
    want = tcpdump(DEMO, tmp_path / "ref.pcap", f"ip and host {f['orig_h']}")
    assert records(out) == want
    # a time range in the middle: the packets in it, of flows that began before it too
    t0, t1 = want[len(want) // 3][0], want[2 * len(want) // 3][0]
    r = run("extract", "--db", str(db), "--host", f["orig_h"], "--since", str(t0), "--until", str(t1),
            "--out", str(out))
    assert r.exit_code == 0, r.output
    assert records(out) == [(ts, b) for ts, b in want if t0 <= ts < t1]


def _tunnel_counts(tmp_path: Path, capture: Path) -> int:
    db = tmp_path / "w.db"
    ingest(db, capture)
    n = 0
    originals = {buf for _, buf in records(capture)}
    for f in flows(db):
        out = tmp_path / "t.pcap"
        r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
        assert r.exit_code == 0, r.output
        got = records(out)
        assert {b for _, b in got} <= originals
        # Zeek's counts, where a reassembled datagram is one packet; here its fragments are all there
        frags = sum(_is_fragment(b) for _, b in got)
        assert len(got) - frags + _datagrams(got) == f["orig_pkts"] + f["resp_pkts"], (f["uid"], f["proto"])
        n += 1
    return n


def _ip(buf: bytes):
    eth = dpkt.ethernet.Ethernet(buf)
    return eth.data if isinstance(eth.data, dpkt.ip.IP) else None


def _is_fragment(buf: bytes) -> bool:
    ip = _ip(buf)
    return ip is not None and bool(ip.mf or ip.offset)


def _datagrams(got) -> int:
    return len({(_ip(b).src, _ip(b).id) for _, b in got if _is_fragment(b)})


def test_fragments_all_in_the_flow(tmp_path, need_tcpdump):
    """A fragmented UDP datagram: every fragment is in the flow's packets, as tcpdump's
    host filter (a port filter would only see the first fragment) gives them."""
    db = tmp_path / "w.db"
    cap = CAPTURES / "encap.pcap"
    ingest(db, cap)
    [f] = [f for f in flows(db) if f["orig_h"] == "10.20.9.1"]
    out = tmp_path / "f.pcap"
    r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
    assert r.exit_code == 0, r.output
    want = tcpdump(cap, tmp_path / "ref.pcap", "host 10.20.9.1 and host 10.20.9.2")
    assert sum(_is_fragment(b) for _, b in want) == 3
    assert records(out) == want


def test_tunnels_give_the_flow_packets(tmp_path):
    assert _tunnel_counts(tmp_path, CAPTURES / "encap.pcap") >= 3


@pytest.mark.parametrize("name", ["tunnels__Teredo", "tunnels__geneve-47101", "tunnels__ayiya3"])
def test_zeek_tunnel_traces(tmp_path, name):
    pcap = need(REFERENCE / "zeek" / f"{name}.pcap", "Zeek's test traces")
    assert _tunnel_counts(tmp_path, pcap) >= 1


def test_bad_input_is_one_line_and_nothing_at_out(tmp_path):
    cap = tmp_path / "c.pcap"
    cap.write_bytes(DEMO.read_bytes())
    db = tmp_path / "w.db"
    ingest(db, cap)
    uid = next(f["uid"] for f in flows(db) if f["proto"] == "tcp")
    out = tmp_path / "o.pcap"

    def refused(*args: str, says: str) -> None:
        r = run("extract", "--db", str(db), *args, "--out", str(out))
        assert r.exit_code == 1, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], r.stderr
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.pcap")]

    refused("--uid", "Cnotthere", says="no flow with uid Cnotthere")
    refused("--uid", uid, "--since", "2030-01-01", "--until", "2020-01-01", says="empty time range")
    refused("--host", "10.0.0.0/8", "--since", "2030-01-01", says="no flow matches")
    data = bytearray(cap.read_bytes())
    data[100:101] = b"\x00\x00"  # one byte more: the file changed
    cap.write_bytes(data)
    refused("--uid", uid, says="changed since it was indexed")
    cap.unlink()
    refused("--uid", uid, says="missing: capture 1 was read from this path")


def test_community_id_selects_the_same_packets(tmp_path):
    db = tmp_path / "w.db"
    ingest(db, DEMO)
    f = next(f for f in flows(db) if f["proto"] == "tcp" and f["community_id"])
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    assert run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(a)).exit_code == 0
    r = run("extract", "--db", str(db), "--community-id", f["community_id"], "--out", str(b))
    assert r.exit_code == 0, r.output
    assert a.read_bytes() == b.read_bytes() and len(records(a)) == f["orig_pkts"] + f["resp_pkts"]


def test_alert_and_incident(tmp_path):
    """The shipped breach replayed: an alert's flow by its flow_id, and an incident's flows."""
    import json

    db = tmp_path / "b.db"
    r = run("replay", str(CAPTURES / "demo-breach.pcap"), "--db", str(db), "--format", "jsonl")
    assert r.exit_code == 0, r.output
    alert = json.loads(run("alerts", "--db", str(db), "--format", "jsonl").stdout.splitlines()[0])
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    r = run("extract", "--db", str(db), "--alert", str(alert["flow_id"]), "--out", str(a))
    assert r.exit_code == 0, r.output
    assert run("extract", "--db", str(db), "--uid", alert["uid"], "--out", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes() and records(a)
    r = run("extract", "--db", str(db), "--alert", "1", "--out", str(tmp_path / "x.pcap"))
    assert r.exit_code == 1 and "no alert with flow_id 1" in r.stderr
    inc = json.loads(run("incidents", "--db", str(db), "--format", "jsonl").stdout.splitlines()[0])
    out = tmp_path / "i.pcap"
    r = run("extract", "--db", str(db), "--incident", inc["id"], "--out", str(out))
    assert r.exit_code == 0, r.output
    got = records(out)
    actors = set(inc["attackers"]) | {inc["patient_zero"]}  # every flow of it has one of them
    assert got
    for ts, buf in got:
        ip = _ip(buf)
        assert {dpkt.utils.inet_to_str(ip.src), dpkt.utils.inet_to_str(ip.dst)} & actors
        assert inc["first_ts"] - 3600 <= ts <= inc["last_ts"] + 3600


def as_pcapng(src: Path, dst: Path, endian: str) -> None:
    """``src`` (classic pcap, microseconds) rewritten as pcapng in this byte order: a section
    header, a block of an unknown type, an interface, and each packet as an Enhanced Packet Block
    with a comment option (so a block is longer than its packet)."""
    import struct

    def block(btype: int, body: bytes) -> bytes:
        n = 12 + len(body)
        return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    data = src.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian, microseconds
    linktype = struct.unpack_from("<I", data, 20)[0]
    out = [block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(0x0BAD, b"skip"),
           block(1, struct.pack(endian + "HHI", linktype, 0, 65535) + struct.pack(endian + "HH", 0, 0))]
    pos = 24
    while pos < len(data):
        sec, usec, caplen, wirelen = struct.unpack_from("<IIII", data, pos)
        pkt = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        ticks = sec * 1_000_000 + usec
        comment = b"packet %d" % pos
        opts = struct.pack(endian + "HH", 1, len(comment)) + pad(comment) + struct.pack(endian + "HH", 0, 0)
        out.append(block(6, struct.pack(endian + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, caplen, wirelen)
                         + pad(pkt) + opts))
    dst.write_bytes(b"".join(out))


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_input_is_indexed_and_every_flow_equals_tcpdump(tmp_path, need_tcpdump, endian):
    ng = tmp_path / "demo.pcapng"
    as_pcapng(DEMO, ng, endian)
    db = tmp_path / "w.db"
    ingest(db, ng)
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from packet_index").fetchone()[0] > 0
    con.close()
    checked = 0
    for f in flows(db):
        if f["proto"] not in ("tcp", "udp"):
            continue
        out = tmp_path / f"{f['uid']}.pcap"
        r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
        assert r.exit_code == 0, r.output
        tcpdump(ng, tmp_path / "ref.pcap", flow_expr(f))
        assert out.read_bytes() == (tmp_path / "ref.pcap").read_bytes(), f["uid"]  # header and records
        checked += 1
    assert checked >= 10


def test_pcapng_block_changed_since_indexed_is_refused(tmp_path):
    ng = tmp_path / "demo.pcapng"
    as_pcapng(DEMO, ng, "<")
    db = tmp_path / "w.db"
    ingest(db, ng)
    f = next(f for f in flows(db) if f["proto"] == "tcp")
    data = bytearray(ng.read_bytes())
    off = int(f["file_offset"])
    data[off:off + 4] = (3).to_bytes(4, "little")  # the flow's first packet block now claims to be a simple one
    ng.write_bytes(bytes(data))
    out = tmp_path / "x.pcap"
    r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
    assert r.exit_code == 1
    assert "simple packet block" in r.output and str(off) in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_gzip_input_is_not_indexed_and_extract_says_why(tmp_path):
    import gzip

    gz = tmp_path / "demo.pcap.gz"
    gz.write_bytes(gzip.compress(DEMO.read_bytes()))
    db = tmp_path / "w.db"
    ingest(db, gz)
    f = next(f for f in flows(db) if f["proto"] == "tcp")
    out = tmp_path / "x.pcap"
    r = run("extract", "--db", str(db), "--uid", f["uid"], "--out", str(out))
    assert r.exit_code == 1
    assert "compressed captures are not indexed" in r.output and "demo.pcap.gz" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_lean_sqlite_path_equals_the_store_path(tmp_path):
    """A SQLite file is read with sqlite3 (analysis.packets.lite) for every selection but by alert
    and incident; the Store (SQLAlchemy) gives the same packets for the same selections: by uid,
    Community ID, host and time, port, protocol, and a uid narrowed by protocol. The command's
    line for an unknown uid is the Store's."""
    from analysis.packets.extract import extract
    from analysis.packets.lite import open_lite
    from analysis.packets.selection import Selection
    from recorder.core.store import Store

    n = sum(len(b) for b in read_batches(DEMO))
    parts = split(DEMO, tmp_path, [n // 3, 2 * n // 3])
    db = tmp_path / "w.db"
    ingest(db, *parts)
    assert open_lite(str(DEMO)) is None and open_lite(str(tmp_path / "none.db")) is None
    fs = [f for f in flows(db) if f["proto"] in ("tcp", "udp")][:6]
    t0, t1 = min(f["ts_ns"] for f in fs), max(f["ts_ns"] for f in fs)
    sels = [Selection(uids=(f["uid"],)) for f in fs]
    sels += [Selection(uids=(fs[0]["uid"],), proto=fs[0]["proto"]), Selection(community_ids=(fs[1]["community_id"],)),
             Selection(host=fs[2]["orig_h"]), Selection(host=fs[2]["orig_h"], since=t0, until=t1 + 1),
             Selection(port=fs[3]["resp_p"], proto=fs[3]["proto"]), Selection(since=t0, until=(t0 + t1) // 2 + 1)]
    lite, store = open_lite(str(db)), Store(str(db))
    try:
        for k, sel in enumerate(sels):
            lean, full = tmp_path / f"lean{k}.pcap", tmp_path / f"full{k}.pcap"
            a, b = extract(lite, sel, str(lean)), extract(store, sel, str(full))
            assert (a.packets, a.flows, a.bytes_read, a.files) == (b.packets, b.flows, b.bytes_read, b.files), sel
            assert lean.read_bytes() == full.read_bytes(), sel
    finally:
        lite.close()
        store.close()
    r1 = run("extract", "--db", str(db), "--uid", "Cnosuchflow00", "--out", str(tmp_path / "c.pcap"))
    r2 = run("extract", "--db", str(db), "--alert", "999999", "--out", str(tmp_path / "c.pcap"))
    assert r1.exit_code == r2.exit_code == 1 and "no flow with uid" in r1.output and "no alert" in r2.output
    assert not (tmp_path / "c.pcap").exists()
    lite = open_lite(str(db))
    try:
        from recorder.core.errors import WiretrailError

        with pytest.raises(WiretrailError, match="no flow matches"):
            extract(lite, Selection(host="192.0.2.99"), str(tmp_path / "d.pcap"))
    finally:
        lite.close()
    assert not (tmp_path / "d.pcap").exists()


def test_the_library_call_without_the_cli(tmp_path, need_tcpdump):
    """``analysis.packets.extract.extract`` is what the command calls: a caller gets the same file
    and the counts, with the BPF filter applied before the count; an empty range fails at once."""
    from analysis.packets.extract import extract
    from analysis.packets.selection import Selection
    from recorder.core.errors import WiretrailError
    from recorder.core.store import Store

    db = tmp_path / "w.db"
    ingest(db, DEMO)
    f = next(f for f in flows(db) if f["proto"] == "tcp" and f["orig_pkts"] > 2)
    out = tmp_path / "lib.pcap"
    with Store(str(db)) as store:
        res = extract(store, Selection(uids=(f["uid"],)), str(out), bpf=f"src host {f['orig_h']}")
    want = tcpdump(DEMO, tmp_path / "ref.pcap", f"{flow_expr(f)} and src host {f['orig_h']}")
    assert records(out) == want
    assert (res.flows, res.packets) == (1, len(want)) and 0 < len(want) < f["orig_pkts"] + f["resp_pkts"]
    assert res.files == 1 and res.bytes_read > 24
    with pytest.raises(WiretrailError, match="empty time range"):
        Selection(uids=(f["uid"],), since=2, until=1)


def test_since_takes_a_flow_that_began_hours_before(tmp_path):
    """A session kept open for hours (a packet a minute, under the 5-minute inactivity timeout) is
    one flow; ``--since`` two hours into it takes its packets from then on, as does a host
    selection, and the query finds it through the long flows' partial index, not a scan."""
    from tests.helpers.packets import tcp_session

    t0 = 1_700_000_000.0
    cap = tcp_session(tmp_path / "long.pcap", [(i % 2 == 0, b"keepalive %d" % i) for i in range(180)],
                      port=22, t0=t0, step=60.0)
    db = tmp_path / "w.db"
    ingest(db, cap)
    f = max(flows(db), key=lambda r: r["duration_ns"] or 0)  # the handshake a minute apart is split off
    assert f["duration_ns"] > 2 * 3600 * 10**9 and f["orig_pkts"] + f["resp_pkts"] > 150
    since, until = t0 + 2 * 3600, t0 + 2 * 3600 + 600
    want = [(ts, b) for ts, b in records(cap) if since <= ts < until]
    assert want
    for extra in ([], ["--host", "10.0.0.5"], ["--port", "22", "--proto", "tcp"]):
        out = tmp_path / "since.pcap"
        r = run("extract", "--db", str(db), *extra, "--since", str(since), "--until", str(until), "--out", str(out))
        assert r.exit_code == 0, r.output
        assert records(out) == want, extra
    # the flow has ended before this --since: nothing, one line
    r = run("extract", "--db", str(db), "--since", str(t0 + 4 * 3600), "--out", str(tmp_path / "none.pcap"))
    assert r.exit_code == 1 and "no flow matches" in r.output
    from recorder.core.store.listing import flows_query

    q = flows_query(active_since=int(since * 1e9), until=int(until * 1e9))
    con = sqlite3.connect(db)
    try:
        plan = " ".join(str(row[-1]) for row in con.execute("EXPLAIN QUERY PLAN " + q.sql, q.params))
    finally:
        con.close()
    assert "ix_flows_long" in plan, plan
