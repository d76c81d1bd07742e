"""Payload inspection with Suricata's semantics: each keyword on crafted buffers (cases written from
the Suricata rule docs and its content-inspection engine), then suricata-verify cases whose rules
only inspect packet payload, replayed packet by packet and compared with their expected alert counts."""

from __future__ import annotations

import hashlib
import json

import dpkt
import pytest

from analysis.rules import Variables, load_classifications, load_rules, parse_rule
from analysis.rules.match import RECURSION_LIMIT, inspect_buffer, match_payload
from analysis.rules.transforms import apply_transforms
from tests.helpers import REFERENCE, need

CLASSTYPES = load_classifications()


def rule(options: str, proto: str = "tcp"):
    return parse_rule(f"alert {proto} any any -> any any ({options} sid:1;)", Variables(), CLASSTYPES)


def hit(options: str, payload: bytes | None, **buffers: bytes | None) -> bool:
    bufs: dict[str, bytes | None] = {k.replace("_", "."): v for k, v in buffers.items()}
    if payload is not None:
        bufs["payload"] = payload
    return match_payload(rule(options), bufs)


# --- content, offset, depth, nocase ----------------------------------------------------------------

def test_plain_content_and_case():
    assert hit('content:"evil";', b"an evil packet")
    assert not hit('content:"evil";', b"an EVIL packet")
    assert hit('content:"evil"; nocase;', b"an EViL packet")
    assert hit('content:"|45 56|il";', b"EVil")


def test_offset_and_depth():
    # docs: depth 3 looks in the first 3 bytes, offset skips bytes from the start
    assert hit('content:"abc"; depth:3;', b"abcdef")
    assert not hit('content:"abc"; depth:3;', b"xabcdef")
    assert hit('content:"def"; offset:3; depth:6;', b"abcdef")
    assert not hit('content:"abc"; offset:1;', b"abcdef")
    assert hit('content:"abc"; offset:1;', b"abcabc")
    # depth counts from the offset (Suricata adds the offset to the depth): bytes 3..5 here
    assert hit('content:"def"; offset:3; depth:3;', b"abcdefg")
    assert hit('content:"|00 01 00 01|"; offset:4; depth:4;', b"\x44\x49\x81\x80\x00\x01\x00\x01")
    assert not hit('content:"g"; offset:3; depth:3;', b"abcdefg")
    assert hit('content:"g"; offset:3; depth:4;', b"abcdefg")


def test_startswith_endswith():
    assert hit('content:"GET"; startswith;', b"GET /")
    assert not hit('content:"GET"; startswith;', b" GET /")
    assert hit('content:"exe"; endswith;', b"file.exe")
    assert not hit('content:"exe"; endswith;', b"file.exe ")
    # an earlier occurrence that is not at the end is skipped, the next one tried
    assert hit('content:"ab"; endswith;', b"ab..ab")


def test_missing_and_empty_buffers():
    assert not hit('content:"a";', None)
    assert not match_payload(rule('content:"a";'), {"payload": None})
    assert not hit('http.uri; content:"/x";', b"/x")
    assert hit('http.uri; content:"/x";', None, http_uri=b"/x")
    assert not hit('content:"a";', b"")
    assert hit('content:!"a";', b"")
    assert match_payload(rule("msg:\"no payload keywords\";"), {})


# --- distance, within, backtracking ----------------------------------------------------------------

def test_distance_within_from_the_docs():
    # alert-distance-within-1: "DullBoy" one byte after the first content, within 7 bytes
    opts = 'content:"AllWorkAndNoPlayMakesWill"; content:"DullBoy"; distance:1; within:7;'
    assert hit(opts, b"AllWorkAndNoPlayMakesWill DullBoy")
    assert not hit(opts, b"AllWorkAndNoPlayMakesWillDullBoy")  # distance 1 skips the D
    assert not hit(opts, b"AllWorkAndNoPlayMakesWill  DullBoy")  # 8 bytes needed


def test_distance_zero_and_negative():
    assert hit('content:"one"; content:"two"; distance:0;', b"one two")
    assert not hit('content:"one"; content:"two"; distance:0;', b"two one")
    # negative distance looks back before the end of the previous match
    assert hit('content:"BC"; content:"AB"; distance:-3; within:2;', b"ABC")
    assert not hit('content:"BC"; content:"AB"; distance:-2;', b"ABC")


