"""Telnet logins and Kerberos AS/TGS exchanges: crafted conversations and bounded fuzz tests."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.kerberos import Kerberos, KerberosTCP, parse_message
from recorder.core.apps.telnet import Telnet

IAC, WILL, DO, SB, SE = 255, 251, 253, 250, 240


def _conn(port: int, proto: str = "tcp") -> Conn:
    return Conn("203.0.113.5", 40100, "203.0.113.23", port, proto, 10.0, uid="Cx")


# -- Telnet ---------------------------------------------------------------------------------------

NEGOTIATION = bytes([IAC, DO, 24, IAC, DO, 32, IAC, SB, 24, 1, IAC, SE, IAC, WILL, 1])


def _login(user_keys: list[bytes], pass_keys: list[bytes], outcome: bytes) -> ListOutput:
    """A server prompting for login and password; the client types one key per packet (echoed)."""
    out = ListOutput()
    t = Telnet(_conn(23), out)
    ts = 11.0
    t.data(False, NEGOTIATION + b"\r\nDebian GNU/Linux 12\r\nhost login: ", ts)
    t.data(True, bytes([IAC, WILL, 24, IAC, SB, 24, 0]) + b"XTERM" + bytes([IAC, SE]), ts)
    for k in user_keys:
        t.data(True, k, ts)
        if k not in (b"\r\n", b"\r\0"):
            t.data(False, k if k != b"\x7f" else b"\x08 \x08", ts)
        ts += 0.1
    t.data(False, b"\r\nPassword: ", ts)
    for k in pass_keys:
        t.data(True, k, ts)
    t.data(False, outcome, ts + 1)
    t.end(ts + 2)
    return out


def test_telnet_login_success_char_at_a_time_with_backspace() -> None:
    keys = [b"r", b"x", b"\x7f", b"o", b"o", b"t", b"\r\0"]
    out = _login(keys, [b"t", b"o", b"o", b"r", b"\x08", b"r", b"\r\n"],
                 b"\r\nLast login: Mon Jan  1 10:00:00 from 10.0.0.9\r\nroot@host:~# ")
    assert [(c["protocol"], c["user"], c["secret"], c["success"]) for c in out.credentials] == [
        ("Telnet", "root", "toor", True)]


def test_telnet_login_failure_then_unknown() -> None:
    out = ListOutput()
    t = Telnet(_conn(23), out)
    t.data(False, NEGOTIATION + b"Username: ", 1.0)
    t.data(True, b"admin\r\n", 2.0)
    t.data(False, b"admin\r\nPassword:", 3.0)
    t.data(True, b"admin123\r\n", 4.0)
    t.data(False, b"\r\n% Login incorrect\r\n\r\nUsername: ", 5.0)
    t.data(True, b"cisco\r\n", 6.0)
    t.data(False, b"cisco\r\nPassword: ", 7.0)
    t.data(True, b"cisco\r\n", 8.0)
    t.end(9.0)
    assert [(c["user"], c["secret"], c["success"]) for c in out.credentials] == [
        ("admin", "admin123", False), ("cisco", "cisco", None)]


def test_telnet_iac_escape_in_data_and_detect() -> None:
    out = ListOutput()
    t = Telnet(_conn(23), out)
    t.data(False, b"login: ", 1.0)
    t.data(True, b"us" + bytes([IAC, IAC]) + b"er\r\n", 2.0)
    t.data(False, b"Password: ", 3.0)
    t.data(True, b"pw\r\n", 4.0)
    t.data(False, b"\r\n$ ", 5.0)
    assert [(c["user"], c["secret"], c["success"]) for c in out.credentials] == [("us\xffer", "pw", True)]
    assert Telnet.detect(NEGOTIATION, False, _conn(23))
    assert not Telnet.detect(b"SSH-2.0-OpenSSH\r\n", False, _conn(23))


# -- Kerberos: a tiny DER encoder to build the messages -------------------------------------------

def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def _ctx(n: int, body: bytes) -> bytes:
    return _tlv(0xA0 | n, body)


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _gstr(s: str) -> bytes:
    return _tlv(0x1B, s.encode())


def _name(ntype: int, *parts: str) -> bytes:
    return _tlv(0x30, _ctx(0, _int(ntype)) + _ctx(1, _tlv(0x30, b"".join(_gstr(p) for p in parts))))


def as_req(user: str, realm: str, app: int = 10) -> bytes:
    body = _tlv(0x30, _ctx(0, _tlv(0x03, b"\x00\x40\x81\x00\x10")) + _ctx(1, _name(1, user)) +
                _ctx(2, _gstr(realm)) + _ctx(3, _name(2, "krbtgt", realm)) +
                _ctx(5, _tlv(0x18, b"20370913024805Z")) + _ctx(7, _int(12345)) +
                _ctx(8, _tlv(0x30, _int(18) + _int(17))))
    return _tlv(0x60 | app, _tlv(0x30, _ctx(1, _int(5)) + _ctx(2, _int(app)) + _ctx(4, body)))


def as_rep(user: str, realm: str) -> bytes:
    ticket = _tlv(0x61, _tlv(0x30, _ctx(0, _int(5)) + _ctx(1, _gstr(realm)) + _ctx(2, _name(2, "krbtgt", realm))))
    enc = _tlv(0x30, _ctx(0, _int(18)) + _ctx(2, _tlv(0x04, b"\x01" * 40)))
    return _tlv(0x6B, _tlv(0x30, _ctx(0, _int(5)) + _ctx(1, _int(11)) + _ctx(3, _gstr(realm)) +
                           _ctx(4, _name(1, user)) + _ctx(5, ticket) + _ctx(6, enc)))


def krb_error(code: int, realm: str) -> bytes:
    return _tlv(0x7E, _tlv(0x30, _ctx(0, _int(5)) + _ctx(1, _int(30)) + _ctx(4, _tlv(0x18, b"20240101000000Z")) +
                           _ctx(5, _int(0)) + _ctx(6, _int(code)) + _ctx(9, _gstr(realm)) +
                           _ctx(10, _name(2, "krbtgt", realm))))


def test_kerberos_parse_message() -> None:
    assert parse_message(as_req("alice", "CORP.EXAMPLE")) == {
        "type": "AS-REQ", "client": "alice", "realm": "CORP.EXAMPLE", "service": "krbtgt/CORP.EXAMPLE",
        "error": None}
    assert parse_message(krb_error(24, "CORP.EXAMPLE"))["error"] == 24
    assert parse_message(as_rep("alice", "CORP.EXAMPLE"))["client"] == "alice"
    assert parse_message(b"\x30\x03\x02\x01\x05") is None


def test_kerberos_udp_preauth_failure_success_unknown_principal() -> None:
    out = ListOutput()
    k = Kerberos(_conn(88, "udp"), out)
    k.data(True, as_req("alice", "CORP.EXAMPLE"), 1.0)
    k.data(False, krb_error(25, "CORP.EXAMPLE"), 1.1)  # preauth required: not a login attempt
    k.data(True, as_req("alice", "CORP.EXAMPLE"), 2.0)
    k.data(False, krb_error(24, "CORP.EXAMPLE"), 2.1)
    k.data(True, as_req("alice", "CORP.EXAMPLE"), 3.0)
    k.data(False, as_rep("alice", "CORP.EXAMPLE"), 3.1)
    k.data(True, as_req("mallory", "CORP.EXAMPLE"), 4.0)
    k.data(False, krb_error(6, "CORP.EXAMPLE"), 4.1)
    k.data(True, as_req("bob", "CORP.EXAMPLE"), 5.0)
    k.end(9.0)
    assert [(c["protocol"], c["user"], c["secret"], c["success"]) for c in out.credentials] == [
        ("Kerberos", "alice@CORP.EXAMPLE", None, False), ("Kerberos", "alice@CORP.EXAMPLE", None, True),
        ("Kerberos", "mallory@CORP.EXAMPLE", None, False), ("Kerberos", "bob@CORP.EXAMPLE", None, None)]
    recs = out.logs("kerberos")
    assert [(r["request_type"], r["client"], r["success"], r["error_msg"]) for r in recs] == [
        ("AS", "alice/CORP.EXAMPLE", False, "KDC_ERR_PREAUTH_REQUIRED"),
        ("AS", "alice/CORP.EXAMPLE", False, "KDC_ERR_PREAUTH_FAILED"),
        ("AS", "alice/CORP.EXAMPLE", True, None),
        ("AS", "mallory/CORP.EXAMPLE", False, "KDC_ERR_C_PRINCIPAL_UNKNOWN"),
        ("AS", "bob/CORP.EXAMPLE", None, None)]
    assert recs[0]["service"] == "krbtgt/CORP.EXAMPLE"
    assert Kerberos.detect(as_req("a", "R"), True, _conn(88, "udp"))


def test_kerberos_tcp_framing_split_across_segments() -> None:
    out = ListOutput()
    k = KerberosTCP(_conn(88), out)
    req = as_req("carol", "EXAMPLE.ORG", app=10)
    framed = struct.pack(">I", len(req)) + req
    assert KerberosTCP.detect(framed, True, _conn(88))
    k.data(True, framed[:3], 1.0)
    k.data(True, framed[3:20], 1.0)
    k.data(True, framed[20:], 1.0)
    rep = as_rep("carol", "EXAMPLE.ORG")
    k.data(False, struct.pack(">I", len(rep)) + rep, 1.5)
    k.end(2.0)
    assert [(c["user"], c["success"]) for c in out.credentials] == [("carol@EXAMPLE.ORG", True)]


def test_kerberos_tgs_is_logged_not_a_credential() -> None:
    out = ListOutput()
    k = Kerberos(_conn(88, "udp"), out)
    k.data(True, as_req("svc", "R.ORG", app=12), 1.0)
    k.data(False, krb_error(7, "R.ORG"), 1.1)
    assert out.credentials == []
    assert [(r["request_type"], r["error_msg"]) for r in out.logs("kerberos")] == [
        ("TGS", "KDC_ERR_S_PRINCIPAL_UNKNOWN")]


# -- fuzz -----------------------------------------------------------------------------------------

_TELNET = [NEGOTIATION, b"login: ", b"Password: ", b"root\r\n", b"\x7f", b"\r\0", b"Login incorrect",
           b"$ ", bytes([IAC]), bytes([IAC, SB]), bytes([IAC, SE])]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=40), st.sampled_from(_TELNET))),
                max_size=30))
def test_telnet_fuzz_never_raises(chunks: list[tuple[bool, bytes]]) -> None:
    t = Telnet(_conn(23), ListOutput())
    for i, (side, b) in enumerate(chunks):
        t.data(side, b, float(i))
    t.end(99.0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=40), st.sampled_from(_TELNET)), st.booleans()),
                max_size=30))
def test_telnet_fuzz_with_gaps_never_raises(chunks: list[tuple[bool, bytes, bool]]) -> None:
    t = Telnet(_conn(23), ListOutput())
    for i, (side, b, lost) in enumerate(chunks):
        if lost:
            t.gap(side, len(b) + 1, float(i))
        else:
            t.data(side, b, float(i))
    t.end(99.0)


def _mutations() -> st.SearchStrategy[bytes]:
    seeds = [as_req("alice", "R"), as_rep("alice", "R"), krb_error(24, "R"), as_req("x", "R", app=12)]
    return st.tuples(st.sampled_from(seeds), st.integers(0, 200), st.binary(max_size=8)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=60), _mutations())), max_size=12))
def test_kerberos_fuzz_never_raises(msgs: list[tuple[bool, bytes]]) -> None:
    udp = Kerberos(_conn(88, "udp"), ListOutput())
    tcp = KerberosTCP(_conn(88), ListOutput())
    for i, (side, m) in enumerate(msgs):
        udp.data(side, m, float(i))
        tcp.data(side, struct.pack(">I", len(m)) + m if i % 2 else m, float(i))
        Kerberos.detect(m, side, _conn(88, "udp"))
    udp.end(99.0)
    tcp.end(99.0)


def test_kerberos_tcp_request_spanning_segments_is_detected() -> None:
    """A PKINIT AS-REQ carries certificates: over TCP its first segment holds only the start of
    it. Detection takes that start (the 4-byte length, [APPLICATION 10], pvno, msg-type) and the
    request is logged once the rest arrives."""
    req, rep = as_req("test_pkinit", "VLADG.NET"), as_rep("test_pkinit", "VLADG.NET")
    framed = struct.pack(">I", len(req)) + req
    assert KerberosTCP.detect(framed[:20], True, _conn(88))
    assert not KerberosTCP.detect(struct.pack(">I", len(req) + 1) + req[:16], True, _conn(88))  # length disagrees
    assert not KerberosTCP.detect(struct.pack(">I", len(req)) + b"\x6a" + b"\x00" * 20, True, _conn(88))
    out = ListOutput()
    p = KerberosTCP(_conn(88), out)
    p.data(True, framed[:20], 1.0)
    p.data(True, framed[20:], 1.1)
    p.data(False, struct.pack(">I", len(rep)) + rep, 1.2)
    p.end(2.0)
    assert [(r["request_type"], r["client"], r["success"]) for r in out.logs("kerberos")] == [
        ("AS", "test_pkinit/VLADG.NET", True)]
