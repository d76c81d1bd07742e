"""Flow identities: community_id against the spec's vector, deterministic uids."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np

from recorder.core.flow.flowid import community_id, connection_uids, flow_uid, key_hashes, uid_of, uids_of
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def v4(text: str) -> int:
    return (0xFFFF << 32) | int(ipaddress.IPv4Address(text))


def test_community_id_matches_the_spec_example_both_ways():
    a, b = v4("128.232.110.120"), v4("66.35.250.204")
    assert community_id(6, a, 34855, b, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id(6, b, 80, a, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_uid_depends_on_key_and_start():
    key = (6, v4("10.0.0.1"), 1234, v4("10.0.0.2"), 80, 0)
    assert flow_uid(key, 1) == flow_uid(key, 1)
    assert flow_uid(key, 1) != flow_uid(key, 2)
    assert flow_uid(key, 1).startswith("C")


def test_same_input_same_uids_every_run(tmp_path):
    runs = []
    for name in ("a.db", "b.db"):
        store = Store(str(tmp_path / name))
        store.ensure_schema()
        ingest([str(DEMO)], store)
        runs.append(sorted((f["uid"], f["orig_h"], f["resp_p"]) for f in store.query_flows()))
        store.close()
    assert runs[0] == runs[1] and len(runs[0]) == 18
    assert len({u for u, _, _ in runs[0]}) == 18


def test_stored_uid_is_flow_uid_of_the_canonical_key(tmp_path):
    store = Store(str(tmp_path / "u.db"))
    store.ensure_schema()
    ingest([str(DEMO)], store)
    tcp = [f for f in store.query_flows() if f["proto"] == "tcp"]
    assert tcp
    for f in tcp:
        o = (int(ipaddress.ip_address(f["orig_h"])) | (0xFFFF << 32), f["orig_p"])
        r = (int(ipaddress.ip_address(f["resp_h"])) | (0xFFFF << 32), f["resp_p"])
        (a, ap), (b, bp) = sorted((o, r))
        assert f["uid"] == flow_uid((6, a, ap, b, bp, 0), f["ts_ns"])


def test_one_uid_arithmetic_for_the_meter_and_the_dispatcher():
    """uid_of (the dispatcher's, one connection) and uids_of (its batches) give connection_uids
    (the meter's), so conn.log and the protocol logs join."""
    rng = np.random.default_rng(3)
    key = rng.integers(0, 2**63, size=(20, 6), dtype=np.int64).astype(np.uint64)
    start = rng.integers(0, 2**62, size=20, dtype=np.int64)
    h = key_hashes(key)
    assert [uid_of(int(a), int(b)) for a, b in zip(h, start)] == connection_uids(key, start) == uids_of(h, start)

