"""Protocol records in the store (SQLite and PostgreSQL): round trips of every log, hostile values,
hosts, flow services, parser failures, and the ingest with an application layer."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn
from recorder.core.apps.records import CONN_LOGS, LOGS
from recorder.core.errors import WiretrailError
from recorder.core.pipeline.ingest import ingest
from recorder.core.schema import APP_TABLES
from recorder.core.store import Store, addr16
from recorder.core.store.listing import query_log
from recorder.core.store.logs import hosts
from recorder.core.store.records import StoreOutput, record_failures, update_services
from recorder.core.store.rows import to_row
from tests.helpers import REFERENCE

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "captures" / "demo.pcap"
TS = 1_700_000_000.123456
CONN = Conn("10.0.0.21", 49200, "192.0.2.80", 80, "tcp", TS - 1, uid="CTestUid000000001")
CONN6 = Conn("2001:db8::1", 50000, "2001:db8:1::25", 25, "tcp", TS - 2, uid="CTestUid000000002")


def value(ztype: str, i: int):
    """A value of a Zeek type, different per ``i``."""
    if ztype == "time":
        return TS + i
    if ztype == "interval":
        return 0.25 + i
    if ztype in ("count", "int"):
        return 1000 + i
    if ztype == "port":
        return 1024 + i
    if ztype == "bool":
        return i % 2 == 0
    if ztype == "double":
        return 0.5 + i
    if ztype == "addr":
        return f"192.0.2.{i % 250}"
    if ztype.startswith(("set[", "vector[")):
        sub = ztype[ztype.index("[") + 1:-1]
        return [value(sub, i), value(sub, i + 1)]
    return f"text {i} é,\t\\x"  # separators and non-ASCII survive


def full_record(log: str) -> dict:
    return {f: value(t, i) for i, (f, t) in enumerate(LOGS[log]) if f not in ("uid",) and not f.startswith("id.")}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.ensure_schema()
    yield s
    s.close()


@pytest.mark.parametrize("background", [False, True], ids=["inline", "writer-process"])
def test_every_log_round_trips(store, background):
    out = StoreOutput(store, batch_rows=3, background=background)
    for log in LOGS:
        if log in CONN_LOGS:
            out.log(log, full_record(log), CONN)
        elif log == "names":
            out.name("192.0.2.7", "www.example.com", ts=TS, source="DNS")
        elif log == "macs":
            out.mac("192.0.2.7", "02:00:00:00:00:07", ts=TS, source="DHCP")
    out.close()
    assert out.dropped_fields == Counter() and out.unknown_logs == Counter()
    for log in LOGS:
        got = list(query_log(store, log))
        assert len(got) == 1, log
        rec = got[0]
        assert list(rec) == [f for f, _ in LOGS[log]]
        if log == "names":
            assert rec == {"ts": TS, "addr": "192.0.2.7", "name": "www.example.com", "source": "DNS"}
            continue
        if log == "macs":
            assert rec == {"ts": TS, "addr": "192.0.2.7", "mac": "02:00:00:00:00:07", "source": "DHCP", "last_seen": TS}
            continue
        want = {**full_record(log), **CONN.ident()}
        for f, t in LOGS[log]:
            if t in ("time", "interval"):
                assert math.isclose(rec[f], want[f], abs_tol=1e-6), (log, f)
            elif t == "vector[interval]":
                assert rec[f] == pytest.approx(want[f]), (log, f)
            else:
                assert rec[f] == want[f], (log, f, rec[f], want[f])


def test_framework_fields_and_late_uid(store):
    conn = Conn("10.0.0.5", 5353, "10.0.0.53", 53, "udp", TS)
    out = StoreOutput(store)
    out.log("dns", {"ts": TS, "query": "example.com", "bogus_field": 1}, conn)
    conn.uid = "CLateUid"  # a dispatcher may learn the uid after the parser reported
    out.log("dns", {"ts": TS + 1, "query": "example.org", "proto": "tcp"}, conn)
    out.close()
    rows = list(query_log(store, "dns"))
    assert [(r["uid"], r["proto"], r["query"]) for r in rows] == [
        ("CLateUid", "udp", "example.com"), ("CLateUid", "tcp", "example.org")]
    assert out.dropped_fields == Counter({"dns.bogus_field": 1})
    out.log("nosuchlog", {}, conn)
    assert out.unknown_logs == Counter({"nosuchlog": 1})


@pytest.mark.parametrize("background", [False, True], ids=["inline", "writer-process"])
def test_record_fields_win_over_the_connections_and_are_taken_when_logged(store, background):
    """The connection's uid, id.* and proto fill only what a record leaves out, and a record is
    stored as it was when logged, whatever the parser does with its dict afterwards."""
    out = StoreOutput(store, background=background)
    rec = {"ts": TS, "query": "a.example", "uid": "COwnUid", "id.resp_p": 5353, "proto": "tcp"}
    out.log("dns", rec, CONN)
    rec["query"] = "changed.example"  # the parser reuses its dict
    out.log("dns", {"ts": TS + 1, "query": "b.example", "uid": None, "id.orig_h": "10.9.9.9"}, CONN)
    out.close()
    rows = sorted(query_log(store, "dns"), key=lambda r: r["query"])
    assert [(r["query"], r["uid"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["proto"]) for r in rows] == [
        ("a.example", "COwnUid", "10.0.0.21", 49200, "192.0.2.80", 5353, "tcp"),
        ("b.example", CONN.uid, "10.9.9.9", 49200, "192.0.2.80", 80, "tcp")]


def test_fast_sqlite_binding_stores_the_same_values(tmp_path):
    """The writers' identity adapters (None, bytes, bool) change no stored value or type."""
    import sqlite3

    from recorder.core.store.sql import fast_sqlite_binding

    row = (None, b"\x00\x01", True, False, 7, 1.5, "x")
    db = sqlite3.connect(tmp_path / "b.db")
    db.execute("CREATE TABLE t (a, b, c, d, e, f, g)")
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    fast_sqlite_binding()
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", [row])
    typed = "SELECT " + ", ".join(f"{c}, typeof({c})" for c in "abcdefg") + " FROM t"
    before, after = db.execute(typed).fetchall()
    assert before == after == (None, "null", b"\x00\x01", "blob", 1, "integer", 0, "integer", 7, "integer",
                               1.5, "real", "x", "text")


