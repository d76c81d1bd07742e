"""The signature engine on captures built in code: flow state, flowbits, thresholds, pass,
retransmissions, midstream sessions, application buffers, and the alerts' EVE fields."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP

from analysis.rules.engine import Engine
from recorder.core.flow.flowid import flow_uid
from tests.analysis.behaviour.traffic import T0, Capture
from tests.analysis.rules.rule_traffic import (
    CLIENT,
    SERVER,
    client_hello,
    one_session,
    replay,
    rules_from,
    sids,
)


def test_payload_content_alert_has_suricata_fields(tmp_path):
    cap = one_session([(b"USER root\r\n", b"uid=0(root) gid=0(root)\r\n")])
    alerts = replay(tmp_path, cap, 'alert tcp any any -> any any (msg:"id check returned root"; '
                                   'content:"uid=0|28|root|29|"; classtype:bad-unknown; sid:2100498; rev:7;)\n')
    assert sids(alerts) == [2100498]
    a = alerts[0]
    # attributed to the packet that matched: the server's reply
    assert (a.src_ip, a.src_port, a.dest_ip, a.dest_port, a.proto) == (SERVER, 4444, CLIENT, 40000, "tcp")
    assert a.direction == "to_client"
    assert a.severity == 2 and a.category == "Potentially Bad Traffic" and a.rev == 7
    eve = a.to_eve()
    assert eve["event_type"] == "alert" and eve["proto"] == "TCP"
    assert eve["alert"]["signature"] == "id check returned root"
    assert eve["community_id"].startswith("1:")
    assert eve["pcap_cnt"] == 5  # SYN, SYN-ACK, ACK, request, reply
    # the flow's uid is the flow meter's (first packet time, canonical key)
    assert a.uid == flow_uid(_key(6, CLIENT, 40000, SERVER, 4444), round(T0 * 1e9))


def _key(proto, a, ap, b, bp):
    import ipaddress
    ia = (0xFFFF << 32) | int(ipaddress.ip_address(a))
    ib = (0xFFFF << 32) | int(ipaddress.ip_address(b))
    return (proto, ia, ap, ib, bp, 0) if (ia, ap) <= (ib, bp) else (proto, ib, bp, ia, ap, 0)


@pytest.mark.parametrize(("flow", "expected"), [
    ("flow:to_server,established;", [1]), ("flow:to_client;", []), ("flow:established,from_client;", [1]),
    ("flow:not_established;", []), ("", [1]),
])
def test_flow_direction_and_state(tmp_path, flow, expected):
    cap = one_session([(b"GET secret", b"nothing here")])
    assert sids(replay(tmp_path, cap, f'alert tcp any any -> any any (content:"secret"; {flow} sid:1;)\n')) == expected


def test_header_addresses_ports_and_bidirectional(tmp_path):
    cap = one_session([(b"ping!", b"pong!")])
    text = (f'alert tcp {CLIENT} any -> {SERVER} 4444 (content:"ping"; sid:1;)\n'
            f'alert tcp {SERVER} any -> {CLIENT} any (content:"ping"; sid:2;)\n'
            f'alert tcp {SERVER} any <> {CLIENT} any (content:"ping"; sid:3;)\n'
            f'alert tcp any any -> any !4444 (content:"ping"; sid:4;)\n'
            f'alert udp any any -> any any (content:"ping"; sid:5;)\n')
    assert sorted(sids(replay(tmp_path, cap, text))) == [1, 3]


def test_retransmission_is_not_inspected_twice(tmp_path):
    cap = one_session([(b"EVIL payload", b"ok")])
    original = [p for p in cap.packets if b"EVIL" in p[1]][0]
    cap.packets.append((original[0] + 0.001, original[1]))  # the same segment again
    assert sids(replay(tmp_path, cap, 'alert tcp any any -> any any (content:"EVIL"; sid:1;)\n')) == [1]


def segments(*parts: bytes, skip: int | None = None) -> Capture:
    """A handshake, then the client's data in ``parts`` (segment ``skip`` lost on the way)."""
    cap = Capture()
    c = 1000
    cap.add(0.0, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=4444, flags="S", seq=c - 1))
    cap.add(0.01, IP(src=SERVER, dst=CLIENT) / TCP(sport=4444, dport=40000, flags="SA", seq=4999, ack=c))
    cap.add(0.02, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=4444, flags="A", seq=c, ack=5000))
    for i, part in enumerate(parts):
        if i != skip:
            cap.add(0.1 + i / 10, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=4444, flags="PA", seq=c,
                                                                       ack=5000) / part)
        c += len(part)
    return cap


def test_a_content_split_across_segments_matches_once_on_the_segment_that_completes_it(tmp_path):
    evil = 'alert tcp any any -> any any (content:"EVIL"; sid:1;)\n'
    alerts = replay(tmp_path, segments(b"xx EV", b"IL yy", b"zz"), evil)
    assert sids(alerts) == [1] and alerts[0].pcap_cnt == 5
    # contents of one rule in different segments, the fast pattern first or last
    rule = ('alert tcp any any -> any any (flow:established,to_server; content:"USER "; content:"PASS "; '
            'distance:0; sid:2;)\n')
    assert sids(replay(tmp_path, segments(b"USER bob\r\n", b"NOOP\r\n", b"PASS secret\r\n"), rule)) == [2]
    # a match wholly inside one segment is not reported again by the segments after it
    assert sids(replay(tmp_path, segments(b"EVIL", b"more", b"data"), evil)) == [1]


