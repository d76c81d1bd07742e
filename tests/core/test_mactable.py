"""MAC addresses of local hosts (recorder.core.decode.mactable) through an ingest into `hosts`."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from recorder.core.decode.mactable import mac_str
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from recorder.core.store.logs import hosts

HOST, ROUTER, NIC2 = "02:00:00:00:00:05", "02:00:00:00:00:01", "02:00:00:00:00:77"


def packet(t: float, src_mac: str, src: str, dst: str):
    p = Ether(src=src_mac, dst="02:00:00:00:00:99") / IP(src=src, dst=dst) / UDP(sport=40000, dport=9999) / b"x"
    p.time = t
    return p


def test_migration_0005_adds_and_drops_the_macs_table(tmp_path):
    import sqlalchemy as sa
    from alembic import command

    store = Store(str(tmp_path / "old.db"))
    with store.engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0004")
    store.ensure_schema()  # an older database is migrated
    assert store.revision() == store.head() >= "0005"
    with store.engine.connect() as conn:
        insp = sa.inspect(conn)
        assert {c["name"] for c in insp.get_columns("macs")} == {
            "id", "capture_id", "ts_ns", "addr", "addr_a", "mac", "source", "last_seen_ns"}
    with store.engine.begin() as conn:
        command.downgrade(store._alembic_config(conn), "0004")
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("macs")
    store.close()


def test_mac_str():
    assert mac_str(0x0200000000FF) == "02:00:00:00:00:ff"


def test_local_hosts_get_the_macs_their_packets_came_from(tmp_path):
    cap = tmp_path / "l2.pcap"
    wrpcap(str(cap), [
        packet(1.0, HOST, "10.0.0.5", "8.8.8.8"),
        packet(1.1, ROUTER, "8.8.8.8", "10.0.0.5"),  # a remote address: the router's MAC, not kept
        packet(2.0, NIC2, "192.168.1.7", "8.8.8.8"),
        packet(3.0, HOST, "192.168.1.7", "8.8.8.8"),  # a second MAC for one address: both listed
        packet(4.0, HOST, "10.0.0.5", "8.8.8.8"),
    ])
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        ingest([str(cap)], store)
        by_addr = {h["addr"]: h["mac"] for h in hosts(store)}
        assert by_addr == {"10.0.0.5": HOST, "8.8.8.8": None, "192.168.1.7": f"{HOST},{NIC2}"}
        assert [h["mac"] for h in hosts(store, host="10.0.0.0/8")] == [HOST]
        from recorder.core.store.listing import query_log

        rows = sorted((r["addr"], r["mac"], r["ts"], r["last_seen"]) for r in query_log(store, "macs"))
        assert rows == [("10.0.0.5", HOST, 1.0, 4.0), ("192.168.1.7", HOST, 3.0, 3.0), ("192.168.1.7", NIC2, 2.0, 2.0)]


def test_no_macs_without_parsers_or_ethernet(tmp_path):
    cap = tmp_path / "raw.pcap"
    wrpcap(str(cap), [IP(src="10.0.0.5", dst="8.8.8.8") / UDP() / b"x"])  # raw IP link type
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        ingest([str(cap)], store)
        assert [h["mac"] for h in hosts(store)] == [None, None]
    cap = tmp_path / "eth.pcap"
    wrpcap(str(cap), [packet(1.0, HOST, "10.0.0.5", "8.8.8.8")])
    with Store(str(tmp_path / "flows-only.db")) as store:
        store.ensure_schema()
        ingest([str(cap)], store, parsers=False)  # --no-parsers: flows only
        assert [h["mac"] for h in hosts(store)] == [None, None]


def test_take_new_gives_each_pair_once(tmp_path):
    from recorder.core.capio.pcapio import read_batches
    from recorder.core.decode.decode import Decoder
    from recorder.core.decode.mactable import MacTable
    from recorder.core.flow.flowid import LocalNets

    cap = tmp_path / "l2.pcap"
    wrpcap(str(cap), [packet(1.0, HOST, "10.0.0.5", "8.8.8.8"), packet(2.0, NIC2, "10.0.0.5", "8.8.8.8"),
                      packet(3.0, HOST, "10.0.0.5", "8.8.8.8")])
    table, dec = MacTable(LocalNets()), Decoder()
    taken = []
    for raw in read_batches(str(cap), batch_size=1):  # as the recorder: a flush after each batch
        table.add(raw, dec.decode(raw), 7)
        taken.append([(r["addr"], r["mac"], r["ts"], cid) for r, cid in table.take_new()])
    assert taken == [[("10.0.0.5", HOST, 1.0, 7)], [("10.0.0.5", NIC2, 2.0, 7)], []]
    assert [r["last_seen"] for r, _ in table.records()] == [3.0, 2.0]  # records() still gives every pair


@st.composite
def mac_rows(draw):
    """Rows of a batch: a few addresses (IPv4-mapped and IPv6) and MACs, so pairs repeat; each
    row's packet has its Ethernet source MAC at bytes 6..11, at some offset of ``data``."""
    addrs = draw(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), min_size=1, max_size=4))
    macs = draw(st.lists(st.integers(0, 2**48 - 1), min_size=1, max_size=4))
    rows = draw(st.lists(st.tuples(st.sampled_from(addrs), st.sampled_from(macs), st.integers(0, 2**62)),
                         min_size=1, max_size=60))
    data, off = bytearray(), []
    for _, mac, _ in rows:
        data += b"\0" * draw(st.integers(0, 3))
        off.append(len(data))
        data += b"\xff" * 6 + mac.to_bytes(6, "big") + b"\x08\x00"
    u64 = lambda v: np.array(v, dtype=np.uint64)  # noqa: E731
    return (bytes(data), np.array(off, dtype=np.int64), u64([a[0] for a, _, _ in rows]),
            u64([a[1] for a, _, _ in rows]), np.array([t for _, _, t in rows], dtype=np.int64)), rows


@settings(max_examples=300, deadline=None)
@given(batch=mac_rows())
def test_pairs_of_a_batch_by_hash_table_equal_the_sort(batch):
    """The compiled grouping (a hash table) and the numpy one (a sort) give each distinct
    (address, MAC) with its first and last time, in (address, MAC) order, as counted row by row."""
    from recorder.core.decode.mactable import _group, _pairs_compiled, _pairs_numpy

    args, rows = batch
    want: dict[tuple[int, int, int], list[int]] = {}
    for (hi, lo), mac, ts in rows:
        span = want.setdefault((hi, lo, mac), [ts, ts])
        span[0], span[1] = min(span[0], ts), max(span[1], ts)
    expect = [(*k, *want[k]) for k in sorted(want)]
    for pairs in (_pairs_compiled, _pairs_numpy):
        assert list(zip(*(a.tolist() for a in pairs(*args)))) == expect
    # a table with as few slots as there are rows (no free slot to spare): collisions probe on
    n = len(rows)
    bits = max(1, (n - 1).bit_length())
    slots, u, span = np.full(1 << bits, -1, dtype=np.int32), np.zeros((3, n), np.uint64), np.zeros((2, n), np.int64)
    data, off, hi, lo, ts = args
    k = _group(*map(memoryview, (data, off, hi, lo, ts, slots)), 64 - bits, *map(memoryview, (*u, *span)))
    got = sorted(zip(u[0, :k].tolist(), u[1, :k].tolist(), u[2, :k].tolist(), span[0, :k].tolist(), span[1, :k].tolist()))
    assert got == expect
