"""DNS over UDP and TCP (recorder.core.apps.dns): crafted messages, Zeek's reference traces, fuzz."""

from __future__ import annotations

import json
import struct
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.dispatch import AppLayer
from recorder.core.apps.dns import DNS, DNSTCP, Malformed, decode_netbios_name, plausible, read_name
from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.flow.flowmeter import FlowMeter
from tests.helpers import REFERENCE, need
from tests.helpers.dns import PTR_Q, QUERY, RESPONSE, message, qname, question, rr
from tests.helpers.zeek import norm as _norm
from tests.helpers.zeek import parse_zeek as _parse_zeek

APP = REFERENCE / "zeek-app"
DNS_KEYS = ["id.orig_h", "id.resp_h", "id.resp_p", "proto", "trans_id", "query", "qtype_name", "rcode_name",
            "answers"]  # compare_app.KEYS["dns.log"]


# -- crafted messages (built by tests.helpers.dns) ----------------------------------------------

def conn(resp_p: int = 53, proto: str = "udp") -> Conn:
    c = Conn("10.0.0.1", 40000, "10.0.0.53", resp_p, proto, 100.0)
    c.uid = "Ctest"
    return c


def run(parser_cls, msgs: list[tuple[bool, bytes, float]], resp_p: int = 53) -> ListOutput:
    out = ListOutput()
    p = parser_cls(conn(resp_p, parser_cls.transport), out)
    for is_orig, data, ts in msgs:
        p.data(is_orig, data, ts)
    p.end(200.0)
    return out


def test_query_and_response_make_one_record() -> None:
    q = message(0x1234, QUERY, [question("WWW.Example.com")])
    r = message(0x1234, RESPONSE, [question("WWW.Example.com")],
                [rr(PTR_Q, 5, qname("cdn.example.net"), 60),
                 rr(qname("cdn.example.net"), 1, bytes([93, 184, 216, 34]), 30),
                 rr(qname("cdn.example.net"), 28, bytes(15) + b"\x01", 30)])
    out = run(DNS, [(True, q, 100.0), (False, r, 100.25)])
    (rec,) = out.logs("dns")
    assert rec["trans_id"] == 0x1234 and rec["query"] == "www.example.com"
    assert rec["qtype_name"] == "A" and rec["qclass_name"] == "C_INTERNET"
    assert rec["rcode_name"] == "NOERROR" and rec["RD"] and rec["RA"] and not rec["AA"]
    assert rec["answers"] == ["cdn.example.net", "93.184.216.34", "::1"]
    assert rec["TTLs"] == [60.0, 30.0, 30.0]
    assert abs(rec["rtt"] - 0.25) < 1e-9 and rec["ts"] == 100.0
    assert rec["uid"] == "Ctest" and rec["id.resp_p"] == 53 and rec["proto"] == "udp"
    assert out.names == [("93.184.216.34", "www.example.com", "dns"), ("::1", "www.example.com", "dns")]


def test_record_renderings() -> None:
    txt = bytes([5]) + b"hello" + bytes([3]) + b"a\x01c"
    rrsig = struct.pack("!HBBIIIH", 1, 8, 2, 300, 0, 0, 7) + b"\0"  # signer: the root
    dnskey = struct.pack("!HBB", 257, 3, 13) + b"key"
    ds = struct.pack("!HBB", 1, 8, 2) + b"digest"
    sshfp = bytes([1, 1]) + bytes.fromhex("a6b95f9e")
    srv = struct.pack("!HHH", 0, 5, 5060) + qname("sip.example.com")
    mx = struct.pack("!H", 10) + qname("mail.example.com")
    soa = qname("ns1.example.com") + qname("hostmaster.example.com") + bytes(20)
    nsec = qname("b.example.com") + b"\x00\x01\x40"
    loc = bytes([0, 18, 21, 19]) + bytes(12)
    answers = [rr(PTR_Q, 16, txt), rr(PTR_Q, 46, rrsig), rr(PTR_Q, 48, dnskey), rr(PTR_Q, 43, ds),
               rr(PTR_Q, 44, sshfp), rr(PTR_Q, 33, srv), rr(PTR_Q, 15, mx), rr(PTR_Q, 6, soa),
               rr(PTR_Q, 47, nsec), rr(PTR_Q, 29, loc), rr(PTR_Q, 50, b"x"), rr(PTR_Q, 51, b"x"),
               rr(PTR_Q, 11, b"wks"), rr(PTR_Q, 13, b"\x01a\x01b"), rr(PTR_Q, 4242, b"??")]
    r = message(7, RESPONSE, [question("a.example.com", 255)], answers)
    (rec,) = run(DNS, [(False, r, 1.0)]).logs("dns")
    assert rec["answers"] == [
        "TXT 5 hello TXT 3 a\\x01c", "RRSIG 1 <Root>", "DNSKEY 13", "DS 8 2", "SSHFP: a6b95f9e",
        "sip.example.com", "mail.example.com", "ns1.example.com", "NSEC a.example.com b.example.com",
        "LOC:  18 21 19", "NSEC3", "NSEC3PARAM", "<unknown type=4242>"]  # WKS and HINFO: no text
    assert rec["qtype_name"] is None  # a reply alone: Zeek takes only the query name from it
    assert rec["query"] == "a.example.com" and rec["rtt"] is None


