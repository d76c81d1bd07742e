"""The alerts table on SQLite and PostgreSQL: migration 0004, add_alerts (every field, EVE text,
hostile text, duplicates skipped), query_alerts with every filter, flow_captures."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from analysis.alerts import Alert
from analysis.replay import alert_row
from recorder.core.schema import ALERT_FIELDS
from recorder.core.store import Store, addr16

T0 = 1_714_557_600_000_000_000  # 2024-05-01T10:00:00Z in ns
S = 1_000_000_000


def alert(n: int, **kw) -> Alert:
    fields = dict(ts_ns=T0 + n * S, signature_id=2_000_000 + n, signature=f"ET TEST alert {n}", severity=2,
                  src_ip="10.0.0.1", dest_ip="192.0.2.7", src_port=40000 + n, dest_port=22, proto="tcp",
                  uid=f"CAlert{n:06d}", community_id="1:abc=", category="Misc activity", rev=3)
    fields.update(kw)
    return Alert(**fields)


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.ensure_schema()
    yield s
    s.close()


@pytest.fixture
def filled(store):
    """Seven alerts over both address families, kinds, severities and two captures."""
    c1 = store.add_capture(path="/cases/a.pcap", sha256="a" * 64, format="pcap")
    c2 = store.add_capture(path="/cases/b.pcap", sha256="b" * 64, format="pcap")
    rows = [
        alert_row(alert(0), "signature", c1),
        alert_row(alert(1, src_ip="10.1.2.3", dest_ip="8.8.8.8", dest_port=53, proto="udp", severity=1,
                        signature="ET DNS Query for 100%_sure.example"), "signature", c1),
        alert_row(alert(2, src_ip="2001:db8::1", dest_ip="2001:db8:1::53", severity=3), "signature", c2),
        alert_row(alert(3, signature_id=9000001, signature="Port scan: 10.0.0.66 probed 40 tcp ports",
                        src_ip="10.0.0.66", dest_ip="10.0.0.5", rule_kind="port_scan", tactic="TA0007 Discovery",
                        technique="T1046 Network Service Discovery"), "behaviour", c2),
        alert_row(alert(4, proto="icmp", src_port=None, dest_port=None, uid=None, community_id=None),
                  "signature", None),
        alert_row(alert(5, signature_id=2_000_000, signature="ET TEST alert 0"), "signature", c1),
        alert_row(alert(6, src_ip="192.0.2.7", dest_ip="10.0.0.1", src_port=22, dest_port=40006), "signature", c2),
    ]
    assert store.add_alerts(rows) == 7
    return rows


def sids(rows) -> list[int]:
    return [r["signature_id"] for r in rows]


# --- schema ----------------------------------------------------------------------------------------

def test_migration_0004_adds_and_drops_the_alerts_table(db_url):
    from alembic import command

    store = Store(db_url)
    with store.engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0003")
    assert store.revision() == "0003"
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("alerts")
    store.ensure_schema()  # an older database is migrated
    assert store.revision() == store.head() >= "0004"
    with store.engine.connect() as conn:
        insp = sa.inspect(conn)
        assert {c["name"] for c in insp.get_columns("alerts")} >= set(ALERT_FIELDS) | {"id", "src_a", "dest_a"}
        assert {tuple(i["column_names"]) for i in insp.get_indexes("alerts")} == {
            ("ts_ns",), ("signature_id",), ("src_a",), ("dest_a",), ("uid",)}
    assert store.add_alerts([alert_row(alert(0), "signature", None)]) == 1
    with store.engine.begin() as conn:
        command.downgrade(store._alembic_config(conn), "0003")
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("alerts")
    store.close()


# --- add_alerts --------------------------------------------------------------------------------------

def test_round_trip_every_field(filled, store):
    got = list(store.query_alerts())
    assert len(got) == 7
    for row, stored in zip(filled, got):
        expected = {k: v for k, v in row.items() if k != "eve"}
        assert {k: stored[k] for k in expected} == expected
        assert json.loads(stored["eve"]) == row["eve"]
        assert "src_a" not in stored and isinstance(stored["id"], int)
    scan = got[3]
    assert (scan["kind"], scan["tactic"], scan["technique"]) == ("behaviour", "TA0007 Discovery",
                                                                "T1046 Network Service Discovery")
    assert json.loads(scan["eve"])["alert"]["metadata"]["wiretrail_behaviour"] == ["port_scan"]
    icmp = got[4]
    assert icmp["src_port"] is None and icmp["uid"] is None and icmp["flow_id"] is None and icmp["capture_id"] is None
    assert got[0]["flow_id"] == alert(0).flow_id and got[0]["flow_id"] > 2**32  # 63 bits survive


def test_same_alerts_again_are_skipped(filled, store):
    assert store.add_alerts(filled) == 0
    changed = dict(filled[0], signature="ET TEST alert 0 (rev 4)")
    assert store.add_alerts([changed, filled[1]]) == 1
    assert len(list(store.query_alerts())) == 8
    assert store.add_alerts([]) == 0


def test_two_identical_alerts_in_one_batch_are_both_kept(store):
    row = alert_row(alert(0), "signature", None)
    assert store.add_alerts([row, row]) == 2
    assert store.add_alerts([row]) == 0


def test_hostile_text_is_stored_escaped(store):
    a = alert(0, signature="bad \udcff byte and NUL \x00 here", category="caf\u00e9",
              app_proto="h\udce9ttp")
    assert store.add_alerts([alert_row(a, "signature", None)]) == 1
    [got] = store.query_alerts()
    assert got["signature"] == "bad \\xff byte and NUL \\x00 here"
    assert got["category"] == "caf\u00e9" and got["app_proto"] == "h\\xe9ttp"
    eve = json.loads(got["eve"])
    assert eve["alert"]["signature"] == "bad \udcff byte and NUL \x00 here"  # JSON escapes keep it exact


def test_unknown_field_and_missing_value(store):
    with pytest.raises(TypeError, match="unknown alert field"):
        store.add_alerts([dict(alert_row(alert(0), "signature", None), colour="red")])
    from recorder.core.errors import StoreError

    row = alert_row(alert(0), "signature", None)
    row["signature"] = None
    with pytest.raises(StoreError, match="cannot write alerts"):
        store.add_alerts([row])


# --- query_alerts ------------------------------------------------------------------------------------

def test_filters(filled, store):
    q = store.query_alerts
    assert sids(q()) == [2000000, 2000001, 2000002, 9000001, 2000004, 2000000, 2000006]  # time order
    assert sids(q(host="10.0.0.1")) == [2000000, 2000004, 2000000, 2000006]
    assert sids(q(host="10.0.0.0/8")) == [2000000, 2000001, 9000001, 2000004, 2000000, 2000006]
    assert sids(q(host="2001:0db8:0::1")) == [2000002]  # any spelling of the address
    assert sids(q(host="2001:db8::/32")) == [2000002]
    assert sids(q(host="8.8.8.8")) == [2000001]
    assert sids(q(port=53)) == [2000001]
    assert sids(q(port=40006)) == [2000006]
    assert sids(q(proto="udp")) == [2000001]
    assert sids(q(proto="icmp")) == [2000004]
    assert sids(q(since=T0 + 2 * S, until=T0 + 4 * S)) == [2000002, 9000001]
    assert sids(q(uid="CAlert000003")) == [9000001]
    assert sids(q(sids=[2000000, 9000001])) == [2000000, 9000001, 2000000]
    assert sids(q(max_severity=1)) == [2000001]
    assert sids(q(max_severity=2)) == [2000000, 2000001, 9000001, 2000004, 2000000, 2000006]
    assert sids(q(signature="port SCAN")) == [9000001]
    assert sids(q(signature="100%_")) == [2000001]  # % and _ are literal
    assert sids(q(signature="t%d")) == []  # as a LIKE pattern it would match two
    assert sids(q(kind="behaviour")) == [9000001]
    assert sids(q(capture_id=filled[0]["capture_id"])) == [2000000, 2000001, 2000000]
    assert sids(q(limit=2)) == [2000000, 2000001]
    assert sids(q(host="10.0.0.0/8", max_severity=2, kind="signature", limit=2)) == [2000000, 2000001]
    assert sids(q(sids=[])) == []
    with pytest.raises(ValueError):
        q(limit=-1)
    with pytest.raises(ValueError):
        q(host="10.0.0.300")


def test_flow_captures(store):
    from tests.helpers.store import flow

    cid = store.add_capture(path="/a.pcap", sha256="c" * 64, format="pcap")
    store.insert_flows([flow(0, capture_id=cid), flow(1), flow(2, capture_id=cid)])
    assert store.flow_captures(["CTest0000000000000", "CTest0000000000001", "nope", ""]) == {
        "CTest0000000000000": cid}
    assert store.flow_captures([]) == {}
    many = [f"CTest{n:013d}" for n in range(1200)]  # more than one IN list
    assert store.flow_captures(many) == {"CTest0000000000000": cid, "CTest0000000000002": cid}


def test_addresses_also_as_16_bytes(store):
    store.add_alerts([alert_row(alert(0, src_ip="2001:db8::1"), "signature", None),
                      alert_row(alert(1, dest_ip="not an address"), "signature", None)])
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT src_a, dest_a, dest_ip FROM alerts ORDER BY id")).all()
    assert [(bytes(r[0]), r[1] and bytes(r[1])) for r in rows] == [
        (addr16("2001:db8::1"), addr16("192.0.2.7")), (addr16("10.0.0.1"), None)]
    assert rows[1][2] == "not an address"