def test_stream_matching_keeps_to_what_suricata_would_stream(tmp_path):
    cap = segments(b"xx EV", b"IL yy")
    # tcp-pkt rules and contents tied to the start of the buffer see packets only
    assert sids(replay(tmp_path, cap, 'alert tcp-pkt any any -> any any (content:"EVIL"; sid:1;)\n')) == []
    anchored = 'alert tcp any any -> any any (content:"xx"; depth:2; content:"EVIL"; sid:1;)\n'
    assert sids(replay(tmp_path, cap, anchored)) == []
    # a lost segment between the halves: no match across the gap
    assert sids(replay(tmp_path, segments(b"xx EV", b"??", b"IL yy", skip=1),
                       'alert tcp any any -> any any (content:"EVIL"; sid:1;)\n')) == []
    # a tcp-stream rule matches across segments, and not on a packet alone before the handshake
    assert sids(replay(tmp_path, cap, 'alert tcp-stream any any -> any any (content:"EVIL"; sid:3;)\n')) == [3]


def test_data_on_a_syn_is_inspected_but_not_taken_as_the_streams(tmp_path):
    cap = Capture()  # (suricata-verify util-action-03) the SYN's data comes again after the handshake
    cap.add(0.0, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=80, flags="S", seq=0) / b"Hi all!")
    cap.add(0.1, IP(src=SERVER, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA", seq=0, ack=1))
    cap.add(0.2, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=80, flags="PA", seq=0, ack=1) / b"Hi all!")
    assert sids(replay(tmp_path, cap, 'alert tcp any any -> any any (content:"Hi all"; sid:1;)\n')) == [1, 1]


def test_flowbits_set_then_isset_in_the_same_flow_only(tmp_path):
    cap = Capture()
    cap.session(0, CLIENT, SERVER, 40000, 21, [(b"USER admin\r\n", b"331 ok\r\n"), (b"RETR secret.db\r\n", b"150\r\n")])
    cap.session(5, CLIENT, SERVER, 40001, 21, [(b"RETR secret.db\r\n", b"150\r\n")])
    text = ('alert tcp any any -> any any (content:"USER admin"; flowbits:set,admin; flowbits:noalert; sid:1;)\n'
            'alert tcp any any -> any any (content:"RETR"; flowbits:isset,admin; sid:2;)\n'
            'alert tcp any any -> any any (content:"RETR"; flowbits:isnotset,admin; sid:3;)\n')
    alerts = replay(tmp_path, cap, text)
    assert sorted((a.signature_id, a.src_port) for a in alerts) == [(2, 40000), (3, 40001)]


def test_threshold_limit_and_detection_filter(tmp_path):
    cap = Capture()
    for i in range(5):
        cap.session(i, CLIENT, SERVER, 40000 + i, 22, [(b"SSH-2.0-bruteforce", b"")])
    text = ('alert tcp any any -> any 22 (content:"bruteforce"; threshold:type limit,track by_src,count 2,seconds 60; sid:1;)\n'
            'alert tcp any any -> any 22 (content:"bruteforce"; detection_filter:track by_src,count 3,seconds 60; sid:2;)\n'
            'alert tcp any any -> any 22 (content:"bruteforce"; threshold:type threshold,track by_dst,count 2,seconds 60; sid:3;)\n'
            'alert tcp any any -> any 22 (content:"bruteforce"; threshold:type both,track by_src,count 3,seconds 60; sid:4;)\n')
    got = sids(replay(tmp_path, cap, text))
    assert got.count(1) == 2  # the first two in the window
    assert got.count(2) == 2  # every match after the third
    assert got.count(3) == 2  # every second match
    assert got.count(4) == 1  # once, at the third


def test_pass_rule_silences_the_packet(tmp_path):
    cap = one_session([(b"hello trusted world", b""), (b"hello world", b"")])
    text = ('alert tcp any any -> any any (content:"hello"; sid:1;)\n'
            'pass tcp any any -> any any (content:"trusted"; sid:2;)\n')
    alerts = replay(tmp_path, cap, text)
    assert sids(alerts) == [1]


def test_packet_keywords_dsize_flags_icmp(tmp_path):
    cap = one_session([(b"12345", b"")])
    cap.add(10, IP(src=CLIENT, dst=SERVER) / ICMP(type=8, code=0) / b"ping")
    text = ('alert tcp any any -> any any (dsize:5; sid:1;)\n'
            'alert tcp any any -> any any (flags:S; sid:2;)\n'
            'alert tcp any any -> any any (flags:SA; sid:3;)\n'
            'alert icmp any any -> any any (itype:8; icode:0; sid:4;)\n'
            'alert icmp any any -> any any (itype:0; sid:5;)\n'
            'alert ip any any -> any any (ip_proto:1; sid:6;)\n')
    assert sorted(sids(replay(tmp_path, cap, text))) == [1, 2, 3, 4, 6]


def test_midstream_session_gets_packet_rules_but_no_established(tmp_path):
    cap = Capture()
    cap.add(0, IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=4444, flags="PA", seq=10, ack=10) / b"EVIL")
    cap.add(0.1, IP(src=SERVER, dst=CLIENT) / TCP(sport=4444, dport=40000, flags="A", seq=10, ack=14))
    text = ('alert tcp any any -> any any (content:"EVIL"; sid:1;)\n'
            'alert tcp any any -> any any (content:"EVIL"; flow:established; sid:2;)\n')
    assert sids(replay(tmp_path, cap, text)) == [1]


