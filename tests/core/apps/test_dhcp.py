"""DHCP (recorder.core.apps.dhcp): leases bind MACs and host names to addresses; fuzz."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.dhcp import DHCP as DHCPParser
from recorder.core.apps.records import LOGS
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from recorder.core.store.logs import hosts

LAPTOP, SERVER_MAC, PRINTER = "02:00:00:00:00:0a", "02:00:00:00:00:01", "02:00:00:00:00:0b"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def dhcp(t: float, mac: str, src: str, dst: str, sport: int, dport: int, op: int, xid: int, options: list,
         yiaddr: str = "0.0.0.0", ciaddr: str = "0.0.0.0"):
    p = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
         / BOOTP(op=op, xid=xid, chaddr=mac_bytes(LAPTOP if op == 2 else mac), yiaddr=yiaddr, ciaddr=ciaddr)
         / DHCP(options=[*options, "end"]))
    p.time = t
    return p


def exchange() -> list:
    """A lease, a refusal, an INFORM, then the laptop on its leased address."""
    client = dict(src="0.0.0.0", dst="255.255.255.255", sport=68, dport=67, op=1)
    server = dict(src="10.1.0.1", dst="255.255.255.255", sport=67, dport=68, op=2)
    fqdn = b"\x05\x00\x00" + b"\x06laptop\x04corp\x07example\x00"  # flags E|S, wire-format name
    packets = [
        dhcp(1.0, LAPTOP, **client, xid=7, options=[("message-type", "discover"), ("hostname", b"LAPTOP-7")]),
        dhcp(1.1, SERVER_MAC, **server, xid=7, yiaddr="10.1.0.50", options=[("message-type", "offer")]),
        dhcp(1.2, LAPTOP, **client, xid=7, options=[("message-type", "request"), ("requested_addr", "10.1.0.50"),
                                                    ("hostname", b"LAPTOP-7"), ("client_FQDN", fqdn)]),
        dhcp(1.3, SERVER_MAC, **server, xid=7, yiaddr="10.1.0.50", options=[("message-type", "ack")]),
        # a request that is refused binds nothing
        dhcp(2.0, LAPTOP, **client, xid=8, options=[("message-type", "request"), ("hostname", b"OTHER")]),
        dhcp(2.1, SERVER_MAC, **server, xid=8, options=[("message-type", "nak")]),
        # a printer with a static address asks only for its options
        dhcp(3.0, PRINTER, src="10.1.0.9", dst="10.1.0.1", sport=68, dport=67, op=1, xid=9, ciaddr="10.1.0.9",
             options=[("message-type", "inform"), ("hostname", b"printer-2f")]),
        # the laptop at work on its new address
        Ether(src=LAPTOP) / IP(src="10.1.0.50", dst="10.1.0.9") / UDP(sport=5000, dport=9100) / b"print",
    ]
    packets[-1].time = 4.0
    return packets


def test_an_ack_binds_the_clients_mac_and_names_to_the_leased_address(tmp_path):
    cap = tmp_path / "dhcp.pcap"
    wrpcap(str(cap), exchange())
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        ingest([str(cap)], store)
        by_addr = {h["addr"]: h for h in hosts(store)}
        assert by_addr["10.1.0.50"]["names"] == ["LAPTOP-7", "laptop.corp.example"]
        assert by_addr["10.1.0.50"]["mac"] == LAPTOP
        assert by_addr["10.1.0.9"]["names"] == ["printer-2f"]
        assert by_addr["10.1.0.9"]["mac"] == PRINTER  # from DHCP and from its own frames: one MAC
        assert all("OTHER" not in h["names"] for h in by_addr.values())
        assert "dhcp" in by_addr["10.1.0.1"]["services"]
        from recorder.core.store.listing import query_log

        assert sorted((r["addr"], r["mac"], r["source"]) for r in query_log(store, "macs")) == [
            ("10.1.0.1", SERVER_MAC, "ethernet"), ("10.1.0.50", LAPTOP, "dhcp"), ("10.1.0.50", LAPTOP, "ethernet"),
            ("10.1.0.9", PRINTER, "dhcp"), ("10.1.0.9", PRINTER, "ethernet")]


def test_dhcp_writes_no_log_of_its_own():
    assert DHCPParser.logs == {} and "dhcp" not in LOGS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=400), max_size=6), st.booleans())
def test_fuzz_never_raises(datagrams, cookie):
    out = ListOutput()
    p = DHCPParser(Conn("0.0.0.0", 68, "255.255.255.255", 67, "udp", 0.0), out)
    for i, d in enumerate(datagrams):
        if cookie and len(d) >= 240:
            d = d[:236] + b"\x63\x82\x53\x63" + d[240:]
        DHCPParser.detect(d, True, p.conn)
        p.data(i % 2 == 0, d, float(i))
    p.end(10.0)