def test_within_retries_previous_occurrence():
    # the first "a" is not followed by "b" within 1, the second is: Suricata retries the first content
    assert hit('content:"a"; content:"b"; distance:0; within:1;', b"axxab")
    assert hit('content:"a"; content:"b"; within:2;', b"a..a b")


def test_distance_counts_from_the_end_of_the_previous_match():
    # (distance alone sets no WITHIN_NEXT in Suricata: a later "a" could only narrow the window)
    assert hit('content:"a"; content:"b"; distance:3;', b"axxxb")
    assert not hit('content:"a"; content:"b"; distance:3;', b"xxb a")


def test_chain_of_three_backtracks_through_the_middle():
    opts = 'content:"A"; content:"B"; distance:0; within:1; content:"C"; distance:0; within:1;'
    assert hit(opts, b"ABxABC")
    assert not hit(opts, b"ABxAxBC")


def test_negated_content():
    assert hit('content:"GET"; content:!"HTTP/1.1";', b"GET / HTTP/1.0")
    assert not hit('content:"GET"; content:!"HTTP/1.1";', b"GET / HTTP/1.1")
    # relative negation: "b" must not follow "a" within 2 bytes, but any "a" will do
    assert hit('content:"a"; content:!"b"; distance:0; within:2;', b"abac")
    assert not hit('content:"a"; content:!"b"; distance:0; within:2;', b"ab xab")
    # a negated window that does not fit in the buffer matches
    assert hit('content:"end"; content:!"x"; distance:5;', b"end")


def test_negated_endswith():
    # detect-content-ends-with-negated: the host must not end with ".google.com"
    opts = 'http.host; content:!".google.com"; endswith; content:"example.com";'
    assert hit(opts, None, http_host=b"www.example.com")
    assert not hit(opts, None, http_host=b"example.com.google.com")
    assert hit(opts, None, http_host=b"example.com.google.com.evil")


def test_relative_endswith_and_depth_window():
    # bug-docs-5030: a relative content with endswith must end the buffer
    opts = 'content:"yYYY"; distance:2; within:10; endswith;'
    assert hit(opts, b"12yYYY")
    assert not hit(opts, b"12yYYYz")


# --- pcre -----------------------------------------------------------------------------------------

def test_pcre_basic_and_flags():
    assert hit('pcre:"/fo+bar/";', b"xx fooobar")
    assert not hit('pcre:"/fo+bar/";', b"xx FOOBAR")
    assert hit('pcre:"/fo+bar/i";', b"xx FOOBAR")
    assert hit('pcre:!"/fo+bar/";', b"nothing")
    assert not hit('pcre:!"/fo+bar/";', b"foobar")


def test_pcre_relative_anchors_at_the_cursor():
    assert hit('content:"key="; pcre:"/^[0-9]+/R";', b"key=123")
    assert not hit('content:"key="; pcre:"/^[0-9]+/R";', b"key=x123")
    # bug-5162 sid 4: ^ after a relative content
    assert hit('content:"|15 00 00 00|"; pcre:"/^\\x00/R";', b"\x15\x00\x00\x00\x00")


def test_pcre_anchored_flag():
    assert hit('pcre:"/abc/A";', b"abcdef")
    assert not hit('pcre:"/abc/A";', b"xabc")


def test_pcre_backtracks_to_next_match():
    # first pcre match is followed by "y", a later one by "z": the pcre is retried
    assert hit('pcre:"/a./"; content:"z"; distance:0; within:1;', b"a1y a2z")
    assert not hit('pcre:"/a./"; content:"z"; distance:0; within:1;', b"a1y a2y")


def test_content_retried_for_relative_pcre():
    assert hit('content:"id="; pcre:"/^9/R";', b"id=1 id=9")


# --- byte_test ------------------------------------------------------------------------------------