@pytest.mark.parametrize("background", [False, True], ids=["inline", "writer-process"])
def test_hostile_values_are_stored_not_raised(store, background):
    out = StoreOutput(store, background=background)
    out.log("http", {
        "ts": TS, "uri": "/a\x00b", "host": "h\udcff\udc80st", "user_agent": b"raw\xff bytes",
        "status_code": 1 << 70, "request_body_len": "12", "response_body_len": "lots", "trans_depth": -1,
        "tags": "not-a-list", "orig_fuids": [None, "\x00"], "method": 7, "username": object(),
        "referrer": "a\tb\nc\\N\r\\.",  # what COPY's text format must escape (PostgreSQL)
    }, CONN)
    out.log("dns", {"ts": float("nan"), "rtt": float("inf"), "TTLs": [1.5, "x", None], "AA": "yes",
                    "trans_id": 3.0, "answers": ("1.2.3.4",)}, CONN)
    bad = Conn("not-an-ip", 99999, "::zz", -5, "tcp", TS, uid="C" + "x" * 40)
    out.credential(bad, ts=TS, protocol="FTP", user="u\x00", secret=None, success=None)
    out.close()
    http = next(query_log(store, "http"))
    assert http["uri"] == "/a\\x00b"
    assert http["referrer"] == "a\tb\nc\\N\r\\."
    assert http["host"] == "h\\xff\\x80st"
    assert http["user_agent"] == "raw\\xff bytes"
    assert http["status_code"] is None and http["request_body_len"] == 12 and http["response_body_len"] is None
    assert http["trans_depth"] == -1 and http["tags"] == ["not-a-list"] and http["orig_fuids"] == [None, "\\x00"]
    assert http["method"] == "7" and http["username"].startswith("<object")
    dns = next(query_log(store, "dns"))
    assert dns["ts"] == CONN.start  # no usable ts: the connection's start
    assert dns["rtt"] is None and dns["TTLs"] == [1.5, None, None] and dns["AA"] is None and dns["trans_id"] == 3
    cred = next(query_log(store, "credentials"))
    assert cred["id.orig_h"] == "not-an-ip" and cred["id.orig_p"] is None and cred["user"] == "u\\x00"
    assert len(cred["uid"]) == 24