def test_dns_query_buffer(tmp_path):
    cap = Capture()
    cap.add(0, IP(src=CLIENT, dst="10.0.0.53") / UDP(sport=5353, dport=53)
            / DNS(id=7, rd=1, qd=DNSQR(qname="Update.Evil-Example.com")))
    cap.add(1, IP(src=CLIENT, dst="10.0.0.53") / UDP(sport=5354, dport=53)
            / DNS(id=8, rd=1, qd=DNSQR(qname="www.example.org")))
    text = ('alert dns any any -> any any (msg:"evil"; dns.query; content:"evil-example"; nocase; sid:1;)\n'
            'alert dns any any -> any any (msg:"exact case"; dns_query; content:"evil-example"; sid:2;)\n'
            'alert udp any any -> any any (msg:"payload"; content:"example"; sid:3;)\n')
    alerts = replay(tmp_path, cap, text)
    assert sorted(sids(alerts)) == [1, 3]  # the name keeps its case; the payload has it as labels
    dns_alert = next(a for a in alerts if a.signature_id == 1)
    assert dns_alert.app_proto == "dns" and dns_alert.tx_id == 0 and dns_alert.src_port == 5353


def test_engine_counts_packets_and_messages(tmp_path):
    cap = one_session([(b"abc", b"def")])
    engine = Engine(rules_from(tmp_path, 'alert tcp any any -> any any (content:"zzz"; sid:1;)\n'))
    assert engine.run([cap.write(tmp_path / "t.pcap")]) == []
    assert engine.stats.packets == len(cap.packets)


def test_tls_sni_and_ja3_buffers(tmp_path):
    cap = one_session([(client_hello(b"login.evil.example"), b"")], dport=443)
    text = ('alert tls any any -> any any (msg:"sni"; tls.sni; content:"evil.example"; endswith; sid:1;)\n'
            'alert tls any any -> any any (msg:"sni legacy"; tls_sni; content:"good.example"; sid:2;)\n'
            'alert tls any any -> any any (msg:"ja3"; ja3.hash; bsize:32; sid:3;)\n'
            'alert tls any any -> any any (msg:"to client"; flow:to_client; tls.sni; content:"evil"; sid:4;)\n')
    alerts = replay(tmp_path, cap, text)
    assert sorted(sids(alerts)) == [1, 3]
    assert all(a.app_proto == "tls" and a.direction == "to_server" for a in alerts)


def test_app_protocol_of_a_packet_rule_comes_from_the_parsers(tmp_path):
    # FTP on a port nobody expects: the parsers recognise it from its bytes
    cap = one_session([(b"", b"220 ftp ready\r\n"), (b"USER anonymous\r\n", b"331 ok\r\n"),
                       (b"RETR /etc/passwd\r\n", b"150 ok\r\n")], dport=2121)
    text = ('alert ftp any any -> any any (msg:"ftp retr"; content:"RETR"; sid:1;)\n'
            'alert smtp any any -> any any (msg:"not smtp"; content:"RETR"; sid:2;)\n')
    alerts = replay(tmp_path, cap, text)
    assert sids(alerts) == [1]
    assert alerts[0].app_proto == "ftp"


def test_a_rule_naming_only_a_protocol_matches_every_packet_from_its_detection(tmp_path):
    """`alert http any any -> any any (sid:1;)` has no buffer to inspect: as in Suricata it is a
    packet rule matching each packet of the flow from the one whose payload made the protocol
    known (the request here), in both directions; never before, and never on another protocol."""
    cap = one_session([(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
                      dport=80)
    alerts = replay(tmp_path, cap, 'alert http any any -> any any (msg:"http"; sid:1;)\n'
                                   'alert http any any -> any any (msg:"to server"; flow:to_server; sid:2;)\n'
                                   'alert dns any any -> any any (msg:"dns"; sid:3;)\n')
    # request, response, the client's FIN, the server's FIN, the last ACK
    assert sids(alerts).count(1) == 5
    assert sids(alerts).count(2) == 3
    assert 3 not in sids(alerts)
    assert min(a.pcap_cnt for a in alerts) == 4  # the request; not the handshake before it
    assert {a.app_proto for a in alerts} == {"http"}
