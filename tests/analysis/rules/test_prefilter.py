"""The fast-pattern prefilter: Suricata's fast pattern choice, candidates per buffer, and on ET Open
over real payloads: never a rule missed that match_payload accepts, same answer with and without
Hyperscan."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.rules import Variables, load_classifications, load_rules, parse_rule
from analysis.rules.match import match_payload
from analysis.rules.prefilter import Prefilter, fast_pattern, pattern_strength
from tests.helpers import REFERENCE, need

CLASSTYPES = load_classifications()


def rule(options: str, sid: int = 1):
    return parse_rule(f"alert tcp any any -> any any ({options} sid:{sid};)", Variables(), CLASSTYPES)


# --- fast pattern choice ---------------------------------------------------------------------------

def test_pattern_strength():
    assert pattern_strength(b"abc") == 9  # three distinct letters
    assert pattern_strength(b"aaa") == 5  # 3 + two repeats
    assert pattern_strength(b"|!") == 8  # printable non-letters
    assert pattern_strength(b"\x00\x01\xff") == 12  # the three special bytes count as printable
    assert pattern_strength(b"\x80\x90") == 12


def test_explicit_fast_pattern_wins():
    assert fast_pattern(rule('content:"longer one"; content:"x"; fast_pattern;')) == ("payload", b"x", False)


def test_fast_pattern_chop():
    r = rule('content:"User-Agent|3a| evil"; fast_pattern:12,4;')
    assert fast_pattern(r) == ("payload", b"evil", False)


def test_longest_then_strongest_then_first():
    assert fast_pattern(rule('content:"abc"; content:"abcdef";'))[1] == b"abcdef"
    assert fast_pattern(rule('content:"aaaa"; content:"abcd";'))[1] == b"abcd"  # same length, more varied
    assert fast_pattern(rule('content:"abcd"; content:"efgh";'))[1] == b"abcd"  # full tie: the first


def test_buffer_priority():
    # application buffers before the payload, even when shorter; http.method after the payload
    r = rule('content:"a long payload pattern"; http.uri; content:"/x.php";')
    assert fast_pattern(r) == ("http.uri", b"/x.php", False)
    r = rule('http.method; content:"POST"; pkt_data; content:"abc";')
    assert fast_pattern(r) == ("payload", b"abc", False)


def test_negated_only_when_nothing_else():
    assert fast_pattern(rule('content:!"a very long negated"; content:"pos";'))[1] == b"pos"
    assert fast_pattern(rule('content:!"neg";'))[1] == b"neg"
    assert fast_pattern(rule("pcre:\"/x/\";")) is None
    assert fast_pattern(rule('content:"ABC"; nocase;')) == ("payload", b"ABC", True)


# --- candidates -------------------------------------------------------------------------------------

def test_candidates():
    rules = [
        rule('content:"Evil"; nocase;', 1),  # 0
        rule('content:"GET "; content:"cmd.exe";', 2),  # 1: fast pattern cmd.exe
        rule('pcre:"/x+/";', 3),  # 2: no content: always, when payload is present
        rule('content:!"good";', 4),  # 3: negated fast pattern: always
        rule('http.uri; content:"/admin";', 5),  # 4
        rule('dns.query; dotprefix; content:".example.com"; endswith;', 6),  # 5: transformed buffer
        rule('content:"|00|";', 7),  # 6: a one-byte pattern
        rule('http.uri; pcre:"/a/";', 8),  # 7: no content, needs http.uri
    ]
    for use in (True, False):
        pf = Prefilter(rules, use_automaton=use)
        assert pf.candidates({"payload": b"this is EVIL"}) == [0, 2, 3]
        assert pf.candidates({"payload": b"GET /cmd.exe\x00"}) == [1, 2, 3, 6]
        assert pf.candidates({"http.uri": b"/ADMIN/x"}) == [7]  # /admin without nocase: case as written
        assert pf.candidates({"http.uri": b"/admin/x"}) == [4, 7]
        assert pf.candidates({"payload": b"..eViL..evil\x00\x00"}) == [0, 2, 3, 6]  # each rule once
        assert pf.candidates({"http.uri": None, "dns.query": b"example.com"}) == [5]
        assert pf.candidates({}) == []
    assert Prefilter(rules).uses_automaton


def test_candidates_are_a_superset_of_matches():
    rules = [rule('content:"ab"; content:"cd"; distance:0;', 1), rule('content:"xyz"; nocase; depth:3;', 2)]
    pf = Prefilter(rules)
    for payload in (b"abcd", b"cdab", b"XYZ..", b"..xyz", b""):
        cands = set(pf.candidates({"payload": payload}))
        for i, r in enumerate(rules):
            if match_payload(r, {"payload": payload}):
                assert i in cands


# zero-laden bytes: runs of zeros of any length among a few other bytes
_ZEROISH = st.lists(st.one_of(st.sampled_from([b"A", b"B", b"a"]), st.integers(1, 12).map(lambda n: b"\x00" * n)),
                    max_size=10).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(patterns=st.lists(_ZEROISH.filter(bool), min_size=1, max_size=6), data=_ZEROISH)
def test_shortened_zero_runs_keep_exactly_the_patterns_that_occur(patterns, data):
    """Runs of zeros are cut before the scan (prefilter module doc): the candidates are still
    exactly the rules whose pattern occurs, with and without Hyperscan."""
    rules = [rule(f'content:"|{p.hex(" ")}|";', i + 1) for i, p in enumerate(patterns)]
    expected = [i for i, p in enumerate(patterns) if p in data]
    for use in (True, False):
        assert Prefilter(rules, use_automaton=use).candidates({"payload": data}) == expected


def test_zero_runs_are_cut_to_one_longer_than_the_patterns_have():
    pf = Prefilter([rule('content:"|00 00 00 41|";', 1), rule('content:"|41 00 00 00 00 00|";', 2)])
    assert pf.candidates({"payload": b"\x00" * 10000 + b"A"}) == [0]
    assert pf.candidates({"payload": b"A" + b"\x00" * 10000}) == [1]
    assert pf.candidates({"payload": b"A" + b"\x00" * 4}) == []  # five zeros are needed
    inner = Prefilter([rule('content:"A|00 00 00|A";', 1)])
    assert inner.candidates({"payload": b"A\x00\x00\x00A"}) == [0]
    assert inner.candidates({"payload": b"A\x00\x00\x00\x00A"}) == []  # not cut to three


# --- ET Open over real payloads ----------------------------------------------------------------------

def _sv_payloads(limit: int) -> list[bytes]:
    out: list[bytes] = []
    for pcap in sorted((REFERENCE / "suricata-verify").glob("*/*.pcap")):
        with open(pcap, "rb") as fh:
            try:
                reader = dpkt.pcap.UniversalReader(fh)
            except (ValueError, dpkt.NeedData):
                continue
            if reader.datalink() != dpkt.pcap.DLT_EN10MB:
                continue
            for _ts, frame in reader:
                try:
                    l4 = dpkt.ethernet.Ethernet(frame).data.data
                except (dpkt.UnpackError, AttributeError, IndexError):
                    continue
                if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) and l4.data:
                    out.append(bytes(l4.data))
                    if len(out) >= limit:
                        return out
    return out


@pytest.fixture(scope="module")
def et_payload_rules():
    need(REFERENCE / "et-open", "the ET Open ruleset")
    need(REFERENCE / "suricata-verify", "suricata-verify cases")
    rules = [r for r in load_rules([REFERENCE / "et-open"]).rules if r.matches and r.buffers == {"payload"}]
    return rules, _sv_payloads(400)


def test_et_open_prefilter_never_misses_a_match(et_payload_rules):
    rules, payloads = et_payload_rules
    assert len(rules) > 2000 and len(payloads) >= 200
    pf = Prefilter(rules)
    fallback = Prefilter(rules, use_automaton=False)
    matched = 0
    for payload in payloads:
        bufs = {"payload": payload}
        cands = pf.candidates(bufs)
        assert cands == fallback.candidates(bufs)
        cand_set = set(cands)
        for i, r in enumerate(rules):
            if i not in cand_set and match_payload(r, bufs):
                pytest.fail(f"sid {r.sid} matches a payload its fast pattern {fast_pattern(r)} did not select")
        matched += sum(1 for i in cands if match_payload(rules[i], bufs))
    assert matched > 0