def test_writer_process_stores_what_inline_stores(tmp_path):
    """The writer process (the ingest's) hashes file bodies and makes rows as the inline path does."""
    got = []
    for background in (False, True):
        s = Store(str(tmp_path / f"{background}.db"))
        s.ensure_schema()
        out = StoreOutput(s, batch_rows=2, background=background)
        fuids = [out.file(CONN, ts=TS, data=b"%PDF-1.4 body", is_orig=False, source="HTTP"),
                 out.file(CONN, ts=TS + 1, data=b"partial", is_orig=True, source="HTTP", total_bytes=99),
                 out.file(CONN6, ts=TS + 2, data=bytearray(b"GIF89a..."), is_orig=False, source="SMTP",
                          filename="a.gif")]
        out.log("http", {"ts": TS, "uri": "/", "resp_fuids": fuids[:1]}, CONN)
        out.name("192.0.2.7", "www.example.com", ts=TS, source="DNS")
        out.close()
        assert out.rows_written == Counter({"files": 3, "http": 1, "names": 1})
        got.append({log: list(query_log(s, log)) for log in ("files", "http", "names")})
        s.close()
    assert got[0] == got[1]
    files = got[1]["files"]
    assert files[0]["md5"] == "561b04fcff574cb4a30c474ac8fbde07"
    assert files[0]["sha256"] is not None and files[1]["md5"] is None  # a partial body is not hashed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([f for f, _ in LOGS["smtp"]]),
                       st.one_of(st.none(), st.text(), st.integers(), st.floats(), st.booleans(),
                                 st.lists(st.one_of(st.text(), st.integers()), max_size=3), st.binary(max_size=8)),
                       max_size=12))
@example(record={"ts": 1.797693134862316e+302})  # finite, but infinite once scaled to ns
def test_any_record_stores(store, record):
    out = StoreOutput(store)
    out.log("smtp", record, CONN)
    out.close()  # never raises
    assert to_row("smtp", {**record, **CONN.ident()}, None)["uid"] == CONN.uid


def test_filters(store):
    out = StoreOutput(store)
    out.log("ssh", {"ts": TS, "client": "a"}, CONN)
    out.log("ssh", {"ts": TS + 10, "client": "b"}, CONN6)
    out.log("ssh", {"ts": TS + 20, "client": "c"}, Conn("172.16.0.9", 40000, "10.0.0.22", 22, "tcp", TS, uid="Cc"))
    out.close()

    def q(**kw):
        return [r["client"] for r in query_log(store, "ssh", **kw)]

    assert q() == ["a", "b", "c"]
    assert q(host="10.0.0.0/8") == ["a", "c"]
    assert q(host="2001:db8::/32") == ["b"]
    assert q(host="192.0.2.80") == ["a"]
    assert q(port=22) == ["c"] and q(port=49200) == ["a"]
    assert q(uid="CTestUid000000002") == ["b"]
    assert q(since=int((TS + 5) * 1e9), until=int((TS + 15) * 1e9)) == ["b"]
    assert q(limit=2) == ["a", "b"]
    with pytest.raises(ValueError):
        q(host="nonsense")
    with pytest.raises(ValueError):
        list(query_log(store, "names", port=53))


