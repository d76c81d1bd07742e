"""MAC addresses of local hosts (recorder.core.decode.mactable) through an ingest into `hosts`."""

from __future__ import annotations

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
