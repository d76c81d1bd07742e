"""SSH parser: crafted identification and KEXINIT exchanges, fuzz, and Zeek's ssh.log baselines."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.ssh import SSH, negotiate, parse_kexinit
from tests.helpers import need
from tests.helpers.streams import run_on_trace as run_parser
from tests.helpers.zeek import ZEEK_APP, parse_zeek
from tests.helpers.zeek import trace_agreement as agreement

CLIENT_ALGS = {
    "kex": "curve25519-sha256,ecdh-sha2-nistp256,ext-info-c",
    "host_key": "ssh-ed25519,rsa-sha2-512",
    "enc_c2s": "chacha20-poly1305@openssh.com,aes128-ctr", "enc_s2c": "chacha20-poly1305@openssh.com,aes128-ctr",
    "mac_c2s": "umac-64-etm@openssh.com,hmac-sha2-256", "mac_s2c": "umac-64-etm@openssh.com,hmac-sha2-256",
    "cmp_c2s": "none,zlib@openssh.com", "cmp_s2c": "none,zlib@openssh.com",
}
SERVER_ALGS = {
    "kex": "ecdh-sha2-nistp256,curve25519-sha256,kex-strict-s-v00@openssh.com",
    "host_key": "rsa-sha2-512,ssh-ed25519",
    "enc_c2s": "aes128-ctr,chacha20-poly1305@openssh.com", "enc_s2c": "aes256-ctr,aes128-ctr",
    "mac_c2s": "hmac-sha2-256", "mac_s2c": "hmac-sha2-256",
    "cmp_c2s": "none", "cmp_s2c": "none",
}
HOST_KEY = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))


def string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def packet(payload: bytes) -> bytes:
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + b"\x00" * pad


def kexinit(algs: dict) -> bytes:
    lists = [algs[k] for k in ("kex", "host_key", "enc_c2s", "enc_s2c", "mac_c2s", "mac_s2c", "cmp_c2s", "cmp_s2c")]
    return packet(b"\x14" + b"\x07" * 16 + b"".join(string(x.encode()) for x in lists)
                  + string(b"") * 2 + b"\x00" + b"\x00" * 4)


def conn() -> Conn:
    return Conn("10.1.1.1", 40000, "203.0.113.9", 22, "tcp", 5.0)


def session(server_prefix: bytes = b"", *, split: int | None = None, auth: list[int] = ()) -> dict:
    """A full exchange up to NEWKEYS, then encrypted segments of the given sizes from the server."""
    chunks = [
        (True, b"SSH-2.0-OpenSSH_9.6\r\n"),
        (False, server_prefix + b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"),
        (True, kexinit(CLIENT_ALGS)),
        (False, kexinit(SERVER_ALGS)),
        (True, packet(b"\x1e" + string(b"\x01" * 32))),
        (False, packet(b"\x1f" + string(HOST_KEY) + string(b"\x02" * 32) + string(b"sig")) + packet(b"\x15")),
        (True, packet(b"\x15") + b"\x99" * 44),  # NEWKEYS then the first encrypted packet, one segment
    ] + [(False, b"\x88" * n) for n in auth]
    out = ListOutput()
    p = SSH(conn(), out)
    for i, (is_orig, data) in enumerate(chunks):
        step = split or len(data)
        for j in range(0, len(data), step):
            p.data(is_orig, data[j:j + step], 5.0 + i)
    p.end(99.0)
    (row,) = out.logs("ssh")
    return row


def test_negotiated_algorithms_and_fingerprints():
    r = session()
    assert r["client"] == "SSH-2.0-OpenSSH_9.6" and r["server"] == "SSH-2.0-OpenSSH_9.2p1 Debian"
    assert r["version"] == 2
    assert r["kex_alg"] == "curve25519-sha256"  # the client's first choice the server offers
    assert r["host_key_alg"] == "ssh-ed25519"
    assert r["cipher_alg"] == "To server: chacha20-poly1305@openssh.com, to client: aes128-ctr"
    assert r["mac_alg"] == "hmac-sha2-256" and r["compression_alg"] == "none"
    digest = base64.b64encode(hashlib.sha256(HOST_KEY).digest()).decode()
    assert r["host_key_fingerprint"] == "SHA256:" + digest[:32]
    # HASSH as its README defines it: MD5 of kex;enc;mac;cmp, the client's c2s lists / server's s2c
    c, s = CLIENT_ALGS, SERVER_ALGS
    assert r["hassh"] == hashlib.md5(";".join([c["kex"], c["enc_c2s"], c["mac_c2s"], c["cmp_c2s"]]).encode()).hexdigest()
    assert r["hasshServer"] == hashlib.md5(";".join([s["kex"], s["enc_s2c"], s["mac_s2c"], s["cmp_s2c"]]).encode()).hexdigest()
    assert r["direction"] == "OUTBOUND" and r["ts"] == 5.0
    assert r["auth_success"] is None and r["auth_attempts"] == 0


def test_byte_at_a_time_gives_the_same_record():
    assert session(split=1) == session()


def test_pre_banner_lines_from_the_server():
    r = session(b"Welcome\r\nauthorised users only\n")
    assert r["server"] == "SSH-2.0-OpenSSH_9.2p1 Debian" and r["kex_alg"] == "curve25519-sha256"
    assert SSH.detect(b"Welcome\r\nSSH-2.0-x\r\n", False, conn())
    assert SSH.detect(b"SSH-2.0-x\r\n", True, conn())
    assert not SSH.detect(b"Welcome\r\nSSH-2.0-x\r\n", True, conn())
    assert not SSH.detect(b"GET / HTTP/1.0\r\n", True, conn())


def test_auth_heuristic_follows_zeek():
    # service accept 64; 80 sets the failure size; 80 again is one failed attempt; 48 is success
    r = session(auth=[64, 80, 80, 48])
    assert (r["auth_success"], r["auth_attempts"]) == (True, 2)
    r = session(auth=[64, 80, 80, 80])
    assert (r["auth_success"], r["auth_attempts"]) == (False, 2)
    r = session(auth=[64, 48])  # "none" authentication accepted straight away
    assert (r["auth_success"], r["auth_attempts"]) == (True, 1)


@pytest.mark.parametrize(("client", "server", "version"), [
    ("SSH-1.99-Cisco-1.25", "SSH-2.0-Cisco-1.25", 2),
    ("SSH-2.0-OpenSSH_3.6.1p1", "SSH-1.99-OpenSSH_3.1p1", 2),
    ("SSH-1.5-x", "SSH-1.99-y", 1),
    ("SSH-1.99-x", "SSH-1.5-y", 1),
])
def test_version(client, server, version):
    out = ListOutput()
    p = SSH(conn(), out)
    p.data(True, client.encode() + b"\r\n", 1.0)
    p.data(False, server.encode() + b"\n", 1.1)
    p.end(2.0)
    assert out.logs("ssh")[0]["version"] == version


def test_server_only_has_no_version():
    out = ListOutput()
    p = SSH(conn(), out)
    p.data(False, b"SSH-2.0-OpenSSH_5.8\r\n" + kexinit(SERVER_ALGS), 1.0)
    p.end(2.0)
    r = out.logs("ssh")[0]
    assert r["version"] is None and r["client"] is None and r["kex_alg"] is None and r["hasshServer"]


def test_kexinit_helpers():
    lists = parse_kexinit(kexinit(CLIENT_ALGS)[5:])
    assert lists is not None and lists["kex"][0] == "curve25519-sha256" and lists["lang_c2s"] == []
    assert parse_kexinit(b"\x14" + b"\x00" * 16 + b"\xff\xff\xff\xff") is None
    assert negotiate(["a", "b"], ["c", "b", "a"]) == "a" and negotiate(["a"], ["b"]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=400)), max_size=12), st.booleans())
def test_fuzz_never_raises(chunks, with_banners):
    out = ListOutput()
    p = SSH(conn(), out)
    if with_banners:
        p.data(True, b"SSH-2.0-a\r\n", 0.5)
        p.data(False, b"SSH-2.0-b\r\n", 0.6)
    for i, (is_orig, data) in enumerate(chunks):
        if i == 5:
            p.gap(is_orig, 3, 1.0)
        p.data(is_orig, data, 1.0 + i)
    p.end(99.0)
    assert len(out.logs("ssh")) <= 1


def test_banner_buffer_is_bounded():
    p = SSH(conn(), ListOutput())
    for _ in range(40):
        p.data(False, b"x" * 4096, 1.0)  # no newline, ever
    assert len(p.sides[False].buf) <= 70000


# -- Zeek baselines ---------------------------------------------------------------------------
@pytest.mark.reference
def test_reference_ssh_log_agreement():
    hit, total, misses = agreement("ssh.log", ["id.orig_h", "id.resp_h", "client", "server"], SSH,
                                   ("ssh__", "tunnels__"))
    assert total == 24
    assert hit == total, misses


@pytest.mark.reference
def test_reference_algorithms_host_key_and_auth():
    """Beyond the judged keys: every other ssh.log column against Zeek, but one known miss."""
    manifest = json.loads(need(ZEEK_APP / "manifest.json", "Zeek app reference").read_text())
    fields = ["version", "auth_success", "auth_attempts", "direction", "cipher_alg", "mac_alg",
              "compression_alg", "kex_alg", "host_key_alg", "host_key_fingerprint"]
    agree = compared = 0
    differ = []
    for m in manifest:
        if "ssh.log" not in m["logs"]:
            continue
        base = parse_zeek((ZEEK_APP / m["logs"]["ssh.log"]).read_text())
        ours = {r["id.orig_p"]: r for r in run_parser(SSH, ZEEK_APP / m["trace"]).logs("ssh")}
        for b in base:
            o = ours[int(b["id.orig_p"])]
            for f in fields:
                got = o[f]
                got = "-" if got is None else ("T" if got is True else "F" if got is False else str(got))
                compared += 1
                if got == b[f]:
                    agree += 1
                else:
                    differ.append((m["trace"], f, got, b[f]))
    assert compared == 240
    # Zeek sees no authentication in the pre-banner trace; the size heuristic here sees two failures
    assert differ == [("ssh__server-pre-banner-data.pcap", "auth_success", "F", "-"),
                      ("ssh__server-pre-banner-data.pcap", "auth_attempts", "2", "0")]