@pytest.mark.parametrize("options,payload,expected", [
    ("byte_test:2,=,258,0;", b"\x01\x02", True),
    ("byte_test:2,=,513,0,little;", b"\x01\x02", True),
    ("byte_test:1,>,5,1;", b"\x00\x06", True),
    ("byte_test:1,>,5,1;", b"\x00\x05", False),
    ("byte_test:1,<=,5,0;", b"\x05", True),
    ("byte_test:1,>=,6,0;", b"\x05", False),
    ("byte_test:1,!=,5,0;", b"\x04", True),
    ("byte_test:1,!=,5,0;", b"\x05", False),
    ("byte_test:1,&,4,0;", b"\x05", True),
    ("byte_test:1,&,2,0;", b"\x05", False),
    ("byte_test:1,^,5,0;", b"\x05", False),
    ("byte_test:1,^,5,0;", b"\x07", True),
    ("byte_test:4,=,1234,0,string,dec;", b"1234", True),
    ("byte_test:3,=,255,0,string,hex;", b"0ff", True),
    ("byte_test:3,=,8,0,string,oct;", b"010", True),
    ("byte_test:4,=,12,0,string,dec;", b"12ab", True),  # strtoull stops at the first non-digit
    ("byte_test:2,=,0,0,string,dec;", b"ab", False),  # no digits: no match
    ("byte_test:0,=,123456,0,string,dec;", b"123456 x", True),  # 0 bytes: as many digits as there are
    ("byte_test:2,=,3,0,bitmask 0x0300;", b"\x03\x00", True),  # masked, then shifted by 8
    ("byte_test:2,=,0x0300,0,bitmask 0x0300;", b"\x03\x00", False),
    ("byte_test:4,>,1,2;", b"\x00\x00\x00\x01", False),  # not enough bytes
    ("byte_test:1,=,1,-1;", b"\x01", False),  # before the buffer
])
def test_byte_test(options, payload, expected):
    assert hit(options, payload) is expected


def test_byte_test_relative_and_dce():
    assert hit('content:"len"; byte_test:1,=,7,0,relative;', b"len\x07")
    assert hit('content:"len"; byte_test:1,=,7,1,relative;', b"len\x00\x07")
    assert not hit('content:"len"; byte_test:1,=,7,0,relative;', b"len")
    assert hit("byte_test:2,=,1,0,dce;", b"\x01\x00")  # NDR little-endian


# --- byte_jump ------------------------------------------------------------------------------------

def test_byte_jump_moves_the_cursor():
    # jump over the length-prefixed field, then "z" must come right after it
    assert hit('byte_jump:1,0; content:"z"; within:1;', b"\x02abz")
    assert not hit('byte_jump:1,0; content:"z"; within:1;', b"\x01abz")
    assert hit('content:"x"; byte_jump:1,0,relative; content:"z"; within:1;', b"x\x02abz")


def test_byte_jump_options():
    assert hit('byte_jump:1,0,multiplier 2; content:"z"; within:1;', b"\x02abcdz")
    assert hit('byte_jump:1,0,align; content:"z"; within:1;', b"\x01abcdz")  # 1 rounded up to 4
    assert hit('byte_jump:1,0,post_offset -1; content:"bz"; within:2;', b"\x02abz")
    assert hit('byte_jump:1,0,from_beginning; content:"z"; within:1;', b"\x03abz")
    assert hit('byte_jump:1,1,from_end,post_offset -2; content:"yz"; within:2;', b"x\x00wyz")
    assert hit('byte_jump:2,0,string,dec; content:"z"; within:1;', b"03abcz")
    assert not hit("byte_jump:1,0;", b"\x09ab")  # beyond the end


def test_byte_jump_before_start_clamps():
    assert hit('byte_jump:1,1,from_beginning,post_offset -5; content:"a"; within:1;', b"a\x01")


# --- isdataat, bsize --------------------------------------------------------------------------------

def test_isdataat():
    assert hit("isdataat:3;", b"abcd")
    assert not hit("isdataat:4;", b"abcd")
    assert hit("isdataat:!4;", b"abcd")
    assert hit('content:"ab"; isdataat:2,relative;', b"abcd")
    assert not hit('content:"ab"; isdataat:3,relative;', b"abcd")
    assert hit('content:"ab"; isdataat:!3,relative;', b"abcd")
    # docs: content "foo" with no data after it
    assert hit('content:"foo"; isdataat:!1,relative;', b"xfoo")
    assert not hit('content:"foo"; isdataat:!1,relative;', b"xfoo!")


def test_bsize():
    assert hit('http.uri; bsize:5;', None, http_uri=b"/abcd")
    assert not hit('http.uri; bsize:<5;', None, http_uri=b"/abcd")
    assert hit('http.uri; content:"/a"; bsize:2<>10;', None, http_uri=b"/abcd")
    assert hit('http.uri; bsize:0;', None, http_uri=b"")


# --- buffers and transforms -------------------------------------------------------------------------