def test_unmatched_query_and_reply_are_logged_at_end() -> None:
    q = message(1, QUERY, [question("lost.example.com")])
    r = message(2, RESPONSE | 3, [question("gone.example.com")], auth=[rr(qname("example.com"), 6, bytes(22))])
    out = run(DNS, [(True, q, 1.0), (False, r, 2.0)])
    recs = sorted(out.logs("dns"), key=lambda x: x["trans_id"])
    assert [x["trans_id"] for x in recs] == [1, 2]
    assert recs[0]["query"] == "lost.example.com" and recs[0]["rcode"] is None
    assert recs[1]["rcode_name"] == "NXDOMAIN" and recs[1]["query"] is None and not recs[1]["rejected"]


def test_transaction_ids_match_in_zeek_order() -> None:
    msgs = [(True, message(5, QUERY, [question("one.test")]), 1.0),
            (True, message(6, QUERY, [question("two.test")]), 1.1),
            (True, message(5, QUERY, [question("three.test")]), 1.2),
            (False, message(6, RESPONSE, [question("two.test")], [rr(PTR_Q, 1, b"\x01\x02\x03\x04")]), 1.3),
            (False, message(5, RESPONSE, [question("one.test")], [rr(PTR_Q, 1, b"\x05\x06\x07\x08")]), 1.4)]
    recs = run(DNS, msgs).logs("dns")
    got = [(x["trans_id"], x["query"], x["answers"]) for x in recs]
    assert got == [(6, "two.test", ["1.2.3.4"]), (5, "one.test", ["5.6.7.8"]), (5, "three.test", None)]


def test_refused_reply_with_nothing_in_it_is_rejected() -> None:
    q = message(9, 0x2000, [question("zone.test", 6)])  # NOTIFY
    r = message(9, 0xA005, [question("zone.test", 6)])
    (rec,) = run(DNS, [(True, q, 1.0), (False, r, 1.5)]).logs("dns")
    assert rec["rejected"] and rec["rcode_name"] == "REFUSED" and rec["opcode_name"] == "notify"


