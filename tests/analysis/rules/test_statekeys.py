"""The ET Open keywords beyond one packet: xbits (per host and address pair, across flows, with
expiry), flowint, stream_size, tls.version, tag and base64_decode/base64_data, on captures built
in code, with the meaning Suricata's rule documentation gives them."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.rules.engine import EngineInspector
from analysis.rules.match import base64_rfc4648, match_payload
from analysis.rules.model import RuleSyntaxError
from analysis.rules.parser import parse_rule
from analysis.rules.variables import Variables
from tests.analysis.behaviour.traffic import Capture
from tests.analysis.rules.rule_traffic import (
    CLIENT,
    SERVER,
    client_hello,
    one_session,
    replay,
    rules_from,
    sids,
)

OTHER = "10.0.0.6"


def test_xbits_cross_flows_by_host_and_pair_and_expire(tmp_path):
    cap = Capture()
    cap.session(0, CLIENT, SERVER, 40000, 80, [(b"GET /stage1", b"ok")])
    cap.session(5, CLIENT, SERVER, 40001, 80, [(b"GET /stage2", b"ok")])  # same pair, another flow
    cap.session(6, OTHER, SERVER, 40002, 80, [(b"GET /stage2", b"ok")])  # another client
    cap.session(60, CLIENT, SERVER, 40003, 80, [(b"GET /stage2", b"ok")])  # after the 15 s expiry
    text = ('alert tcp any any -> any any (content:"stage1"; xbits:set,s1,track ip_src,expire 15; noalert; sid:1;)\n'
            'alert tcp any any -> any any (content:"stage1"; xbits:set,p1,track ip_pair,expire 15; noalert; sid:2;)\n'
            'alert tcp any any -> any any (content:"stage2"; xbits:isset,s1,track ip_src; sid:3;)\n'
            'alert tcp any any -> any any (content:"stage2"; xbits:isset,p1,track ip_pair; sid:4;)\n'
            'alert tcp any any -> any any (content:"ok"; xbits:isset,s1,track ip_dst; sid:5;)\n'
            'alert tcp any any -> any any (content:"stage2"; xbits:isnotset,s1,track ip_src; sid:6;)\n')
    got = sorted((a.signature_id, a.src_port if a.src_ip != SERVER else a.dest_port) for a in replay(tmp_path, cap, text))
    # flow 40000: the reply's destination is the flagged client (sid 5); flow 40001: all three
    assert got == [(3, 40001), (4, 40001), (5, 40000), (5, 40001), (6, 40002), (6, 40003)]


def test_xbits_rule_set_is_not_sharded_flowbits_one_is(tmp_path):
    with_x = rules_from(tmp_path, 'alert tcp any any -> any any (xbits:set,a,track ip_src; sid:1;)\n')
    without = rules_from(tmp_path, 'alert tcp any any -> any any (flowbits:set,a; sid:1;)\n')
    assert not hasattr(EngineInspector(with_x), "shard")
    assert hasattr(EngineInspector(without), "shard")


def test_flowint_counts_per_flow(tmp_path):
    cap = one_session([(b"GET a.dll", b"ok"), (b"GET b.dll", b"ok"), (b"GET c.dll", b"ok")])
    cap.session(9, CLIENT, SERVER, 40009, 4444, [(b"GET a.dll", b"ok")])
    text = ('alert tcp any any -> any any (content:".dll"; flowint:n,+,1; noalert; sid:1;)\n'
            'alert tcp any any -> any any (content:".dll"; flowint:n,>=,3; sid:2;)\n'
            'alert tcp any any -> any any (content:"ok"; flowint:n,notset; sid:3;)\n')
    assert sids(replay(tmp_path, cap, text)) == [2]


def test_stream_size_is_next_seq_minus_isn(tmp_path):
    # the server speaks first (a shell prompt): on its first data the client has sent only its SYN
    cap = one_session([(b"", b"PS C:\\> "), (b"whoami\r\n", b"corp\\admin\r\n")])
    text = ('alert tcp any any -> any any (flow:to_client; content:"PS "; stream_size:client,<,2; sid:1;)\n'
            'alert tcp any any -> any any (flow:to_client; content:"admin"; stream_size:client,<,2; sid:2;)\n'
            'alert tcp any any -> any any (flow:to_server; content:"whoami"; stream_size:client,=,9; '
            'stream_size:server,=,9; sid:3;)\n'
            'alert tcp any any -> any any (content:"whoami"; stream_size:either,>,1000; sid:4;)\n')
    assert sorted(sids(replay(tmp_path, cap, text))) == [1, 3]


def test_tls_version_of_each_side_hello(tmp_path):
    cap = one_session([(client_hello(b"a.example"), b"")], dport=443)
    text = ('alert tls any any -> any any (flow:to_server; tls.version:1.2; content:"a.example"; sid:1;)\n'
            'alert tls any any -> any any (flow:to_server; tls.version:1.0; content:"a.example"; sid:2;)\n'
            'alert tcp any any -> any any (tls.version:0x0303; tls.sni; content:"a.example"; sid:3;)\n')
    assert sorted(sids(replay(tmp_path, cap, text))) == [1, 3]


def test_base64_decode_and_data(tmp_path):
    blob = base64.b64encode(b"<!DOCTYPE x SYSTEM 'file:///etc/passwd'>")
    cap = one_session([(b"POST /ews <m:Data>" + blob + b"</m:Data>", b"ok")])
    text = ('alert tcp any any -> any any (content:"<m:Data>"; base64_decode:bytes 300, offset 0, relative; '
            'base64_data; content:"<!DOCTYPE"; content:"SYSTEM"; distance:0; sid:1;)\n'
            'alert tcp any any -> any any (content:"<m:Data>"; base64_decode:offset 0,relative; base64_data; '
            'content:"<!DOCTYPE"; startswith; sid:2;)\n'
            'alert tcp any any -> any any (content:"<m:Data>"; base64_decode:offset 4,relative; base64_data; '
            'content:"<!DOCTYPE"; startswith; sid:3;)\n'
            'alert tcp any any -> any any (content:"POST"; base64_decode; base64_data; content:"DOCTYPE"; sid:4;)\n')
    # 3: four characters later the decoding is out of step; 4: "POST " is not base64 past "POST"
    assert sorted(sids(replay(tmp_path, cap, text))) == [1, 2]


def test_base64_rfc4648_stops_at_the_first_other_character():
    assert base64_rfc4648(b"aGVsbG8=garbage") == b"hello"
    assert base64_rfc4648(b"aGVsbA") == b"hell"
    assert base64_rfc4648(b"!aGVs") == b""


@pytest.mark.parametrize("option,reason", [
    ("xbits:set,a", "track"), ("xbits:bogus,a,track ip_src", "unknown command"),
    ("xbits:set,a,track ip_src,expire x", "unknown option"), ("stream_size:server,~,5", "stream_size"),
    ("tls.version:2.9", "tls.version"), ("tag:flow,5,packets", "session or host"),
    ("tag:session,5,frames", "tag expects"), ("base64_data; content:\"x\"", "base64_decode before"),
    ("base64_decode:bytes 0", "bad option"), ("flowint:n,+", "operator"),
])
def test_bad_values_are_rejected_with_the_reason(option, reason):
    with pytest.raises(RuleSyntaxError, match=reason):
        parse_rule(f"alert tcp any any -> any any ({option}; sid:1;)", Variables.with_overrides({}), {})


def test_tag_is_accepted_and_changes_no_alert(tmp_path):
    cap = one_session([(b"evil", b"ok")])
    text = 'alert tcp any any -> any any (content:"evil"; tag:session,5,packets; sid:1;)\n'
    assert sids(replay(tmp_path, cap, text)) == [1]


def test_dce_iface_opnum_and_stub_data_over_an_smb_pipe(tmp_path):
    from tests.core.apps.windows_traffic import SVCCTL, psexec_script, write_capture
    cap = write_capture(tmp_path / "psexec.pcap", psexec_script())
    text = (f'alert smb any any -> any any (msg:"CreateServiceW"; dce_iface:{SVCCTL}; dce_opnum:12; sid:1;)\n'
            f'alert tcp any any -> any any (dce_iface:{SVCCTL},<3; dce_opnum:12-19; dce_stub_data; '
            'content:"P|00|S|00|E|00|X|00|"; sid:2;)\n'
            f'alert tcp any any -> any any (dce_iface:{SVCCTL}; dce_opnum:6; sid:3;)\n'  # QueryServiceStatus: not called
            'alert tcp any any -> any any (dce_iface:12345778-1234-abcd-ef00-0123456789ac; sid:4;)\n'  # samr
            f'alert tcp any any -> any any (dce_iface:{SVCCTL},>2; sid:5;)\n'
            'alert tcp any any -> any any (flow:to_client; dce_stub_data; content:"|00 00 00 00|"; sid:6;)\n')
    alerts = match_captures_on(cap, rules_from(tmp_path, text))
    got = sorted((a.signature_id, a.tx_id) for a in alerts)
    # sid 2: CreateServiceW (call 3) and StartServiceW (call 4); sid 6 once per answered call
    assert [g for g in got if g[0] in (1, 2, 3, 4, 5)] == [(1, 3), (2, 3), (2, 4)]
    assert sorted(t for s, t in got if s == 6) == [1, 2, 3, 4, 5][1:]  # responses to calls 2-5 carry a stub


def match_captures_on(cap, rules):
    from analysis.rules.engine import match_captures
    return match_captures([str(cap)], rules)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=40), st.binary(max_size=12))
def test_fuzz_base64_and_dce_matches_never_raise(payload, iface, opnum):
    text = ('alert tcp any any -> any any (content:"a"; base64_decode:bytes 50,offset 1,relative; base64_data; '
            'content:"b"; sid:1;)')
    b64 = parse_rule(text, Variables.with_overrides({}), {})
    dce = parse_rule('alert tcp any any -> any any (dce_iface:367abb81-9844-35f1-ad32-98f038001003,<3; '
                     'dce_opnum:1,4-9; dce_stub_data; content:"x"; sid:2;)', Variables.with_overrides({}), {})
    match_payload(b64, {"payload": payload})
    match_payload(dce, {"dce.iface": iface, "dce.opnum": opnum, "dce.stub_data": payload})


def test_byte_extract_names_a_value_for_byte_test(tmp_path):
    hb = b"\x18\x03\x02\x00\x03\x01\x40\x00"  # heartbeat record of 3 bytes claiming 0x4000 bytes
    fine = b"\x18\x03\x02\x00\x13\x01\x00\x10" + b"P" * 16
    cap = one_session([(hb, b"ok")])
    cap.session(5, CLIENT, SERVER, 40005, 4444, [(fine, b"ok")])
    cap.session(9, CLIENT, SERVER, 40009, 4444, [(b"LEN=7;7", b"LEN=7;8")])
    text = ('alert tcp any any -> any any (content:"|18 03|"; depth:2; byte_extract:2,3,record_len; '
            'byte_test:2,>,record_len,6; sid:1;)\n'
            'alert tcp any any -> any any (content:"LEN="; byte_extract:1,0,n,relative,string,dec; '
            'byte_test:1,=,n,1,relative,string,dec; sid:2;)\n')
    assert sorted((a.signature_id, a.src_port) for a in replay(tmp_path, cap, text)) == [(1, 40000), (2, 40009)]
    with pytest.raises(RuleSyntaxError, match="byte_test value"):  # a name not extracted before
        parse_rule("alert tcp any any -> any any (byte_test:2,>,nope,0; sid:1;)", Variables.with_overrides({}), {})