def test_buffers_are_inspected_separately():
    opts = 'http.method; content:"GET"; http.uri; content:".exe"; endswith;'
    assert hit(opts, None, http_method=b"GET", http_uri=b"/a.exe")
    assert not hit(opts, None, http_method=b"POST", http_uri=b"/a.exe")
    assert not hit(opts, None, http_method=b"GET")
    # relative keywords never cross buffers: the cursor of http.uri starts at 0
    assert hit('http.method; content:"GET"; http.uri; content:"/"; distance:0; within:1;', None,
               http_method=b"GET", http_uri=b"/x")


def test_transforms():
    assert apply_transforms(b"Example.COM", ("dotprefix", "to_lowercase")) == b".example.com"
    assert apply_transforms(b"a b\t\nc", ("strip_whitespace",)) == b"abc"
    assert apply_transforms(b"a  \t b", ("compress_whitespace",)) == b"a b"
    assert apply_transforms(b"%41%2f+%zz%4", ("url_decode",)) == b"A/ %zz%4"
    assert apply_transforms(b"abc", ("to_uppercase",)) == b"ABC"
    assert apply_transforms(b"abc", ("to_md5",)) == hashlib.md5(b"abc").digest()
    assert apply_transforms(b"abc", ("to_sha1",)) == hashlib.sha1(b"abc").digest()
    assert apply_transforms(b"abc", ("to_sha256",)) == hashlib.sha256(b"abc").digest()
    # dotprefix: ".google.com" matches the domain and its subdomains, not "evilgoogle.com"
    opts = 'dns.query; dotprefix; content:".google.com"; endswith;'
    assert hit(opts, None, dns_query=b"google.com")
    assert hit(opts, None, dns_query=b"www.google.com")
    assert not hit(opts, None, dns_query=b"evilgoogle.com")
    sha = hashlib.sha256(b"payload").hexdigest().upper()
    sha_bytes = " ".join(sha[i:i + 2] for i in range(0, 64, 2))
    assert hit(f'file.data; to_sha256; content:"|{sha_bytes}|";', None, file_data=b"payload")


def test_recursion_limit_bounds_hostile_input():
    # each "a" is retried; the limit stops the search instead of running for ever
    opts = 'content:"a"; content:"a"; distance:0; within:1; content:"b"; distance:0; within:1;'
    assert not hit(opts, b"a" * 20000)
    assert hit(opts, b"a" * 10 + b"b")
    assert RECURSION_LIMIT == 3000


def test_plan_cache_follows_the_rule_object():
    r1, r2 = rule('content:"one";'), rule('content:"two";')
    assert match_payload(r1, {"payload": b"one"}) and not match_payload(r2, {"payload": b"one"})
    assert match_payload(r2, {"payload": b"two"}) and not match_payload(r1, {"payload": b"two"})


# --- Suricata's own content-inspection unit tests: (buffer, options, matches, recursion steps) -------
# from OISF/suricata src/tests/detect-engine-content-inspection.c (the byte_extract cases left out:
# the rule model has no byte_extract)

