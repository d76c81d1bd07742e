"""The store on SQLite and PostgreSQL: schema, round trips, filters, the writer thread, errors."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.errors import StoreError
from recorder.core.schema import FLOW_FIELDS, metadata
from recorder.core.store import Store, addr16, host_range
from tests.helpers.store import T0, flow


def stored(row: dict) -> dict:
    return {k: row[k] for k in FLOW_FIELDS}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def filled(store):
    """Flows across both families, ports, protocols, states and times."""
    cid = store.add_capture(path="/cases/a.pcap", sha256="a" * 64, format="pcap", packets=42)
    rows = [
        flow(0, "10.0.0.1", "192.168.1.10", capture_id=cid),
        flow(1, "10.1.2.3", "8.8.8.8", proto="tcp", ip_proto=6, resp_p=443, conn_state="S0", capture_id=cid),
        flow(2, "172.16.5.4", "10.0.0.1", proto="tcp", ip_proto=6, resp_p=22, conn_state="REJ"),
        flow(3, "2001:db8::1", "2001:db8:1::53", capture_id=cid),
        flow(4, "2001:db8:ffff::9", "fe80::1", proto="icmp", ip_proto=58, orig_p=128, resp_p=129,
             conn_state="OTH"),
        flow(5, "192.168.1.10", "1.1.1.1", proto="tcp", ip_proto=6, resp_p=80, conn_state="S0"),
    ]
    with store.flow_writer() as w:
        w.put(rows[:3])
        w.put(rows[3:])
    return rows


def uids(it) -> list[str]:
    return [r["uid"] for r in it]


# --- schema -------------------------------------------------------------------------------

def test_schema_matches_migrations(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(db_url)
    assert store.revision() is None
    assert store.migrate() == store.head()
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(ctx, metadata) == []
    store.close()


def test_new_database_schema_equals_the_migrated_one(db_url):
    """ensure_schema creates a new database directly: it must be what the migrations build."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(db_url)
    store.ensure_schema()
    assert store.revision() == store.head()
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(ctx, metadata) == []
    store.close()


def test_ensure_schema_migrates_once(db_url):
    store = Store(db_url)
    store.ensure_schema()
    assert store.revision() == store.head()
    store.ensure_schema()  # already at head: nothing to do
    assert store.info()["revision"] == store.head()
    store.close()


# --- round trips --------------------------------------------------------------------------

def test_round_trip_every_field(store):
    cid = store.add_capture(path="/x.pcapng", sha256="b" * 64, format="pcapng", link_types="1,113")
    rows = [
        flow(0, capture_id=cid),
        flow(1, "2001:db8::dead:beef", "::1", capture_id=cid, tunnel_parents="CAbc,CDef",
             local_orig=None, local_resp=True, service="", history="ShADadFf"),
        flow(2, "192.0.2.1", "198.51.100.2", duration_ns=None, orig_bytes=None, resp_bytes=None,
             service=None, conn_state="S0", local_orig=False, local_resp=None, history=None,
             file_offset=2**40, orig_ip_bytes=2**62),
    ]
    store.insert_flows(rows)
    got = list(store.query_flows())
    assert [stored(g) for g in got] == rows
    assert all(isinstance(g["id"], int) for g in got)
    assert got[1]["local_orig"] is None and got[1]["local_resp"] is True
    assert got[2]["local_orig"] is False


def test_capture_records(store):
    cid = store.add_capture(path="/a.pcap", sha256="c" * 64, format="pcap.gz", link_types="1")
    cap = store.capture_by_sha256("c" * 64)
    assert cap["id"] == cid and cap["format"] == "pcap.gz" and cap["malformed"] == 0
    assert cap["ingested_at"] > T0
    store.update_capture(cid, packets=10, malformed=2, first_ts_ns=T0, last_ts_ns=T0 + 5)
    cap = store.capture_by_sha256("c" * 64)
    assert (cap["packets"], cap["malformed"], cap["first_ts_ns"]) == (10, 2, T0)
    assert store.capture_by_sha256("d" * 64) is None
    with pytest.raises(StoreError, match="no capture with id 999"):
        store.update_capture(999, packets=1)
    with pytest.raises(StoreError) as err:
        store.add_capture(path="/b.pcap", sha256="c" * 64, format="pcap")
    assert "\n" not in str(err.value)


