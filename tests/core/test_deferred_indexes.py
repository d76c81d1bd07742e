"""The protocol tables' indexes during a bulk load into an empty SQLite store: dropped by the record
writer for the load, built at its end, and built again at open when a load did not end."""

from __future__ import annotations

import sqlite3

import pytest

from recorder.core.apps.base import Conn
from recorder.core.schema import APP_TABLES
from recorder.core.store import Store
from recorder.core.store.records import StoreOutput

TS = 1_700_000_000.5
CONN = Conn("10.0.0.21", 49200, "192.0.2.80", 443, "tcp", TS - 1, uid="CTestUid000000001")
EXPECTED = {ix.name for table in APP_TABLES.values() for ix in table.indexes}


def app_indexes(path) -> set[str]:
    with sqlite3.connect(path) as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return names & EXPECTED


def ssl_rows(n: int) -> list[dict]:
    return [{"ts": TS + i, "version": "TLSv12", "server_name": f"h{i}.example"} for i in range(n)]


@pytest.fixture
def fresh(tmp_path):
    path = str(tmp_path / "w.db")
    s = Store(path)
    s.ensure_schema()
    yield s, path
    s.close()


def test_an_empty_store_loses_its_indexes_for_the_load_and_gets_them_back(fresh):
    store, path = fresh
    assert app_indexes(path) == EXPECTED
    assert store.deferred_app_indexes() is True
    assert app_indexes(path) == set()
    store.build_app_indexes()
    assert app_indexes(path) == EXPECTED


def test_a_store_with_records_keeps_its_indexes(fresh):
    store, path = fresh
    out = StoreOutput(store)
    for rec in ssl_rows(3):
        out.log("ssl", rec, CONN)
    out.close()
    assert store.deferred_app_indexes() is False
    assert app_indexes(path) == EXPECTED


def _mid_load(store, path, *, bulk: bool) -> set[str]:
    """The protocol indexes while a background writer is loading (some rows in, not closed)."""
    import time

    out = StoreOutput(store, batch_rows=7, background=True, bulk=bulk)
    for rec in ssl_rows(50):
        out.log("ssl", rec, CONN)
    out.flush()
    deadline = time.monotonic() + 60
    with sqlite3.connect(path) as db:
        while not db.execute("SELECT count(*) FROM ssl").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    during = app_indexes(path)
    out.close()
    assert app_indexes(path) == EXPECTED
    return during


def test_only_a_bulk_load_defers_the_indexes(fresh):
    """An ingest's writer (bulk) loads without them; the recorder's, which runs for weeks, never."""
    store, path = fresh
    assert _mid_load(store, path, bulk=False) == EXPECTED
    fresh_path = path + ".2"
    other = Store(fresh_path)
    try:
        other.ensure_schema()
        assert _mid_load(other, fresh_path, bulk=True) == set()
    finally:
        other.close()


def test_the_record_writer_ends_with_every_index(fresh):
    store, path = fresh
    out = StoreOutput(store, batch_rows=7, background=True, bulk=True)
    for rec in ssl_rows(50):
        out.log("ssl", rec, CONN)
    out.close()
    assert out.rows_written["ssl"] == 50
    assert app_indexes(path) == EXPECTED
    with sqlite3.connect(path) as db:  # the index is the table's: a lookup by uid uses it
        plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN SELECT id FROM ssl WHERE uid = 'x'"))
    assert "ix_ssl_uid" in plan


def test_a_load_that_did_not_end_is_repaired_at_open(fresh):
    store, path = fresh
    store.deferred_app_indexes()  # as a writer killed mid-load leaves the store
    again = Store(path)
    try:
        again.ensure_schema()
    finally:
        again.close()
    assert app_indexes(path) == EXPECTED