def test_compression_loop_and_garbage_do_not_raise() -> None:
    loop = struct.pack("!HHHHHH", 1, QUERY, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert not plausible(loop)
    out = run(DNS, [(True, loop, 1.0), (True, b"\x00" * 5, 1.1), (False, b"\xff" * 40, 1.2)])
    assert all(r["query"] is None for r in out.logs("dns"))
    # a pointer chain that runs forward and back is followed, not looped
    msg = bytes(12) + b"\x03abc\xc0\x12" + b"\x03def\x00"
    assert read_name(msg, 12) == ("abc.def", 18)


def test_netbios_names_are_decoded() -> None:
    encoded = "".join(chr(65 + (b >> 4)) + chr(65 + (b & 15)) for b in b"WORKSTATION    \x00")
    assert decode_netbios_name(encoded) == "WORKSTATION"
    q = message(3, 0x0110, [question(encoded, 33)])
    (rec,) = run(DNS, [(True, q, 1.0)], resp_p=137).logs("dns")
    assert rec["query"] == "workstation" or rec["query"] == "WORKSTATION"
    assert rec["qtype_name"] == "NBSTAT"


def nb_name(name: str) -> str:
    return "".join(chr(65 + (b >> 4)) + chr(65 + (b & 15)) for b in name.ljust(15).encode() + b"\x00")


def test_netbios_registrations_and_positive_answers_name_hosts() -> None:
    nb = lambda *addrs: b"".join(b"\x60\x00" + bytes(int(x) for x in a.split(".")) for a in addrs)  # noqa: E731
    register = message(1, 0x2910, [question(nb_name("FILESRV01"), 32)],
                       addl=[rr(qname(nb_name("FILESRV01")), 32, nb("10.0.0.9"))])
    answer = message(2, 0x8500, [], answers=[rr(qname(nb_name("PRINTER")), 32, nb("10.0.0.20", "10.0.1.20"))])
    negative = message(3, 0x8503, [], answers=[rr(qname(nb_name("GHOST")), 32, nb("10.0.0.66"))])
    query = message(4, 0x0110, [question(nb_name("ASKED"), 32)], addl=[rr(qname(nb_name("ASKED")), 32, nb("10.0.0.77"))])
    unset = message(5, 0x8500, [], answers=[rr(qname(nb_name("NOADDR")), 32, nb("0.0.0.0"))])
    out = run(DNS, [(True, register, 1.0), (False, answer, 2.0), (False, negative, 3.0), (True, query, 4.0),
                    (False, unset, 5.0)], resp_p=137)
    assert out.names == [("10.0.0.9", "FILESRV01", "netbios"), ("10.0.0.20", "PRINTER", "netbios"),
                         ("10.0.1.20", "PRINTER", "netbios")]
    assert run(DNS, [(False, answer, 2.0)], resp_p=53).names == []  # NB records mean nothing in DNS


def test_dns_over_tcp_frames_messages_across_segments() -> None:
    q = message(77, QUERY, [question("tcp.example.com", 252)])
    r = message(77, RESPONSE, [question("tcp.example.com", 252)], [rr(PTR_Q, 1, b"\x0a\x00\x00\x01")])
    wire_q = struct.pack("!H", len(q)) + q
    wire_r = struct.pack("!H", len(r)) + r
    assert DNSTCP.detect(wire_q, True, conn(53, "tcp"))
    out = run(DNSTCP, [(True, wire_q[:5], 1.0), (True, wire_q[5:], 1.0), (False, wire_r[:1], 1.2),
                       (False, wire_r[1:], 1.3)])
    (rec,) = out.logs("dns")
    assert rec["proto"] == "tcp" and rec["qtype_name"] == "AXFR" and rec["answers"] == ["10.0.0.1"]


def test_dns_over_tcp_resynchronises_after_a_gap() -> None:
    wires = []
    for i in range(6):
        q = message(100 + i, QUERY, [question(f"host{i}.example.com")])
        r = message(100 + i, RESPONSE, [question(f"host{i}.example.com")], [rr(PTR_Q, 1, bytes([10, 0, 0, i]))])
        wires.append((struct.pack("!H", len(q)) + q, struct.pack("!H", len(r)) + r))
    events = []
    for i, (wq, wr) in enumerate(wires):
        if i == 2:  # the middle of the third query and of its answer are lost
            events += [(True, wq[:7], 1.0 + i), ("gap", True, 9), (True, wq[16:], 1.0 + i),
                       (False, wr[:20], 1.1 + i), ("gap", False, 5), (False, wr[25:], 1.1 + i)]
        else:
            events += [(True, wq, 1.0 + i), (False, wr, 1.1 + i)]
    out = ListOutput()
    p = DNSTCP(conn(53, "tcp"), out)
    for ev in events:
        if ev[0] == "gap":
            p.gap(ev[1], ev[2], 0.0)
        else:
            p.data(ev[0], ev[1], ev[2])
    p.end(10.0)
    got = {r["query"]: r["answers"] for r in out.logs("dns")}
    assert {q: got.get(q) for q in ("host3.example.com", "host4.example.com", "host5.example.com")} == \
        {f"host{i}.example.com": [f"10.0.0.{i}"] for i in (3, 4, 5)}


# -- fuzz ------------------------------------------------------------------------------------------

VALID = message(0x4242, RESPONSE, [question("fuzz.example.com")],
                [rr(PTR_Q, 5, qname("x.example.com")), rr(PTR_Q, 1, b"\x01\x02\x03\x04"),
                 rr(PTR_Q, 16, b"\x03abc"), rr(PTR_Q, 46, bytes(18) + b"\xc0\x0c")],
                [rr(qname("example.com"), 6, qname("ns.example.com") + bytes(20))])


@settings(max_examples=500, deadline=None)  # the typed (compiled) module: more examples
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=6),
       st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_fuzz_never_raises(chunks, flips) -> None:
    mutated = bytearray(VALID)
    for i, v in flips:
        mutated[i] = v
    msgs = [(o, d, 1.0) for o, d in chunks] + [(False, bytes(mutated), 2.0)]
    for cls in (DNS, DNSTCP):
        out = ListOutput()
        p = cls(conn(53, cls.transport), out)
        for is_orig, data, ts in msgs:
            cls.detect(data, is_orig, p.conn)
            p.data(is_orig, data, ts)
            p.gap(is_orig, 3, ts)
        p.end(3.0)
        for rec in out.logs("dns"):
            assert isinstance(rec["trans_id"], int)
            assert rec["answers"] is None or all(isinstance(a, str) for a in rec["answers"])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 220))