def test_info(store, filled):
    info = store.info()
    assert info["flow_count"] == 6 and info["capture_count"] == 1
    assert info["first_ts_ns"] == T0
    assert info["last_ts_ns"] == T0 + 5_000_000_000 + 1_500_000
    assert info["packets"] == 42 and info["malformed"] == 0
    assert info["captures"][0]["path"] == "/cases/a.pcap"
    assert info["revision"] == store.head()


def test_info_masks_password():
    store = Store("postgresql://user:secret@127.0.0.1:1/db")
    assert "secret" not in store.display and "***" in store.display
    assert store.engine.dialect.driver == "psycopg"


# --- filters ------------------------------------------------------------------------------

@pytest.mark.parametrize("host, expected", [
    ("10.0.0.1", [0, 2]),
    ("10.0.0.0/8", [0, 1, 2]),
    ("10.1.0.0/16", [1]),
    ("192.168.1.10/32", [0, 5]),
    ("0.0.0.0/0", [0, 1, 2, 5]),
    ("2001:db8::/32", [3, 4]),
    ("2001:db8:1::/48", [3]),
    ("fe80::1", [4]),
    ("::/0", [0, 1, 2, 3, 4, 5]),  # IPv4 is stored IPv4-mapped, inside ::/0
    ("::ffff:10.0.0.0/104", [0, 1, 2]),
    ("11.0.0.0/8", []),
])
def test_host_filter(store, filled, host, expected):
    assert uids(store.query_flows(host=host)) == [filled[i]["uid"] for i in expected]


def test_other_filters(store, filled):
    def q(**kw):
        return [int(u[5:]) for u in uids(store.query_flows(**kw))]

    assert q(port=53) == [0, 3]
    assert q(port=40002) == [2]
    assert q(proto="tcp") == [1, 2, 5]
    assert q(proto="icmp") == [4]
    assert q(since=T0 + 2_000_000_000) == [2, 3, 4, 5]
    assert q(until=T0 + 2_000_000_000) == [0, 1]
    assert q(since=T0 + 1_000_000_000, until=T0 + 3_000_000_000) == [1, 2]
    assert q(states=["S0"]) == [1, 5]
    assert q(states=["S0", "REJ"]) == [1, 2, 5]
    assert q(states=[]) == []
    assert q(uid=filled[4]["uid"]) == [4]
    assert q(limit=2) == [0, 1]
    assert q(limit=0) == []
    assert q(proto="tcp", host="10.0.0.0/8", states=["REJ"]) == [2]


def test_query_streams_in_order(store):
    rows = [flow(i, ts_ns=T0 + (i % 7) * 10) for i in range(2500)]
    store.insert_flows(rows)
    got = list(store.query_flows(batch=100))
    assert len(got) == 2500
    assert [(r["ts_ns"], r["id"]) for r in got] == sorted((r["ts_ns"], r["id"]) for r in got)


def test_bad_host_is_value_error(store):
    with pytest.raises(ValueError):
        store.query_flows(host="10.0.0.300")
    assert host_range("10.1.2.3/8") == (addr16("10.0.0.0"), addr16("10.255.255.255"))


# --- the writer thread --------------------------------------------------------------------

def test_writer_batches_and_counts(store):
    with store.flow_writer(batch_rows=7, queue_batches=2) as w:
        for i in range(0, 100, 3):
            w.put([flow(j) for j in range(i, min(i + 3, 100))])
    assert w.rows_written == 100
    assert len(list(store.query_flows())) == 100


def test_writer_error_propagates(store):
    w = store.flow_writer(batch_rows=1)
    w.put([flow(0, capture_id=12345)])  # no such capture: foreign key violation
    with pytest.raises(StoreError) as err:
        for i in range(1, 200):  # the thread keeps draining, so put never blocks forever
            w.put([flow(i)])
        w.close()
    assert "cannot write flows" in str(err.value) and "\n" not in str(err.value)
    assert store.display in str(err.value)
    with pytest.raises(StoreError):
        w.close()  # the error stays reported


