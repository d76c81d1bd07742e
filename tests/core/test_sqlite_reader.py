"""The listings read through Python's sqlite3 (``SqliteReader``) give exactly the rows ``Store``
gives through SQLAlchemy, for every filter and every log; and a listing command never imports
SQLAlchemy (its import was most of a listing's start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recorder.core.apps.records import CONN_LOGS, LOGS
from recorder.core.errors import StoreError, WiretrailError
from recorder.core.store import Store
from recorder.core.store.listing import last_alert_id, query_log
from recorder.core.store.sqlite_reader import SqliteReader
from tests.helpers import wiretrail_cli

ROOT = Path(__file__).resolve().parents[2]
BREACH = ROOT / "captures" / "demo-breach.pcap"


@pytest.fixture(scope="module")
def breach_db(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("reader") / "breach.db")
    subprocess.run([wiretrail_cli(), "replay", str(BREACH), "--db", db, "--local-net", "192.168.1.0/24"],
                   check=True, capture_output=True)
    return db


FLOW_FILTERS = [
    {}, {"host": "192.168.1.20"}, {"host": "203.0.113.0/24"}, {"port": 21}, {"proto": "udp"},
    {"states": ["SF", "S0"]}, {"states": []}, {"limit": 3}, {"limit": 0},
    {"since": 1_780_000_100_000_000_000, "until": 1_780_000_900_000_000_000}, {"open_only": True},
]
ALERT_FILTERS = [
    {}, {"host": "203.0.113.66"}, {"port": 21}, {"max_severity": 1}, {"kind": "behaviour"},
    {"signature": "brute"}, {"signature": "100%_/"}, {"sids": [9000003, 9000001]}, {"sids": []},
    {"limit": 2}, {"after_id": 3}, {"capture_id": 1},
]


def test_flows_and_alerts_equal_the_stores(breach_db):
    with Store(breach_db, create=False) as store, SqliteReader(breach_db) as reader:
        flows = list(store.query_flows())
        assert len(flows) > 50 and any(r["local_orig"] is True for r in flows)
        for filters in FLOW_FILTERS:
            assert list(reader.query_flows(**filters)) == list(store.query_flows(**filters)), filters
        alerts = list(store.query_alerts())
        assert len(alerts) > 5 and "src_a" not in alerts[0]
        for filters in ALERT_FILTERS:
            assert list(reader.query_alerts(**filters)) == list(store.query_alerts(**filters)), filters
        assert last_alert_id(reader) == store.last_alert_id() == max(a["id"] for a in alerts)


def test_every_log_equals_the_stores(breach_db):
    seen = 0
    with Store(breach_db, create=False) as store, SqliteReader(breach_db) as reader:
        for name in LOGS:
            filters = [{}, {"host": "192.168.1.0/24"}, {"limit": 1}]
            if name in CONN_LOGS:
                filters.append({"port": 21})
            for f in filters:
                mine = list(query_log(reader, name, **f))
                assert mine == list(query_log(store, name, **f)), (name, f)
                seen += bool(mine)
    assert seen > 10  # the breach fills many logs: the comparison is not of empty lists


def test_extracts_reads_equal_the_stores(breach_db):
    """What ``extract --uid`` reads (flows by uid and Community ID, captures, packet-index entries,
    the next connection's start) is the same through sqlite3 as through the Store."""
    from recorder.core.flow.indexformat import flow_key

    with Store(breach_db, create=False) as store, SqliteReader(breach_db) as reader:
        flows = list(store.query_flows(proto="tcp"))[:20]
        uids = [f["uid"] for f in flows]
        assert reader.flows_with("uid", uids, "uid") == store_flows(store, "uid", uids)
        cids = [f["community_id"] for f in flows]
        assert reader.flows_with("community_id", cids, "Community ID") == store_flows(store, "community_id", cids)
        assert reader.captures() == store.captures() and reader.captures(size=1) == store.captures(size=1) == []
        assert reader.next_flow_starts(flows) == store.next_flow_starts(flows)
        keys = [flow_key(f["ip_proto"], f["orig_a"], f["orig_p"], f["resp_a"], f["resp_p"]) for f in flows]
        entries = store.packet_index_entries(keys)
        assert entries and reader.packet_index_entries(keys) == entries
        since = flows[5]["ts_ns"]
        assert reader.packet_index_entries(keys, since=since, until=since) == \
            store.packet_index_entries(keys, since=since, until=since)
        with pytest.raises(WiretrailError, match="no flow with uid Cnosuch"):
            reader.flows_with("uid", ["Cnosuch"], "uid")


def store_flows(store, column, values):
    """The Store's flows whose column is one of values, by uid, without the listing's capture_drops."""
    return {f["uid"]: {k: v for k, v in f.items() if k != "capture_drops"}
            for f in store.query_flows() if f[column] in set(values)}


def test_bad_filters_and_files_are_one_line(breach_db, tmp_path):
    with SqliteReader(breach_db) as reader:
        with pytest.raises(ValueError, match="limit must be >= 0"):
            list(reader.query_flows(limit=-1))
        with pytest.raises(ValueError):
            list(reader.query_alerts(host="not-an-ip"))
        with pytest.raises(ValueError, match="the names log has no ports"):
            list(query_log(reader, "names", port=1))
    with pytest.raises(StoreError, match="no database at"):
        SqliteReader(str(tmp_path / "missing.db"))
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        SqliteReader(str(junk)).require_schema()
    empty = tmp_path / "empty.db"
    Store(str(empty)).close()
    with pytest.raises(StoreError, match="no Wiretrail tables here"):
        SqliteReader(str(empty)).require_schema()


@pytest.mark.parametrize("args", [["flows", "--limit", "1"], ["alerts", "--limit", "1"], ["dns", "--limit", "1"],
                                  ["credentials", "--format", "json"]])
def test_listings_never_import_sqlalchemy(breach_db, args):
    code = ("import sys\nfrom analysis.cli import main\n"
            f"sys.argv = ['wiretrail', *{args!r}, '--db', {breach_db!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "sys.stderr.write('SQLALCHEMY=%s' % ('sqlalchemy' in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()  # it listed something
    assert r.stderr.endswith("SQLALCHEMY=False"), r.stderr[-300:]
