"""The live detection's window (``analysis.behaviour.evaluate(..., since_ns=)``) on SQLite and
PostgreSQL: over a window that holds everything it finds what the whole store gives; the recorder's
closed connections that wait out the close delay (``open_flows`` rows of a ``"... closed"``
stream, ``recorder.live_flows``) count as flows until their final row is stored, once; the
rotation's interim records of connections still open do not."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from analysis.behaviour import evaluate, load_behaviour_rules
from recorder.core.pipeline.ingest import ingest
from recorder.core.schema import flows
from recorder.core.store import Store
from recorder.core.store.listing import CLOSED_STREAM_SUFFIX
from tests.analysis.behaviour.traffic import T0, Capture

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
SCANNER, TARGET = "10.0.0.66", "10.0.0.20"


def _findings(alerts) -> set[tuple]:
    return {(a.signature_id, a.src_ip, a.dest_ip, a.dest_port, a.signature) for a in alerts}


def _scan_store(db_url: str, tmp_path: Path) -> Store:
    cap = Capture()
    for i, port in enumerate(range(1000, 1030)):  # 30 refused ports
        cap.rejected(i * 0.05, SCANNER, TARGET, 50000 + i, port)
    store = Store(db_url)
    store.ensure_schema()
    ingest([cap.write(tmp_path / "scan.pcap")], store, parsers=False)
    return store


def _move_rejected(store: Store, stream: str) -> int:
    """The REJ flows out of ``flows`` into ``open_flows`` under ``stream`` (as the recorder stores
    closed connections before they end)."""
    cols = ", ".join(c.name for c in flows.columns if c.name != "id")
    with store.engine.begin() as conn:
        n = conn.execute(sa.text(f"INSERT INTO open_flows (stream, as_of_ns, {cols}) SELECT :s, 0, {cols} "
                                 "FROM flows WHERE conn_state = 'REJ'"), {"s": stream}).rowcount
        conn.execute(sa.text("DELETE FROM flows WHERE conn_state = 'REJ'"))
    return n


def _port_scans(store: Store, rules) -> list:
    return [a for a in evaluate(store, rules, since_ns=int(T0 * NS) - NS) if a.signature.startswith("Port scan")]


def test_window_holding_everything_finds_what_the_whole_store_gives(db_url):
    rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour")])
    with Store(db_url) as store:
        store.ensure_schema()
        ingest([str(ROOT / "captures" / "demo-breach.pcap")], store)
        first = min(c["first_ts_ns"] for c in store.captures())
        whole = evaluate(store, rules)
        windowed = evaluate(store, rules, since_ns=first)
        later = evaluate(store, rules, since_ns=max(c["last_ts_ns"] for c in store.captures()) + NS)
    assert whole and _findings(windowed) == _findings(whole)
    assert later == []  # nothing in a window after the last packet


def test_closed_connections_count_until_their_flow_is_stored(db_url, tmp_path):
    rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour" / "port-scan.yaml")])
    with _scan_store(db_url, tmp_path) as store:
        final = _port_scans(store, rules)
        assert len(final) == 1 and "30" in final[0].signature, final
        # before they end, as the recorder stores them: the same finding
        assert _move_rejected(store, "test/eth0" + CLOSED_STREAM_SUFFIX) == 30
        early = _port_scans(store, rules)
        assert _findings(early) == _findings(final)
        assert [(a.ts_ns, a.uid) for a in early] == [(a.ts_ns, a.uid) for a in final]


def test_closed_connections_and_their_final_rows_count_once(db_url, tmp_path):
    rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour" / "port-scan.yaml")])
    with _scan_store(db_url, tmp_path) as store:
        final = _port_scans(store, rules)
        cols = ", ".join(c.name for c in flows.columns if c.name != "id")
        with store.engine.begin() as conn:  # the closed rows stay while the final rows are stored
            conn.execute(sa.text(f"INSERT INTO open_flows (stream, as_of_ns, {cols}) SELECT :s, 0, {cols} "
                                 "FROM flows WHERE conn_state = 'REJ'"), {"s": "test/eth0" + CLOSED_STREAM_SUFFIX})
        assert _findings(_port_scans(store, rules)) == _findings(final)  # "30 ports", not 60 connections


def test_interim_records_of_open_connections_are_not_flows(db_url, tmp_path):
    rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour" / "port-scan.yaml")])
    with _scan_store(db_url, tmp_path) as store:
        assert _move_rejected(store, "test/eth0") == 30  # the rotation's snapshot: not seen
        assert _port_scans(store, rules) == []
        assert list(store.query_flows(open_only=True))  # `flows --open` shows these
        with store.engine.begin() as conn:  # the closed ones are not listed as open
            conn.execute(sa.text("UPDATE open_flows SET stream = :s"), {"s": "test/eth0" + CLOSED_STREAM_SUFFIX})
        assert list(store.query_flows(open_only=True)) == []