def test_writer_missing_field(store):
    row = flow(0)
    del row["community_id"]
    with pytest.raises(StoreError, match="no field 'community_id'"), store.flow_writer() as w:
        w.put([row])


def test_writer_replaces_open_flows_after_the_flows_before_them(store):
    """The recorder's interim records go through the flow writer: written after the flows put
    before them, replacing that stream's earlier ones (and only that stream's); None clears."""
    from pathlib import Path

    from recorder.core.capio.pcapio import read_batches
    from recorder.core.decode.decode import Decoder
    from recorder.core.flow.flowmeter import FlowMeter
    from recorder.core.store.flows import OpenFlows

    ended: list = []
    meter, decoder = FlowMeter(ended.append), Decoder()
    for raw in read_batches(str(Path(__file__).resolve().parents[2] / "captures" / "demo.pcap")):
        meter.add(raw, decoder.decode(raw), None, decoder.tunnels)
    meter.flush()
    snap = meter.snapshot()
    assert ended and snap is not None
    flows_ended = sum(len(b) for b in ended)
    with store.flow_writer(batch_rows=10**6) as w:  # flows wait for more rows, but not past interim records
        w.put_open_flows(OpenFlows("s/other", snap, 5))
        for batch in ended:
            w.put(batch)
        w.put_open_flows(OpenFlows("s/eth0", None, 6))
        w.put_open_flows(OpenFlows("s/eth0", snap, 7))
        deadline = time.monotonic() + 30
        while {r["as_of_ns"] for r in store.query_flows(open_only=True)} != {5, 7}:
            assert time.monotonic() < deadline, "the writer never wrote the interim records"
            time.sleep(0.05)
        # the interim records are in: so are the flows that ended before them
        assert len(list(store.query_flows())) == flows_ended
        w.put_open_flows(OpenFlows("s/eth0", snap, 8))
    open_rows = list(store.query_flows(open_only=True))
    assert {r["stream"] for r in open_rows} == {"s/other", "s/eth0"}
    eth0 = [r for r in open_rows if r["stream"] == "s/eth0"]
    assert len(eth0) == len(snap) and {r["as_of_ns"] for r in eth0} == {8}
    assert w.rows_written == flows_ended


def test_writer_closed(store):
    w = store.flow_writer()
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.put([flow(0)])


# --- errors -------------------------------------------------------------------------------

def test_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as err:
        Store(str(path)).migrate()
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ") and "not a database" in msg and "\n" not in msg


def test_cannot_open(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "w.db"
    with pytest.raises(StoreError) as err:
        Store(str(path)).migrate()
    assert str(path) in str(err.value) and "unable to open" in str(err.value)


def test_missing_file_not_created(tmp_path):
    path = tmp_path / "w.db"
    with pytest.raises(StoreError, match="no database at .*; run wiretrail ingest first"):
        Store(str(path), create=False)
    assert not path.exists()


def test_require_schema(tmp_path):
    path = tmp_path / "empty.db"
    store = Store(str(path))
    with pytest.raises(StoreError, match="no Wiretrail tables"):
        store.require_schema()


def test_connection_refused():
    store = Store("postgresql://wiretrail:pw@127.0.0.1:1/nothing")
    with pytest.raises(StoreError) as err:
        store.revision()
    msg = str(err.value)
    assert msg.startswith("postgresql://wiretrail:***@127.0.0.1:1/nothing: ") and "\n" not in msg
    assert "pw@" not in msg


def test_bad_url():
    with pytest.raises(StoreError, match="cannot open database"):
        Store("nosuchdialect://x/y")


# --- property: whatever the meter hands over comes back -----------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_count = st.none() | st.integers(0, 2**63 - 1)
_ipv4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
_ipv6 = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))
_uid = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=24)