def _flow(n, orig, resp, resp_p, service=None, **kw):
    return {"uid": f"CFlow{n}", "capture_id": None, "file_offset": 24, "ts_ns": int(TS * 1e9) + n * 10**9,
            "duration_ns": 10**9, "orig_h": orig, "orig_p": 40000 + n, "resp_h": resp, "resp_p": resp_p,
            "orig_a": addr16(orig), "resp_a": addr16(resp), "proto": "tcp", "ip_proto": 6, "service": service,
            "orig_bytes": 100 * (n + 1), "resp_bytes": 1000 * (n + 1), "conn_state": "SF", "local_orig": True,
            "local_resp": False, "missed_bytes": 0, "history": "ShADadFf", "orig_pkts": 1, "orig_ip_bytes": 1,
            "resp_pkts": 1, "resp_ip_bytes": 1, "tunnel_parents": None, "community_id": None, **kw}


def test_hosts_services_and_failures(store):
    store.insert_flows([_flow(0, "10.0.0.21", "192.0.2.80", 80), _flow(1, "10.0.0.21", "192.0.2.80", 443),
                        _flow(2, "192.0.2.80", "10.0.0.21", 22), _flow(3, "10.0.0.22", "192.0.2.80", 80)])
    assert update_services(store, iter([("CFlow0", ["http"]), ("CFlow1", ["ssl", "http", "ssl"]),
                                        ("CFlow2", []), ("CNoSuch", ["dns"])])) == 3
    assert {r["uid"]: r["service"] for r in store.query_flows()} == {
        "CFlow0": "http", "CFlow1": "ssl,http", "CFlow2": None, "CFlow3": None}
    out = StoreOutput(store)
    for _ in range(3):  # one row per distinct mapping
        out.name("192.0.2.80", "www.example.com", ts=TS, source="DNS")
    out.name("192.0.2.80", "example.com", ts=TS, source="TLS")
    out.close()
    assert out.rows_written["names"] == 2
    got = {h["addr"]: h for h in hosts(store)}
    assert set(got) == {"10.0.0.21", "192.0.2.80", "10.0.0.22"}
    server = got["192.0.2.80"]
    assert server["flows"] == 4 and server["services"] == ["http", "ssl"]
    assert server["names"] == ["example.com", "www.example.com"] and server["mac"] is None
    assert server["bytes_out"] == 1000 + 2000 + 300 + 4000  # as responder its resp_bytes, as originator its orig_bytes
    assert server["bytes_in"] == 100 + 200 + 3000 + 400
    assert server["first_seen"] == pytest.approx(TS) and server["last_seen"] == pytest.approx(TS + 4)
    assert [h["addr"] for h in hosts(store, host="10.0.0.0/24")] == ["10.0.0.21", "10.0.0.22"]
    assert len(hosts(store, limit=1)) == 1

    cid = store.add_capture(path="/x.pcap", format="pcap")
    record_failures(store, {cid: Counter({"http": 2, "tls": 0}), None: Counter({"dns": 1})})
    info = store.info()
    assert {(f["capture_id"], f["service"], f["count"]) for f in info["parser_failures"]} == {(cid, "http", 2), (None, "dns", 1)}
    assert info["app_records"]["names"] == 2 and info["app_records"]["dns"] == 0


class FakeAppLayer:
    """Stands in for apps.dispatch.AppLayer: one dns record and one file per batch, a failure on
    the second batch, and the demo's port-80 flows as http."""

    def __init__(self, out, store):
        self.out, self.store = out, store
        self.failures: Counter = Counter()
        self.batches = 0
        self.finished = False

    def feed(self, raw, dec):
        self.batches += 1
        conn = Conn("10.0.0.21", 53001, "10.0.0.10", 53, "udp", TS, uid=f"CBatch{self.batches}")
        self.out.log("dns", {"ts": TS + self.batches, "query": f"q{self.batches}.example"}, conn)
        self.out.file(conn, ts=TS, data=b"MZ" + bytes(100), is_orig=False, source="HTTP", filename="../x.exe")
        if self.batches == 2:
            self.failures["http"] += 1

    def finish(self):
        self.finished = True
        self.failures["dns"] += 1

    def services(self):
        return ((f["uid"], ["http"]) for f in self.store.query_flows(port=80))


