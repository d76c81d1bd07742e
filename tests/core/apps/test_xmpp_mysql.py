"""XMPP and MySQL: detection and the STARTTLS/SSLRequest hand-over to TLS, on crafted streams, through
the dispatcher, fuzzed, and against Zeek's ssl.log baselines through ``wiretrail ingest``/``tls``.

The reference helpers (``zeek_ssl_rows``, ``our_ssl_rows``) are shared with test_quic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput, Parser
from recorder.core.apps.mysql import MySQL, is_ssl_request, parse_greeting
from recorder.core.apps.tls import TLS
from recorder.core.apps.xmpp import XMPP
from tests.helpers.packets import PA, close, handshake, tcp, write
from tests.helpers.streams import run_app_layer as run
from tests.helpers.tls import client_hello, record, server_hello
from tests.helpers.zeek import SSL_KEYS, our_ssl_rows, zeek_ssl_rows

CLI, SRV = "10.0.0.1", "10.0.0.2"

CLIENT_STREAM = (b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                 b"xmlns='jabber:client' to='example.net' version='1.0'>")
SERVER_STREAM = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
                 b"'http://etherx.jabber.org/streams' id='42' from='example.net' version='1.0'>"
                 b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                 b"</stream:features>")
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"



def _packet(seq: int, body: bytes) -> bytes:
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


# the greeting of the MariaDB server in mysql__encrypted.pcap (protocol 10, CLIENT_SSL offered)
GREETING = _packet(0, b"\x0a" + b"5.5.5-10.0.36-MariaDB-0ubuntu0.16.04.1\x00" + (33).to_bytes(4, "little")
                   + b"tnNv,t'`" + b"\x00" + b"\xff\xff" + b"\x2d" + b"\x02\x00" + b"\x3f\xe0" + b"\x15"
                   + b"\x00" * 10 + b"1rkADp+#ijZe\x00" + b"mysql_native_password\x00")
_CAPS_SSL = (0x203FAE85).to_bytes(4, "little")  # PROTOCOL_41 | SSL | ... as that trace's client sends
_CAPS_PLAIN = (0x203FA685).to_bytes(4, "little")  # the same without CLIENT_SSL
SSL_REQUEST = _packet(1, _CAPS_SSL + (1 << 24).to_bytes(4, "little") + b"\x2d" + b"\x00" * 23)
LOGIN = _packet(1, _CAPS_PLAIN + (1 << 24).to_bytes(4, "little") + b"\x2d" + b"\x00" * 23 + b"root\x00"
                + b"\x14" + b"\x01" * 20 + b"mysql_native_password\x00")


def _conn(port: int) -> Conn:
    return Conn(CLI, 51000, SRV, port, "tcp", 500.0, uid="Cx")


def _talk(parser: Parser, script: list[tuple[bool, bytes]]) -> int | None:
    """Feed ``script``; the index of the delivery after which the parser asked for a hand-over."""
    for i, (side, data) in enumerate(script):
        parser.data(side, data, 500.0 + i)
        if parser.redetect:
            return i
    return None


def _tls12(cipher: int = 0xC030) -> tuple[bytes, bytes]:
    return (record(22, client_hello(ciphers=(cipher, 0x009C), sni=""), 0x0301),
            record(22, server_hello(cipher=cipher)))


# -- XMPP -----------------------------------------------------------------------------------------

def test_xmpp_detect() -> None:
    c = _conn(5222)
    assert XMPP.detect(CLIENT_STREAM, True, c)
    assert XMPP.detect(SERVER_STREAM, False, c)
    assert XMPP.detect(b"\n  <stream:stream to='a' version='1.0'>", True, _conn(80))  # no declaration: any port
    assert XMPP.detect(b"<?xml version='1.0'?>", True, c)  # the declaration alone: only on an XMPP port
    assert not XMPP.detect(b"<?xml version='1.0'?>", True, _conn(8080))
    assert not XMPP.detect(b"<?xml version='1.0'?><soap:Envelope>", True, c)
    assert not XMPP.detect(b"GET / HTTP/1.1\r\n\r\n", True, c)
    assert not XMPP.detect(b"<html><body>", False, c)
    assert not XMPP.detect(b"", True, c)


def test_xmpp_hands_over_after_the_servers_proceed_only() -> None:
    p = XMPP(_conn(5222), ListOutput())
    at = _talk(p, [(True, CLIENT_STREAM), (False, SERVER_STREAM), (True, STARTTLS), (False, PROCEED)])
    assert at == 3  # not at the client's <starttls/>, nor at <starttls> in the server's features
    # a proceed split across two deliveries, with a namespace prefix
    p = XMPP(_conn(5269), ListOutput())
    at = _talk(p, [(True, CLIENT_STREAM), (False, SERVER_STREAM), (True, STARTTLS),
                   (False, b"<tls:pro"), (False, b"ceed xmlns:tls='urn:ietf:params:xml:ns:xmpp-tls'/>")])
    assert at == 4
    # a session that never upgrades stays with XMPP
    p = XMPP(_conn(5222), ListOutput())
    assert _talk(p, [(True, CLIENT_STREAM), (False, SERVER_STREAM + b"<failure/>"), (True, b"</stream:stream>")]) is None


def test_xmpp_starttls_through_the_dispatcher_reaches_tls(tmp_path: Path) -> None:
    ch, sh = _tls12()
    script = [(True, CLIENT_STREAM), (False, SERVER_STREAM), (True, STARTTLS), (False, PROCEED), (True, ch), (False, sh)]
    pkts = handshake(40000, 5222)
    seq = {True: 1001, False: 5001}
    for i, (side, data) in enumerate(script):
        src, sp, dst, dp = (CLI, 40000, SRV, 5222) if side else (SRV, 5222, CLI, 40000)
        pkts.append((0.1 + 0.05 * i, tcp(src, sp, dst, dp, seq[side], PA, data)))
        seq[side] += len(data)
    pkts += close(40000, 5222, seq[True], seq[False], 1.0)
    for size in (1, 65536):
        app, out, _ = run(write(tmp_path / "x.pcap", pkts), [TLS, XMPP], batch_size=size)
        (rec,) = out.logs("ssl")
        assert (rec["id.resp_p"], rec["version"], rec["cipher"]) == (5222, "TLSv12", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        assert rec["ssl_history"] == "Cs"
        assert dict(app.services()) == {rec["uid"]: ["ssl", "xmpp"]}


# -- MySQL ----------------------------------------------------------------------------------------

def test_mysql_greeting_and_ssl_request() -> None:
    g = parse_greeting(GREETING)
    assert g is not None and g["version"] == "5.5.5-10.0.36-MariaDB-0ubuntu0.16.04.1" and g["thread_id"] == 33
    assert g["capabilities"] == 0xE03FFFFF  # both halves of the flags; CLIENT_SSL (0x800) offered
    assert parse_greeting(_packet(0, b"\xff\x6a\x04Host '10.0.0.1' is not allowed to connect")) is None  # an error
    assert parse_greeting(b"\xff\xff\x00" + GREETING[3:]) is None  # far too long for a greeting
    assert parse_greeting(GREETING[:3] + b"\x01" + GREETING[4:]) is None  # sequence id must be 0
    assert parse_greeting(GREETING[:4] + b"\x09" + GREETING[5:]) is None  # protocol 9 is not read
    assert parse_greeting(b"\x10\x00\x00\x00\x0a\x01\x02\x03") is None  # version is not text
    assert is_ssl_request(SSL_REQUEST) == 36
    assert is_ssl_request(bytes.fromhex("050000010008000000")) == 9  # pre-4.1 flags: 2-byte caps + 3-byte size
    assert is_ssl_request(LOGIN) == 0  # a plain login (no CLIENT_SSL, longer)
    assert is_ssl_request(SSL_REQUEST[:20]) == 0  # incomplete
    assert is_ssl_request(SSL_REQUEST[:4] + b"\x85\xa6" + SSL_REQUEST[6:]) == 0  # CLIENT_SSL cleared


def test_mysql_detect() -> None:
    c = _conn(3306)
    assert MySQL.detect(GREETING, False, c)
    assert MySQL.detect(GREETING[:60], False, c)  # a first segment holding the server version
    assert not MySQL.detect(GREETING[:30], False, c)  # cut inside it: detection waits for more bytes
    assert not MySQL.detect(GREETING, True, c)  # the server speaks first
    assert not MySQL.detect(SSL_REQUEST, False, c)
    assert not MySQL.detect(b"SSH-2.0-OpenSSH_9.6\r\n", False, c)
    assert not MySQL.detect(b"220 mail.example.com ESMTP\r\n", False, c)


def test_mysql_ssl_request_hands_over_or_runs_tls_itself() -> None:
    ch, sh = _tls12(0x0039)
    # the SSLRequest in a delivery of its own: a hand-over
    p = MySQL(_conn(3306), ListOutput())
    assert _talk(p, [(False, GREETING), (True, SSL_REQUEST[:10]), (True, SSL_REQUEST[10:])]) == 2
    # SSLRequest and ClientHello joined in one delivery: the TLS parser runs inside
    out = ListOutput()
    c = _conn(3306)
    c.services.append("mysql")
    p = MySQL(c, out)
    assert _talk(p, [(False, GREETING), (True, SSL_REQUEST + ch), (False, sh)]) is None
    p.end(600.0)
    (rec,) = out.logs("ssl")
    assert (rec["version"], rec["cipher"], rec["ssl_history"]) == ("TLSv12", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "Cs")
    assert c.services == ["mysql", "ssl"]
    # a plain login: no hand-over, nothing logged
    out = ListOutput()
    p = MySQL(_conn(3306), out)
    assert _talk(p, [(False, GREETING), (True, LOGIN), (False, b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00"),
                     (True, b"\x0f\x00\x00\x00\x03select 1 + 1;")]) is None
    p.end(600.0)
    assert out.records == []


def test_mysql_ssl_through_the_dispatcher_either_way(tmp_path: Path) -> None:
    """Batch size 1 delivers the SSLRequest alone (hand-over); one batch joins it with the ClientHello."""
    ch, sh = _tls12(0x0039)
    pkts = handshake(40001, 3306)
    pkts += [(0.10, tcp(SRV, 3306, CLI, 40001, 5001, PA, GREETING)),
             (0.11, tcp(CLI, 40001, SRV, 3306, 1001, PA, SSL_REQUEST)),
             (0.12, tcp(CLI, 40001, SRV, 3306, 1001 + len(SSL_REQUEST), PA, ch)),
             (0.13, tcp(SRV, 3306, CLI, 40001, 5001 + len(GREETING), PA, sh))]
    pkts += close(40001, 3306, 1001 + len(SSL_REQUEST) + len(ch), 5001 + len(GREETING) + len(sh), 0.5)
    for size in (1, 65536):
        app, out, _ = run(write(tmp_path / "m.pcap", pkts), [TLS, MySQL], batch_size=size)
        (rec,) = out.logs("ssl")
        assert (rec["id.resp_p"], rec["version"], rec["cipher"]) == (3306, "TLSv12", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA")
        assert dict(app.services()) == {rec["uid"]: ["mysql", "ssl"]}


# -- fuzz -------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([XMPP, MySQL]), st.integers(0, 6), st.lists(st.tuples(st.booleans(), st.binary(max_size=200)),
                                                                       max_size=10))
def test_fuzz_never_raises(cls: type[Parser], cut: int, chunks: list[tuple[bool, bytes]]) -> None:
    ch, sh = _tls12()
    base = ([(False, GREETING), (True, SSL_REQUEST + ch), (False, sh)] if cls is MySQL else
            [(True, CLIENT_STREAM), (False, SERVER_STREAM), (True, STARTTLS), (False, PROCEED)])
    script = base[:cut] + chunks + base[cut:]
    conn = _conn(3306 if cls is MySQL else 5222)
    cls.detect(b"".join(d for o, d in script if not o), False, conn)
    cls.detect(b"".join(d for o, d in script if o), True, conn)
    p = cls(conn, ListOutput())
    for i, (side, data) in enumerate(script):
        p.data(side, data, 1.0 + i)
        if i % 3 == 2:
            p.gap(side, 10, 1.0 + i)
    p.end(100.0)


# -- Zeek's baselines, through the CLI (tests.helpers.zeek) --------------------------------------
@pytest.mark.reference
@pytest.mark.parametrize("trace", ["tls__xmpp-starttls.pcap", "tls__xmpp-dialback-starttls.pcap",
                                   "mysql__encrypted.pcap"])
def test_handover_traces_agree_with_zeek(trace: str, tmp_path: Path) -> None:
    want = zeek_ssl_rows(trace)
    ours, flows = our_ssl_rows(trace, tmp_path)
    keys = SSL_KEYS + ["resumed", "established", "ssl_history", "cert_chain_fps"]
    assert [[r[k] for k in keys] for r in ours] == [[r[k] for k in keys] for r in want]
    service = "xmpp" if "xmpp" in trace else "mysql"
    assert {f["service"] for f in flows if f["uid"] == ours[0]["uid"]} == {",".join(sorted(["ssl", service]))}
