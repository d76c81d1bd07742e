"""TLS parser: crafted handshakes, published JA3/JA4 values, fuzz, and Zeek's ssl.log baselines.

The reference comparison reads the traces in ../shared/reference/zeek-app with a test-only
stream extractor (``reference_conns``: dpkt, per-direction TCP payload sorted by sequence number,
duplicates dropped, both directions merged by time) and runs the parser directly, without the
dispatcher; it compares on the fields compare_app.py judges for ssl.log.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps import tls_hello
from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.tls import CIPHERS, TLS
from recorder.core.apps.tls_hello import cipher_name, is_grease, ja3_string, ja4, version_name
from recorder.core.apps.x509 import parse_certificate
from tests.helpers import need
from tests.helpers.streams import run_on_trace as run_parser
from tests.helpers.tls import client_hello, handshake, record, server_hello, u16s, vec
from tests.helpers.zeek import SSL_KEYS, ZEEK_APP, parse_zeek
from tests.helpers.zeek import trace_agreement as agreement

# -- building handshakes ----------------------------------------------------------------------

def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.insert(0, 0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(enc)
    return der(0x06, out)


def name(*rdns: tuple[str, str]) -> bytes:
    return der(0x30, b"".join(der(0x31, der(0x30, oid(o) + der(0x0C, v.encode()))) for o, v in rdns))


def make_cert(*, cn="www.example.com", san=("www.example.com", "*.example.org")) -> bytes:
    """A structurally valid X.509 v3 certificate (the signature is junk: nothing verifies it)."""
    alg = der(0x30, oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    subject = name(("2.5.4.6", "US"), ("2.5.4.10", "Example, Inc."), ("2.5.4.3", cn))
    issuer = name(("2.5.4.6", "US"), ("2.5.4.3", "Example CA"))
    validity = der(0x30, der(0x17, b"240101000000Z") + der(0x18, b"20350601123000Z"))
    spki = der(0x30, alg + der(0x03, b"\x00" + b"\x01" * 16))
    san_ext = der(0x30, oid("2.5.29.17") + der(0x04, der(0x30, b"".join(der(0x82, n.encode()) for n in san))))
    tbs = der(0x30, der(0xA0, der(0x02, b"\x02")) + der(0x02, b"\x01\x23") + alg + issuer + validity
              + subject + spki + der(0xA3, der(0x30, san_ext)))
    return der(0x30, tbs + alg + der(0x03, b"\x00" + b"\xAA" * 16))


def conn() -> Conn:
    return Conn("10.0.0.1", 50000, "192.0.2.7", 443, "tcp", 1.0)


def feed(chunks, *, split: int | None = None) -> ListOutput:
    """Run a TLS parser over (is_orig, bytes) chunks, optionally cut into ``split``-byte segments."""
    out = ListOutput()
    p = TLS(conn(), out)
    t = 1.0
    for is_orig, data in chunks:
        step = split or len(data) or 1
        for i in range(0, len(data), step):
            t += 0.001
            p.data(is_orig, data[i:i + step], t)
    p.end(t + 1)
    return out


# -- crafted handshakes -----------------------------------------------------------------------
def tls12_chunks(cert: bytes):
    ch = record(22, client_hello(session_id=b""), 0x0301)
    ske = handshake(12, b"\x03\x00\x17" + vec(b"\x04" + b"\x05" * 64, 1) + b"\x04\x01" + vec(b"\x06" * 8, 2))
    server_flight = (record(22, server_hello(cipher=0xC02F, extensions=[(0xFF01, b"\x00")]))
                     + record(22, handshake(11, vec(vec(cert, 3) + vec(cert, 3), 3)) + ske)  # two in one
                     + record(22, handshake(14, b"")))
    client_flight = record(22, handshake(16, vec(b"\x07" * 65, 1))) + record(20, b"\x01") + record(22, b"\x99" * 40)
    server_end = record(20, b"\x01") + record(22, b"\x98" * 40)
    return [(True, ch), (False, server_flight), (True, client_flight), (False, server_end),
            (True, record(23, b"\x55" * 100))]


def test_tls12_full_handshake_fields():
    cert = make_cert()
    rows = feed(tls12_chunks(cert)).logs("ssl")
    assert len(rows) == 1
    r = rows[0]
    assert r["version"] == "TLSv12"
    assert r["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert r["curve"] == "secp256r1"
    assert r["server_name"] == "example.com"
    assert r["established"] is True and r["resumed"] is False
    assert r["ssl_history"] == "CsxknGIi"
    fp = hashlib.sha256(cert).hexdigest()
    assert r["cert_chain_fps"] == [fp, fp] and r["client_cert_chain_fps"] == []
    assert r["subject"] == "CN=www.example.com,O=Example\\, Inc.,C=US"
    assert r["issuer"] == "CN=Example CA,C=US"
    assert r["cert_not_before"] == 1704067200.0  # 2024-01-01T00:00:00Z
    assert r["cert_not_after"] == 2064313800.0  # 2035-06-01T12:30:00Z
    assert r["sni_matches_cert"] is False  # example.com is not www.example.com nor *.example.org
    assert r["ts"] == pytest.approx(1.001)


def test_records_split_anywhere_give_the_same_record():
    chunks = tls12_chunks(make_cert())
    whole = feed(chunks).logs("ssl")
    for split in (1, 3, 7, 100):
        assert feed(chunks, split=split).logs("ssl") == whole


def test_handshake_message_spanning_records():
    hello = client_hello()
    msgs = record(22, hello[:10]) + record(22, hello[10:])
    rows = feed([(True, msgs), (False, record(22, server_hello()))]).logs("ssl")
    assert rows[0]["server_name"] == "example.com" and rows[0]["ssl_history"] == "Cs"
    assert rows[0]["established"] is False


def test_tls13_version_curve_resumption_and_established():
    exts = [(0, vec(b"\x00" + vec(b"a.test", 2), 2)), (43, vec(u16s([0x0A0A, 0x0304, 0x0303]), 1)),
            (51, vec(u16s([29]) + vec(b"\x01" * 32, 2), 2)), (41, b"\x00" * 10), (16, vec(vec(b"h2", 1), 2))]
    ch = record(22, client_hello(session_id=b"\x42" * 32, ciphers=(0x1301,), extensions=exts), 0x0301)
    sh = record(22, server_hello(cipher=0x1301, session_id=b"\x42" * 32,
                                 extensions=[(43, b"\x03\x04"), (51, u16s([29]) + vec(b"\x02" * 32, 2)),
                                             (41, b"\x00\x00")]))
    rows = feed([(True, ch), (False, sh + record(20, b"\x01") + record(23, b"\x01" * 50)),
                 (True, record(20, b"\x01") + record(23, b"\x02" * 50))]).logs("ssl")
    r = rows[0]
    assert (r["version"], r["cipher"], r["curve"]) == ("TLSv13", "TLS_AES_128_GCM_SHA256", "x25519")
    assert r["resumed"] is True  # PSK accepted (the echoed session id alone does not count in 1.3)
    assert r["established"] is True and r["ssl_history"] == "CsiI"
    assert r["alpn"] == ["h2"] and r["cert_chain_fps"] is None


def test_session_id_echo_is_resumption_before_tls13():
    sid = b"\x42" * 32
    rows = feed([(True, record(22, client_hello(session_id=sid))),
                 (False, record(22, server_hello(session_id=sid)) + record(20, b"\x01"))]).logs("ssl")
    assert rows[0]["resumed"] is True


def test_alert_is_last_alert_and_history():
    rows = feed([(True, record(22, client_hello())), (False, record(21, b"\x02\x28"))]).logs("ssl")
    assert rows[0]["last_alert"] == "handshake_failure" and rows[0]["ssl_history"] == "Cl"
    assert rows[0]["version"] is None


def test_hello_retry_request_is_j():
    hrr = server_hello(cipher=0x1301, extensions=[(43, b"\x03\x04"), (51, u16s([23]))])
    hrr = hrr[:6] + bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c") + hrr[38:]
    rows = feed([(True, record(22, client_hello())), (False, record(22, hrr))]).logs("ssl")
    assert rows[0]["ssl_history"] == "Cj" and rows[0]["curve"] == "secp256r1"


def test_names_follow_zeek():
    assert version_name(0x0303) == "TLSv12" and version_name(0x0300) == "SSLv3"
    assert version_name(0x7F17) == "TLSv13-draft23"
    assert version_name(0x7E01) == "unknown-32257"
    assert cipher_name(0xCCA8) == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert cipher_name(0x0004) == "TLS_RSA_WITH_RC4_128_MD5"
    assert cipher_name(0xFFFF) == "unknown-65535"
    assert len(CIPHERS) > 330
    assert all(n.startswith(("TLS_", "SSL")) for n in CIPHERS.values())


def test_detect():
    c = conn()
    assert TLS.detect(record(22, client_hello()), True, c)
    assert TLS.detect(record(22, server_hello()), False, c)
    assert not TLS.detect(b"GET / HTTP/1.1\r\n", True, c)
    assert not TLS.detect(record(23, b"x" * 20), True, c)
    assert not TLS.detect(record(22, b"\x0b" + b"\x00" * 10), True, c)  # not a hello
    v2 = sslv2_hello()
    assert TLS.detect(v2, True, c)
    assert feed([(True, v2)]).logs("ssl")[0]["ssl_history"] == "C"


# -- fingerprints -----------------------------------------------------------------------------
# A Chrome 143 ClientHello as published by browserleaks.com (and quoted in public code): its
# JA3 text and hash and its JA4 (ja4_ro gives the wire order of ciphers and extensions).
CHROME_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014,
                  0x009C, 0x009D, 0x002F, 0x0035]
CHROME_EXTS = [0x002D, 0x0033, 0x0010, 0xFE0D, 0x0017, 0x44CD, 0x0000, 0x000B, 0x000A, 0x002B, 0xFF01,
               0x0023, 0x0012, 0x0005, 0x000D, 0x001B]
CHROME_SIGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
CHROME_JA3 = ("771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
              "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0")


def chrome_hello() -> bytes:
    data = {
        0x0000: vec(b"\x00" + vec(b"tls.browserleaks.com", 2), 2),
        0x000A: vec(u16s([0x3A3A, 4588, 29, 23, 24]), 2),
        0x000B: vec(b"\x00", 1),
        0x000D: vec(u16s(CHROME_SIGS), 2),
        0x0010: vec(vec(b"h2", 1) + vec(b"http/1.1", 1), 2),
        0x002B: vec(u16s([0x2A2A, 0x0304, 0x0303]), 1),
    }
    exts = [(0x1A1A, b"")] + [(e, data.get(e, b"\x00")) for e in CHROME_EXTS] + [(0xFAFA, b"\x00")]
    return client_hello(ciphers=[0x8A8A, *CHROME_CIPHERS], extensions=exts)


def test_ja3_and_ja4_match_published_values_for_a_chrome_hello():
    rows = feed([(True, record(22, chrome_hello(), 0x0301))]).logs("ssl")
    r = rows[0]
    assert r["ja3"] == "98487aa16281980e7d1120d399efb6a4" == hashlib.md5(CHROME_JA3.encode()).hexdigest()
    assert r["ja4"] == "t13d1516h2_8daaf6152771_d8a2da3f94cd"
    assert r["alpn"] == ["h2", "http/1.1"] and r["server_name"] == "tls.browserleaks.com"


def test_ja3_salesforce_readme_example():
    # the JA3 string and hash given in Salesforce's README
    s = ja3_string(769, [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4], [0, 10, 11], [23, 24, 25], [0])
    assert s == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert hashlib.md5(s.encode()).hexdigest() == "ada70206e40642a3e4461f35503241d5"


def test_ja4_worked_examples_of_the_spec():
    # FoxIO JA4.md (v0.18.2), "Cipher hash" and "Extension hash": the lists and truncated hashes
    exts = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012,
            0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    args = dict(transport="t", version=0x0303, supported_versions=[0x0304], sni=True,
                ciphers=CHROME_CIPHERS, extensions=exts, alpn=["h2"])
    assert ja4(**args, sig_algs=sigs) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4(**args, sig_algs=[]) == "t13d1516h2_8daaf6152771_6d807ffa2a79"
    assert ja4(**{**args, "alpn": ["http/1.1"]}, sig_algs=sigs).startswith("t13d1516h1_")


def test_ja4_edge_cases_from_the_spec():
    # no SNI, no ALPN, TLS 1.2 without supported_versions, no signature algorithms
    v = ja4(transport="t", version=0x0303, supported_versions=[], sni=False, ciphers=[0x0A0A, 0x002F],
            extensions=[0x000A], alpn=[], sig_algs=[])
    assert v.startswith("t12i010100_")
    assert v.split("_")[1] == hashlib.sha256(b"002f").hexdigest()[:12]
    assert v.split("_")[2] == hashlib.sha256(b"000a").hexdigest()[:12]  # no "_" without signatures
    empty = ja4(transport="t", version=0x0301, supported_versions=[], sni=True, ciphers=[], extensions=[],
                alpn=["\xabx\xcd"], sig_algs=[])
    assert empty == "t10d0000ad_000000000000_000000000000"  # non-alphanumeric ALPN: hex first/last


def test_grease():
    assert all(is_grease(0x0A0A + 0x1010 * i) for i in range(16))
    assert not is_grease(0x0A0B) and not is_grease(0x1301)


# -- certificates -----------------------------------------------------------------------------
def test_x509_parse_and_garbage():
    cert = parse_certificate(make_cert())
    assert cert is not None and cert.san_dns == ("www.example.com", "*.example.org")
    assert parse_certificate(b"") is None and parse_certificate(b"\x30\x82\xff\xff") is None
    assert parse_certificate(make_cert()[:-5]) is None


def test_x509_names_as_zeek_logs_them_and_as_suricata_inspects_them():
    cert = parse_certificate(make_cert(cn="Microsoft RSA TL\x00 CA 01"))
    # Zeek (ssl.log): last RDN first, RFC 2253 escaping
    assert cert.subject == "CN=Microsoft RSA TL\\00 CA 01,O=Example\\, Inc.,C=US"
    assert cert.issuer == "CN=Example CA,C=US"
    # Suricata (tls.cert_subject / tls.cert_issuer): first RDN first, ", " between, bytes as they are
    assert cert.subject_dn == "C=US, O=Example, Inc., CN=Microsoft RSA TL\x00 CA 01"
    assert cert.issuer_dn == "C=US, CN=Example CA"


def test_sni_matches_wildcard_san():
    chunks = tls12_chunks(make_cert())
    hello = client_hello(sni="a.example.org")
    chunks[0] = (True, record(22, hello))
    assert feed(chunks).logs("ssl")[0]["sni_matches_cert"] is True


# -- robustness -------------------------------------------------------------------------------
@settings(max_examples=500, deadline=None)  # the typed (compiled) module: more examples
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12), st.integers(0, 400))
def test_fuzz_never_raises(chunks, cut):
    base = tls12_chunks(make_cert())
    # random bytes alone, and random bytes spliced into a valid handshake
    for stream in (chunks, [(o, d[:cut] + junk + d[cut:]) for (o, d), (_, junk) in zip(base, chunks)]):
        out = ListOutput()
        p = TLS(conn(), out)
        for i, (is_orig, data) in enumerate(stream):
            if i == 3:
                p.gap(is_orig, 10, 2.0)
            p.data(is_orig, data, 1.0 + i)
        p.end(99.0)
        assert len(out.logs("ssl")) <= 1


def _vec_as_slices(raw: bytes, off: int, width: int) -> tuple[bytes, int]:
    """``tls_hello.vec`` as it was before it was typed: slices and ``int.from_bytes``."""
    if off + width > len(raw):
        raise ValueError("short vector length")
    end = off + width + int.from_bytes(raw[off:off + width], "big")
    if end > len(raw):
        raise ValueError("vector overruns")
    return raw[off + width:end], end


def _read(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return ValueError


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 90), st.integers(1, 3))
def test_vectors_read_as_slices_read_them(raw, off, width):
    # the typed reading of length-prefixed vectors and extension blocks, at any offset of any bytes
    assert _read(tls_hello.vec, raw, off, width) == _read(_vec_as_slices, raw, off, width)
    expected = ValueError if off + 2 <= len(raw) and _read(_vec_as_slices, raw, off, 2) is ValueError else []
    if expected is not ValueError and off + 2 <= len(raw):
        block, pos = _vec_as_slices(raw, off, 2)[0], 0
        while pos + 4 <= len(block) and expected is not ValueError:
            data = _read(_vec_as_slices, block, pos + 2, 2)
            if data is ValueError:
                expected = ValueError
            else:
                expected.append((int.from_bytes(block[pos:pos + 2], "big"), data[0]))
                pos = data[1]
    assert _read(tls_hello.extensions, raw, off) == expected


def test_buffer_is_bounded():
    p = TLS(conn(), ListOutput())
    header = record(22, b"")[:3] + b"\x47\xff"  # a record that claims 18 KiB, then never ends
    p.data(True, header, 1.0)
    for _ in range(100):
        p.data(True, b"\x00" * 4096, 1.0)
    assert len(p.sides[True].buf) < 20000


# -- Zeek baselines ---------------------------------------------------------------------------


@pytest.mark.reference
def test_reference_ssl_log_agreement():
    hit, total, misses = agreement("ssl.log", SSL_KEYS, TLS, ("tls__",))
    assert total == 14
    assert hit == total, misses


@pytest.mark.reference
def test_reference_certificate_fingerprints_and_history():
    """Beyond the judged keys: cert_chain_fps, curve, established, ssl_history against Zeek."""
    manifest = json.loads(need(ZEEK_APP / "manifest.json", "Zeek app reference").read_text())
    fields = ["cert_chain_fps", "client_cert_chain_fps", "curve", "established", "ssl_history", "resumed",
              "last_alert", "next_protocol"]
    compared = 0
    for m in manifest:
        if "ssl.log" not in m["logs"] or not m["trace"].startswith("tls__"):
            continue
        base = parse_zeek((ZEEK_APP / m["logs"]["ssl.log"]).read_text())
        ours = run_parser(TLS, ZEEK_APP / m["trace"]).logs("ssl")
        for b, o in zip(sorted(base, key=lambda r: int(r["id.orig_p"])), sorted(ours, key=lambda r: r["id.orig_p"])):
            for f in fields:
                want = None if b[f] in ("-",) else ([] if b[f] == "(empty)" else b[f])
                got = o[f]
                if f.endswith("fps"):
                    want = want.split(",") if isinstance(want, str) else want
                elif isinstance(got, bool):
                    got = "T" if got else "F"
                assert got == want, (m["trace"], f, got, want)
            compared += 1
    assert compared == 14


def sslv2_hello() -> bytes:
    """An SSLv2-format ClientHello: 2-byte header, type 1, version 3.1, 8 cipher specs, challenge."""
    return bytes([0x80, 9 + 24 + 16]) + bytes.fromhex("010301001800000010") + b"\x00\x00\x2f" * 8 + b"\x01" * 16


def test_sslv2_compatible_hello_then_tls():
    rows = feed([(True, sslv2_hello()),
                 (False, record(22, server_hello(version=0x0301, cipher=0x002F)) + record(22, handshake(14, b""))),
                 (True, record(22, handshake(16, vec(b"\x01" * 48, 2))) + record(20, b"\x01") + record(22, b"\x03" * 40)),
                 (False, record(20, b"\x01") + record(22, b"\x04" * 40))]).logs("ssl")
    r = rows[0]
    assert (r["version"], r["cipher"], r["ssl_history"]) == ("TLSv10", "TLS_RSA_WITH_AES_128_CBC_SHA", "CsnGIi")
    assert r["established"] is True


def test_sslv2_server_hello_and_master_key():
    server = bytes.fromhex("0400010002") + struct.pack(">HHH", 0, 3, 16) + bytes.fromhex("010080") + b"\x05" * 16
    master = bytes.fromhex("02010080") + b"\x00" * 6
    rows = feed([(True, sslv2_hello()), (False, bytes([0x80, len(server)]) + server),
                 (True, bytes([0x80, len(master)]) + master)]).logs("ssl")
    r = rows[0]
    assert (r["version"], r["cipher"], r["established"]) == ("SSLv2", "SSLv20_CK_RC4_128_WITH_MD5", True)
    assert r["ssl_history"] == "Cs"


@pytest.mark.reference
def test_reference_leaf_certificate_fields():
    """The ecdhe trace's leaf, Google's 2014 certificate, read by the minimal DER walker."""
    (row,) = run_parser(TLS, need(ZEEK_APP / "tls__ecdhe.pcap", "Zeek app reference")).logs("ssl")
    assert row["subject"] == "CN=*.google.com,O=Google Inc,L=Mountain View,ST=California,C=US"
    assert row["issuer"] == "CN=Google Internet Authority G2,O=Google Inc,C=US"
    assert row["cert_not_after"] == 1404777600.0  # 2014-07-08T00:00:00Z
    assert row["cert_not_before"] < row["ts"] < row["cert_not_after"]
    assert row["sni_matches_cert"] is None  # no SNI in this hello


def test_tls13_without_change_cipher_spec_is_established_and_a_side_goes_on_after_a_gap():
    sh = record(22, server_hello(cipher=0x1302, extensions=[(43, b"\x03\x04")]))
    rows = feed([(True, record(22, client_hello())), (False, sh + record(23, b"\x01" * 40)),
                 (True, record(23, b"\x02" * 40))]).logs("ssl")
    assert (rows[0]["version"], rows[0]["established"], rows[0]["ssl_history"]) == ("TLSv13", True, "Cs")
    out = ListOutput()
    p = TLS(conn(), out)
    p.data(True, record(22, client_hello()), 1.0)
    p.gap(False, 100, 1.1)  # 100 bytes before the server's hello were never captured
    p.data(False, b"\x42" * 7 + record(22, server_hello()), 1.2)  # a lost record's tail, then the hello
    p.end(2.0)
    assert out.logs("ssl")[0]["ssl_history"] == "Cs" and out.logs("ssl")[0]["version"] == "TLSv12"