@st.composite
def flow_rows(draw):
    orig, resp = draw(_ipv4 | _ipv6), draw(_ipv4 | _ipv6)
    return {
        "uid": draw(_uid), "capture_id": None, "file_offset": draw(_count),
        "ts_ns": draw(st.integers(0, 2**63 - 1)), "duration_ns": draw(_count),
        "orig_h": orig, "orig_p": draw(st.integers(0, 65535)), "resp_h": resp,
        "resp_p": draw(st.integers(0, 65535)), "orig_a": addr16(orig), "resp_a": addr16(resp),
        "proto": draw(st.sampled_from(["tcp", "udp", "icmp", "unknown_transport"])),
        "ip_proto": draw(st.none() | st.integers(0, 255)), "service": draw(st.none() | _text),
        "orig_bytes": draw(_count), "resp_bytes": draw(_count),
        "conn_state": draw(st.none() | st.sampled_from(["S0", "SF", "REJ", "RSTOS0", "OTH"])),
        "local_orig": draw(st.none() | st.booleans()), "local_resp": draw(st.none() | st.booleans()),
        "missed_bytes": draw(_count), "history": draw(st.none() | _text),
        "orig_pkts": draw(_count), "orig_ip_bytes": draw(_count), "resp_pkts": draw(_count),
        "resp_ip_bytes": draw(_count),
        "tunnel_parents": draw(st.none() | st.lists(_uid, max_size=3).map(",".join)),
        "community_id": draw(st.none() | st.text("0123456789abcdef:=+/", max_size=64)),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(flow_rows(), max_size=8))
def test_round_trip_property(store, rows):
    from recorder.core.schema import flows

    with store.engine.begin() as conn:
        conn.execute(flows.delete())
    with store.flow_writer(batch_rows=3) as w:
        w.put(rows)
    got = [stored(r) for r in store.query_flows()]
    assert sorted(got, key=repr) == sorted(rows, key=repr)


def test_schema_head_constant_matches_the_migrations():
    from alembic.script import ScriptDirectory

    from recorder.core.store import MIGRATIONS_DIR, SCHEMA_HEAD

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_HEAD


def test_flows_overlapping_a_capture_with_drops_are_marked(store):
    """A flow is marked when the recorder lost packets while a file of its sensor was open
    during the flow; ingested files (no recorder origin) never mark anything."""
    sec = 1_000_000_000
    lossy = store.add_capture(path="/c/a.pcap", format="pcap", origin="recorder", sensor="s1",
                              ingested_at=T0 + 10 * sec, sealed_at=T0 + 20 * sec, kernel_drops=3, iface_drops=0)
    clean = store.add_capture(path="/c/b.pcap", format="pcap", origin="recorder", sensor="s1",
                              ingested_at=T0 + 20 * sec, sealed_at=T0 + 30 * sec, kernel_drops=0, iface_drops=0)
    other = store.add_capture(path="/c/c.pcap", format="pcap", origin="recorder", sensor="s2",
                              ingested_at=T0, sealed_at=T0 + 40 * sec, kernel_drops=0, iface_drops=0)
    store.insert_flows([
        flow(5, capture_id=clean, ts_ns=T0 + 5 * sec, duration_ns=6 * sec),   # 5..11 s: overlaps the lossy file
        flow(25, capture_id=clean, ts_ns=T0 + 25 * sec, duration_ns=sec),     # 25..26 s: only the clean file
        flow(12, capture_id=other, ts_ns=T0 + 12 * sec, duration_ns=sec),     # other sensor, no drops there
        flow(13, capture_id=None, ts_ns=T0 + 13 * sec, duration_ns=sec),      # an ingested flow, no sensor
        flow(15, capture_id=lossy, ts_ns=T0 + 15 * sec, duration_ns=None),    # inside the lossy file
    ])
    marked = {r["uid"]: bool(r["capture_drops"]) for r in store.query_flows()}
    assert marked == {"CTest0000000000005": True, "CTest0000000000025": False, "CTest0000000000012": False,
                      "CTest0000000000013": False, "CTest0000000000015": True}