ABC = "content:\"a\"; content:\"b\"; distance:0; within:1; content:\"c\"; distance:0; within:1;"
ABCD = "content:\"a\"; content:\"b\"; within:1; distance:0; content:\"c\"; distance:0; within:1;"
SURICATA_UNIT = [
    (b"ab", 'content:"a"; content:"b";', True, 2),
    (b"ab", 'content:"a"; content:"b"; distance:0;', True, 2),
    (b"ba", 'content:"a"; content:"b"; distance:0;', False, 2),
    (b"ab", 'content:"a"; pcre:"/b/";', True, 2),
    (b"ab", 'content:"a"; pcre:"/b/R";', True, 2),
    (b"ba", 'content:"a"; pcre:"/b/R";', False, 2),
    (b"ababc", 'content:"a"; content:"b"; content:"c";', True, 3),
    (b"ababc", 'content:"a"; content:"b"; content:"d";', False, 3),
    (b"ababc", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0;', True, 3),
    (b"ababc", 'content:"a"; content:"b"; distance:0; content:"d"; distance:0;', False, 3),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; content:"d"; distance:0; within:1;', False, 5),
    (b"ababc", ABC, True, 5),
    (b"ababc", ABC + ' content:"bab";', True, 6),
    (b"ababc", ABC + ' content:"no";', False, 6),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; pcre:"/^c$/R";', True, 5),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; pcre:"/^c$/R"; content:"bab";', True, 6),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; pcre:"/^c$/R"; content:"no";', False, 6),
    (b"ababc", 'pcre:"/^a/"; pcre:"/^b/R"; pcre:"/c/R";', True, 3),
    (b"ababc", 'pcre:"/a/"; pcre:"/^b/R"; pcre:"/^c/R";', True, 5),
    (b"ababc", 'pcre:"/^a/"; pcre:"/^b/R"; pcre:"/d/R";', False, 3),
    (b"ababc", 'pcre:"/^a/"; pcre:"/^b/R"; pcre:"/c/R"; pcre:"/d/";', False, 4),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; content:"b"; content:"c"; distance:0; within:1;',
     True, 5),
    (b"ababc", ABC + " isdataat:!1,relative;", True, 5),
    (b"ababc", ABC + " isdataat:1,relative;", False, 6),
    (b"abcabc", ABC + " isdataat:10,relative;", False, 4),
    (b"ababcabc", ABC + " isdataat:!1,relative;", True, 7),
    (b"ababcabc", ABC + " isdataat:1,relative;", True, 6),
    (b"abcXYZ", 'content:"abc"; content:"XYZ"; distance:0; within:3; isdataat:!1,relative;', True, 2),
    (b"abcXYZ", 'content:"XYZ"; distance:3; within:3; isdataat:!1,relative;', True, 1),
    (b"abcXYZ", 'content:"cXY"; distance:2; within:3; isdataat:!1,relative;', False, 1),
    (b"x" * 17 + b"y" + b"Y" * 16, 'content:"yYYYYYYYYYYYYYYYY"; distance:9; within:29; isdataat:!1,relative;', True, 1),
    (b"abc" * 10 + b"d", ABCD + ' content:"d";', True, 4),
    (b"abc" * 10 + b"d", ABCD + ' content:"d"; within:1; distance:0;', True, 31),
    (b"abc" * 10 + b"x", ABCD + ' content:"d"; within:1; distance:0;', False, 31),
    (b"abc" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; content:"d"; distance:0;',
     False, 4),
    (b"abc" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; pcre:"/^d/R";', False, 13),
    (b"abc" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; isdataat:!1,relative;',
     False, 3),
    (b"abcd" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; content:"d"; distance:0; '
     'content:"e"; distance:0;', False, 5),
    (b"abcd" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; content:"d"; distance:0; '
     'pcre:"/^e/R";', False, 14),
    (b"abcd" * 10 + b"x", 'content:"a"; content:"b"; distance:0; content:"c"; distance:0; content:"d"; distance:0; '
     'isdataat:!1,relative;', False, 4),
    (b"abc" * 10 + b"d", ABCD + ' pcre:"/d/";', True, 4),
    (b"abc" * 10 + b"d", ABCD + ' pcre:"/d/R";', True, 4),
    (b"abc" * 10 + b"d", ABCD + ' pcre:"/^d/R";', True, 31),
    (b"abc" * 10 + b"x", ABCD + ' pcre:"/d/";', False, 4),
    (b"abc" * 10 + b"x", ABCD + ' pcre:"/d/R";', False, 31),
    (b"abc" * 10 + b"x", ABCD + ' pcre:"/^d/R";', False, 31),
    (b"ababc", 'content:"a"; content:"b"; content:!"d";', True, 3),
    (b"ababc", 'content:"a"; content:"b"; content:!"c";', False, 3),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; content:!"a"; distance:0; within:1;', True, 5),
    (b"ababc", 'content:"a"; content:"b"; distance:0; within:1; content:!"a"; distance:0;', True, 5),
    (b"abcdefghy", 'content:"a"; content:!"x"; content:"c"; distance:0; within:2;', True, 3),
    (b"abcdefghx", 'content:"a"; content:!"x"; content:"c"; distance:0; within:2;', False, 2),
    (b"abcdefghy", 'content:"a"; content:!"x"; content:!"c"; distance:2; within:1;', True, 3),
    (b"aaabbbccc", 'content:"ccc"; endswith; content:!"bccc"; endswith;', False, 2),
    (b"aaabbbccc", 'content:"ccc"; endswith; content:!"accc"; endswith;', True, 2),
    (b"aaabbbccc", 'content:"ccc"; endswith; content:!"bccc"; endswith; depth:4;', True, 2),
    (b"aaabbbccc", 'content:"ccc"; endswith; content:!"bccc"; endswith; depth:9;', False, 2),
    (b"abc03abcxyz", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3;', True, 3),
    (b"abc03abc03abcxyz", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3;', True, 5),
    (b"abc03abc03abcxyz", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3; '
     'isdataat:!1,relative;', True, 5),
    (b"abc03abc03abcxyz", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3; '
     'pcre:"/klm$/R";', False, 7),
    (b"abc03abc03abcxyzklm", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3; '
     'pcre:"/klm$/R";', True, 6),
    (b"abc03abc03abcxyzklx", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3; '
     'pcre:"/^klm$/R";', False, 7),
    (b"abc03abc03abc03abcxyzklm", 'content:"abc"; byte_jump:2,0,relative,string,dec; content:"xyz"; within:3; '
     'pcre:"/^klm$/R";', True, 8),
    (b"ab", 'content:"a"; startswith; content:"b";', True, 2),
    (b"ab", 'content:"a"; startswith; content:"b"; within:1; distance:0;', True, 2),
    (b"ab", 'content:"ab"; startswith;', True, 1),
    (b"ab", 'content:"a"; startswith;', True, 1),
    (b"ab", 'content:"b"; startswith;', False, 1),
    (b"ababc", ABC + " endswith;", True, 5),
    (b"ababcabc", ABC + " endswith;", True, 7),
    (b"abcXYZ", 'content:"abc"; content:"XYZ"; distance:0; within:3; endswith;', True, 2),
    (b"abcXYZ", 'content:"XYZ"; distance:3; within:3; endswith;', True, 1),
    (b"abcXYZ", 'content:"cXY"; distance:2; within:3; endswith;', False, 1),
    (b"abcXYZ", 'content:!"cXY"; endswith;', True, 1),
    (b"abcXYZ", 'content:!"XYZ"; endswith;', False, 1),
    (b"x" * 17 + b"y" + b"Y" * 16, 'content:"yYYYYYYYYYYYYYYYY"; distance:9; within:29; endswith;', True, 1),
    (b"ab", 'content:"a"; startswith; content:"b"; endswith;', True, 2),
    (b"ab", 'content:"a"; startswith; content:"b"; within:1; distance:0; endswith;', True, 2),
    (b"ab", 'content:"ab"; startswith; endswith;', True, 1),
    (b"ab", 'content:"a"; startswith; endswith;', False, 1),
    (b"ab", 'content:"b"; startswith; endswith;', False, 1),
    (b"XYZ_klm_1234abcd_XYZ_klm_5678abcd", 'content:"XYZ"; content:"_klm_"; distance:0; content:"abcd"; distance:4; '
     'byte_test:4,=,1234,-8,relative,string;', True, 4),
    (b"XYZ_klm_1234abcd_XYZ_klm_5678abcd", 'content:"XYZ"; content:"_klm_"; distance:0; content:"abcd"; distance:4; '
     'byte_test:4,=,5678,-8,relative,string;', True, 5),
    (b"aaabbbcccdddee", 'content:"aaa"; content:"ee"; within:2; distance:9; content:"bbb"; within:3; distance:-11; '
     'content:"ccc"; within:3; distance:0;', True, 4),
]


@pytest.mark.parametrize("data,options,matches,steps", SURICATA_UNIT)
def test_suricata_content_inspection_unit_cases(data, options, matches, steps):
    assert inspect_buffer(rule(options), data) == (matches, steps)


HTTP_GET = (b"GET /AllWorkAndNoPlayMakesWillADullBoy HTTP/1.0User-Agent: Wget/1.11.4Accept: */*"
            b"Host: www.google.comConnection: Keep-AliveDate: Mon, 04 Jan 2010 17:29:39 GMT")
SMB = bytes([0x00, 0x00, 0x00, 0x77, 0xff, 0x53, 0x4d, 0x42, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x18, 0x01, 0x20,
             0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x92, 0xa4,
             0x01, 0x08, 0x17, 0x5c, 0x0e, 0xff, 0x00, 0x00, 0x00, 0x01, 0x40, 0x48, 0x00, 0x00, 0x00, 0xff])
# Suricata's byte_jump/isdataat packet unit tests (detect-bytejump.c, detect-isdataat.c)
SURICATA_PACKET_UNIT = [
    (HTTP_GET, 'pcre:"/AllWorkAndNoPlayMakesWillADullBoy/"; byte_jump:1,6,relative,string,dec; content:"0";', True),
    (SMB, 'byte_jump:1,13; byte_jump:4,0,relative; content:"|48 00 00|"; within:3;', True),
    (b"boom", "byte_jump:1,214748364;", False),
    (b"XYZ04abcdABCD", 'content:"XYZ"; byte_jump:2,0,relative,string,dec; content:"ABCD"; distance:0; within:4;', True),
    (b"XYZ04abcdABCD", 'content:"XYZ"; byte_jump:2,0,relative,string,dec; content:"cdABCD"; within:6;', False),
    (b"XX04abcdABCD", 'content:"XX"; byte_jump:2,0,relative,string,dec,from_beginning; content:"ABCD"; '
     'distance:4; within:4;', True),
    (b"XX04abcdABCD", 'content:"XX"; byte_jump:2,0,relative,string,dec,from_beginning; content:"abcdABCD"; '
     'distance:0; within:8;', True),
    (b"XX04abcdABCD", 'content:"XX"; byte_jump:2,0,relative,string,dec,from_end, post_offset -8; content:"ABCD";',
     True),
    (b"Hi all!", "isdataat:6;", True),
    (b"Hi all!", 'content:"all"; isdataat:1, relative; isdataat:6;', True),
    (b"Hi all!", "isdataat:8;", False),
    (b"Hi all!", 'content:"Hi"; isdataat:5, relative;', True),
    (b"Hi all!", 'content:"Hi"; isdataat:6, relative;', False),
    (HTTP_GET, 'pcre:"/A(ll|pp)WorkAndNoPlayMakesWillADullBoy/"; isdataat:96,relative;', True),
    (HTTP_GET, "byte_jump:1,46,string,dec; isdataat:87,relative;", True),
]


@pytest.mark.parametrize("data,options,matches", SURICATA_PACKET_UNIT)
def test_suricata_packet_unit_cases(data, options, matches):
    assert hit(options, data) is matches


# --- suricata-verify: per-packet payload cases ---------------------------------------------------------

SV = REFERENCE / "suricata-verify"
# cases whose rules only inspect TCP/UDP payload and whose alerts are one per matching packet
SV_CASES = ["bug-5162", "bug-docs-5030-01", "bug-docs-5030-02", "tcp-5379", "tcp-fastopen-05",
            "tcp-fastopen-06", "tcp-split-handshake-02-5whs", "http2-disabled"]


def _payloads(pcap) -> list[tuple[str, bytes]]:
    out = []
    with open(pcap, "rb") as fh:
        reader = dpkt.pcap.UniversalReader(fh)
        link = reader.datalink()
        for _ts, frame in reader:
            try:
                if link == dpkt.pcap.DLT_EN10MB:
                    ip = dpkt.ethernet.Ethernet(frame).data
                elif link == dpkt.pcap.DLT_LINUX_SLL:
                    ip = dpkt.sll.SLL(frame).data
                else:
                    ip = dpkt.ip.IP(frame)
            except (dpkt.UnpackError, IndexError):
                continue
            l4 = getattr(ip, "data", None)
            if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) and l4.data:
                out.append(("tcp" if isinstance(l4, dpkt.tcp.TCP) else "udp", bytes(l4.data)))
    return out


def _expected_counts(test_yaml: str) -> dict[int, int]:
    import yaml

    expected = {}
    for check in yaml.safe_load(test_yaml).get("checks") or []:
        f = check.get("filter") if isinstance(check, dict) else None
        if f and "alert.signature_id" in (f.get("match") or {}):
            expected[int(f["match"]["alert.signature_id"])] = int(f["count"])
    return expected


@pytest.mark.parametrize("case", SV_CASES)
def test_suricata_verify_payload_cases(case):
    folder = need(SV / case, f"suricata-verify case {case}")
    manifest = {m["dir"]: m for m in json.loads((SV / "manifest.json").read_text())}
    pcap = need(SV / manifest[case]["dir"] / manifest[case]["pcap"], f"pcap of {case}")
    ruleset = load_rules(sorted(folder.glob("*.rules")))
    expected = _expected_counts((folder / "test.yaml").read_text())
    packets = _payloads(pcap)
    assert packets and expected
    compared = 0
    for r in ruleset.rules:
        if r.sid not in expected:
            continue
        got = sum(1 for proto, payload in packets
                  if r.protocol.split("-")[0] in ("ip", proto) and match_payload(r, {"payload": payload}))
        assert got == expected[r.sid], f"{case} sid {r.sid}: {got} packets match, Suricata alerts {expected[r.sid]}"
        compared += 1
    assert compared == len(expected)