def test_ingest_with_an_app_layer(db_url, tmp_path):
    store = Store(db_url)
    store.ensure_schema()
    layers = []

    def factory(out):
        layers.append(FakeAppLayer(out, store))
        return layers[0]

    stats = ingest([str(DEMO)], store, app_layer=factory, extract_dir=str(tmp_path / "files"))
    layer = layers[0]
    assert layer.finished and layer.batches >= 1
    assert stats.app_records == 2 * layer.batches
    cid = stats.files[0].capture_id
    dns = list(query_log(store, "dns"))
    assert len(dns) == layer.batches and {r["uid"] for r in dns} == {f"CBatch{i + 1}" for i in range(layer.batches)}
    files = list(query_log(store, "files"))
    assert files[0]["mime_type"] == "application/x-dosexec" and files[0]["extracted"].endswith("-x.exe")
    assert "EXTRACT" in files[0]["analyzers"] and files[0]["extracted_size"] == 102
    assert (tmp_path / "files" / files[0]["extracted"]).read_bytes() == b"MZ" + bytes(100)
    with store.engine.connect() as conn:
        assert {r.capture_id for r in conn.execute(APP_TABLES["dns"].select())} == {cid}
    http_flows = [f for f in store.query_flows() if f["resp_p"] == 80]
    assert http_flows and all(f["service"] == "http" for f in http_flows)
    assert all(f["service"] is None for f in store.query_flows() if f["resp_p"] != 80)
    fails = {(f["service"], f["count"]) for f in store.info()["parser_failures"]}
    assert fails == ({("http", 1), ("dns", 1)} if layer.batches >= 2 else {("dns", 1)})
    assert stats.parser_failures == sum(n for _, n in fails)
    store.close()


def test_ingest_without_parsers(tmp_path):
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    called = []
    stats = ingest([str(DEMO)], store, parsers=False, app_layer=lambda out: called.append(out))
    assert called == [] and stats.app_records == 0 and stats.flows > 0
    assert all(n == 0 for n in store.info()["app_records"].values())
    assert all(f["service"] is None for f in store.query_flows())


def test_extraction_problems(tmp_path):
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(WiretrailError, match="extraction directory"):
        ingest([str(DEMO)], store, extract_dir=str(blocker / "sub"), app_layer=lambda out: FakeAppLayer(out, store))
    warnings: list[str] = []
    out = StoreOutput(store, extract_dir=str(blocker), on_warning=warnings.append)
    fuid = out.file(CONN, ts=TS, data=b"x" * 20, is_orig=True, source="FTP")
    out.close()
    assert out.extract_errors == 1 and fuid in warnings[0]
    rec = next(query_log(store, "files"))
    assert rec["fuid"] == fuid and rec["extracted"] is None and rec["analyzers"] == ["MD5", "SHA1", "SHA256"]


def _everything(store: Store) -> dict:
    recs = {log: list(query_log(store, log)) for log in LOGS}
    svc = sorted((f["uid"], f["service"]) for f in store.query_flows())
    return {"records": recs, "services": svc, "failures": store.info()["parser_failures"]}


def test_app_layer_process_stores_what_the_inline_layer_stores(tmp_path):
    """The ingest runs the application layer in its own process; the result is the in-process one's."""
    from recorder.core.apps.dispatch import AppLayer
    from recorder.core.apps.registry import PARSERS

    traces = [str(DEMO)] + [str(p) for p in sorted(REFERENCE.glob("zeek-app/*.pcap"))
                            if p.name in ("http__get.pcap", "http__methods.pcap", "smtp.pcap", "ftp__ipv6.pcap",
                                          "ssh__ssh_kex_curve25519.pcap", "dns53.pcap")]
    got = []
    for inline in (False, True):
        store = Store(str(tmp_path / f"{inline}.db"))
        store.ensure_schema()
        stats = ingest(traces, store, app_layer=(lambda out: AppLayer(out, PARSERS)) if inline else None)
        got.append((stats.app_records, stats.parser_failures, _everything(store)))
        store.close()
    assert got[0][0] > 0
    assert got[0] == got[1]


def test_an_ingest_stopped_early_ends_the_app_layer_process(tmp_path):
    import multiprocessing

    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()

    def progress(n, nbytes):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        ingest([str(DEMO)], store, progress=progress)
    assert multiprocessing.active_children() == []
    store.close()