def test_fuzz_name_reading_stays_in_bounds(data, off) -> None:
    """Names read at any offset of any bytes: a name and an offset inside the message, or
    Malformed; never an IndexError or a C-level overrun (the typed offsets are bounds-checked)."""
    try:
        name, end = read_name(data, off)
    except Malformed:
        pass
    else:
        assert isinstance(name, str) and 0 < end <= len(data)
    assert plausible(bytearray(data)) == plausible(data)  # not only bytes


# -- Zeek's reference traces ------------------------------------------------------------------------

def dns_records(trace) -> list[dict]:
    out = ListOutput()
    app = AppLayer(out, [DNS, DNSTCP])
    meter = FlowMeter(lambda rows: None)
    dec = Decoder()
    for raw in read_batches(trace):
        d = dec.decode(raw)
        meter.add(raw, d, None, dec.tunnels)
        app.feed(raw, d)
    meter.finish()
    app.finish()
    assert not app.failures
    return out.logs("dns")


def test_reference_traces_agree_with_zeek() -> None:
    manifest = json.loads(need(APP / "manifest.json", "Zeek app reference traces").read_text())
    total = hit = 0
    per_trace = {}
    for m in manifest:
        if "dns.log" not in m["logs"]:
            continue
        ours = Counter(tuple(_norm(r.get(k)) for k in DNS_KEYS) for r in dns_records(APP / m["trace"]))
        base = _parse_zeek((APP / m["logs"]["dns.log"]).read_text(errors="replace"))
        h = 0
        for b in base:
            k = tuple(_norm(b.get(k)) for k in DNS_KEYS)
            if ours[k] > 0:
                ours[k] -= 1
                h += 1
        per_trace[m["trace"]] = (h, len(base))
        total += len(base)
        hit += h
    assert total >= 20
    # Measured 24 of 26. The two misses: dns53.pcap (a lone reply between two port-53 hosts, which
    # Zeek orients from the reply and the flow meter from the first packet) and dns-txt-multiple.pcap
    # (Zeek's baseline has no query fields: its query packet carries a bad checksum, which Zeek's
    # test run drops and we, as Zeek with -C, keep).
    assert hit >= 24, per_trace
    for trace in ("dnssec__nsec.pcap", "dns__dynamic-update.pcap", "dns-two-responses.pcap", "dns__sshfp-trunc.pcap"):
        assert per_trace[trace][0] == per_trace[trace][1], trace


def test_dns_over_tcp_through_the_dispatcher(tmp_path) -> None:
    from tests.helpers.packets import CLI, PA, SRV, close, handshake, tcp, write

    q = message(99, QUERY, [question("tcp.example.org", 28)])
    r = message(99, RESPONSE, [question("tcp.example.org", 28)], [rr(PTR_Q, 28, bytes(15) + b"\x02")])
    wq, wr = struct.pack("!H", len(q)) + q, struct.pack("!H", len(r)) + r
    pkts = handshake(sport=41000, dport=53) + [(0.1, tcp(CLI, 41000, SRV, 53, 1001, PA, wq)),
                                               (0.2, tcp(SRV, 53, CLI, 41000, 5001, PA, wr[:7])),
                                               (0.21, tcp(SRV, 53, CLI, 41000, 5008, PA, wr[7:]))]
    pkts += close(41000, 53, 1001 + len(wq), 5001 + len(wr), 0.3)
    out = ListOutput()
    app = AppLayer(out, [DNS, DNSTCP])
    meter = FlowMeter(lambda rows: None)
    dec = Decoder()
    for raw in read_batches(write(tmp_path / "t.pcap", pkts)):
        d = dec.decode(raw)
        meter.add(raw, d, None, dec.tunnels)
        app.feed(raw, d)
    app.finish()
    (rec,) = out.logs("dns")
    assert (rec["proto"], rec["query"], rec["qtype_name"], rec["answers"]) == ("tcp", "tcp.example.org", "AAAA", ["::2"])
    assert rec["id.orig_h"] == CLI and rec["id.resp_p"] == 53
    assert dict(app.services()) == {rec["uid"]: ["dns"]}
