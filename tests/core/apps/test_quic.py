"""QUIC: Initial keys, header protection and decryption on the RFC 9001 / RFC 9369 sample packets,
handshakes built here (reordered CRYPTO frames, Retry, version 2) through the parser and the
dispatcher, fuzz, and Zeek's ssl.log baselines for the QUIC traces through ``wiretrail ingest``/``tls``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.dns import DNS
from recorder.core.apps.quic import (
    _MAX_CRYPTO,
    HANDSHAKE,
    INITIAL,
    QUIC,
    RETRY,
    VERSION_1,
    VERSION_2,
    PacketKeys,
    _CryptoStream,
    crypto_frames,
    decode_packet_number,
    initial_keys,
    parse_long_header,
    unprotect,
    varint,
)
from recorder.core.apps.tls import TLS
from tests.helpers.packets import udp, write
from tests.helpers.streams import run_app_layer as run
from tests.helpers.tls import client_hello, server_hello, u16s, vec
from tests.helpers.zeek import SSL_KEYS, our_ssl_rows, zeek_ssl_rows

# -- RFC 9001 appendix A (and RFC 9369 appendix A for version 2) ---------------------------------
DCID = bytes.fromhex("8394c8f03e515708")
CLIENT_HELLO_A = bytes.fromhex(  # the CRYPTO frame of A.2 (ClientHello for example.com)
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff")
CLIENT_INITIAL_V1 = bytes.fromhex(  # A.2: the protected 1200-byte client Initial
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934")
SERVER_HELLO_A = bytes.fromhex(  # A.3: the server Initial's payload (ACK, CRYPTO with the ServerHello)
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304")
SERVER_INITIAL_V1 = bytes.fromhex(  # A.3: the protected server Initial
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee")
CLIENT_INITIAL_V2_HEAD = bytes.fromhex(  # RFC 9369 A.2: the first 64 bytes of the protected client Initial
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04")


def _conn(port: int = 443) -> Conn:
    return Conn("192.0.2.1", 50000, "192.0.2.2", port, "udp", 1.0, uid="Cq")


def test_initial_keys_rfc9001_a1_and_rfc9369_a1() -> None:
    client, server = initial_keys(DCID, VERSION_1)
    assert client == PacketKeys(bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d"),
                                bytes.fromhex("fa044b2f42a3fd3b46fb255c"),
                                bytes.fromhex("9f50449e04a0e810283a1e9933adedd2"))
    assert server == PacketKeys(bytes.fromhex("cf3a5331653c364c88f0f379b6067e37"),
                                bytes.fromhex("0ac1493ca1905853b0bba03e"),
                                bytes.fromhex("c206b8d9b9f0f37644430b490eeaa314"))
    client2, server2 = initial_keys(DCID, VERSION_2)
    assert client2 == PacketKeys(bytes.fromhex("8b1a0bc121284290a29e0971b5cd045d"),
                                 bytes.fromhex("91f73e2351d8fa91660e909f"),
                                 bytes.fromhex("45b95e15235d6f45a6b19cbcb0294ba9"))
    assert server2.key == bytes.fromhex("82db637861d55e1d011f19ea71d5d2a7")
    assert initial_keys(DCID, 0x12345678) is None  # no salt for an unknown version


def test_client_initial_rfc9001_a2_decrypts() -> None:
    hdr = parse_long_header(CLIENT_INITIAL_V1)
    assert hdr is not None
    assert (hdr.version, hdr.ptype, hdr.dcid, hdr.scid, hdr.token) == (VERSION_1, INITIAL, DCID, b"", b"")
    assert (hdr.pn_offset, hdr.end) == (18, 1200)
    client, server = initial_keys(DCID, VERSION_1)
    pn, payload = unprotect(CLIENT_INITIAL_V1, hdr, client)
    assert pn == 2
    assert payload == CLIENT_HELLO_A + bytes(1162 - len(CLIENT_HELLO_A))  # the CRYPTO frame, then PADDING
    ((offset, hello),) = crypto_frames(payload)
    assert offset == 0 and hello == CLIENT_HELLO_A[4:] and hello[0] == 1 and len(hello) == 4 + 0xED
    assert unprotect(CLIENT_INITIAL_V1, hdr, server) is None  # the other side's keys do not authenticate
    tampered = bytearray(CLIENT_INITIAL_V1)
    tampered[500] ^= 1
    assert unprotect(bytes(tampered), hdr, client) is None
    tampered = bytearray(CLIENT_INITIAL_V1)
    tampered[1] ^= 1  # the header is authenticated too (here: the version byte)
    assert unprotect(bytes(tampered), hdr, client) is None


def test_server_initial_rfc9001_a3_decrypts() -> None:
    hdr = parse_long_header(SERVER_INITIAL_V1)
    assert hdr is not None and hdr.dcid == b"" and hdr.scid == bytes.fromhex("f067a5502a4262b5")
    _, server = initial_keys(DCID, VERSION_1)
    pn, payload = unprotect(SERVER_INITIAL_V1, hdr, server)
    assert pn == 1 and payload == SERVER_HELLO_A
    ((offset, hello),) = crypto_frames(payload)  # the ACK frame is skipped
    assert offset == 0 and hello[0] == 2 and len(hello) == 4 + 0x56


def test_version_2_header_rfc9369_a2() -> None:
    hdr = parse_long_header(CLIENT_INITIAL_V2_HEAD + bytes(1200 - 64))  # the length field needs 1200 bytes
    assert hdr is not None and (hdr.version, hdr.ptype, hdr.dcid) == (VERSION_2, INITIAL, DCID)

    def long(first: int, version: int, rest: bytes):
        return parse_long_header(bytes([first]) + version.to_bytes(4, "big") + b"\x08" + DCID + b"\x00" + rest)

    # version 2 numbers the packet types differently (RFC 9369 section 3.2)
    assert long(0xF0, VERSION_2, b"\x14" + bytes(20)).ptype == HANDSHAKE
    assert long(0xE0, VERSION_1, b"\x14" + bytes(20)).ptype == HANDSHAKE
    assert long(0xC0, VERSION_2, b"token" + bytes(16)).ptype == RETRY
    assert long(0xF0, VERSION_1, b"token" + bytes(16)).ptype == RETRY
    assert long(0xD0, VERSION_1, b"\x14" + bytes(20)).ptype == 1  # 0-RTT


def test_varint_and_packet_number_rfc9000_examples() -> None:
    assert varint(bytes.fromhex("c2197c5eff14e88c"), 0) == (151288809941952652, 8)
    assert varint(bytes.fromhex("9d7f3e7d"), 0) == (494878333, 4)
    assert varint(bytes.fromhex("7bbd"), 0) == (15293, 2)
    assert varint(bytes.fromhex("25"), 0) == (37, 1)
    with pytest.raises(ValueError):
        varint(bytes.fromhex("7b"), 0)
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32  # RFC 9000 A.3
    assert decode_packet_number(-1, 2, 32) == 2


# -- handshakes built here -----------------------------------------------------------------------

def protect(keys: PacketKeys, *, version: int, dcid: bytes, scid: bytes, pn: int, frames: bytes,
            pad_to: int = 0) -> bytes:
    """A protected Initial packet (2-byte packet number), the inverse of ``unprotect``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    payload = frames + bytes(max(0, pad_to - len(frames)) + max(0, 4 - len(frames)))
    length = 2 + len(payload) + 16
    first = 0xC0 | ((1 if version == VERSION_2 else 0) << 4) | 0x01
    header = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
              + b"\x00" + (0x4000 | length).to_bytes(2, "big") + pn.to_bytes(2, "big"))
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(keys.key).encrypt(nonce, payload, header)
    mask = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor().update(sealed[2:18])
    out = bytearray(header + sealed)
    out[0] ^= mask[0] & 0x0F
    pn_off = len(header) - 2
    out[pn_off] ^= mask[1]
    out[pn_off + 1] ^= mask[2]
    return bytes(out)


def crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + (0x80000000 | offset).to_bytes(4, "big") + (0x4000 | len(data)).to_bytes(2, "big") + data


def hellos(sni: str = "quic.example") -> tuple[bytes, bytes]:
    ch = client_hello(ciphers=(0x1301, 0x1302), extensions=[
        (0, vec(b"\x00" + vec(sni.encode(), 2), 2)), (43, vec(u16s([0x0304]), 1)),
        (51, vec(u16s([29]) + vec(b"\x01" * 32, 2), 2)), (16, vec(vec(b"h3", 1), 2)), (57, b"\x01\x02\x40\x64")])
    sh = server_hello(cipher=0x1301, extensions=[(43, b"\x03\x04"), (51, u16s([29]) + vec(b"\x02" * 32, 2))])
    return ch, sh


def feed(datagrams: list[tuple[bool, bytes]]) -> ListOutput:
    out = ListOutput()
    conn = _conn()
    p = QUIC(conn, out)
    for i, (is_orig, d) in enumerate(datagrams):
        p.data(is_orig, d, 10.0 + i)
    p.end(99.0)
    assert conn.services == (["ssl"] if out.records else [])
    return out


def test_rfc_sample_handshake_gives_an_ssl_record() -> None:
    (rec,) = feed([(True, CLIENT_INITIAL_V1), (False, SERVER_INITIAL_V1)]).logs("ssl")
    assert (rec["version"], rec["cipher"], rec["curve"], rec["server_name"]) == (
        "TLSv13", "TLS_AES_128_GCM_SHA256", "x25519", "example.com")
    assert rec["ssl_history"] == "Cs" and rec["established"] is False and rec["resumed"] is False
    assert rec["alpn"] == ["alpn"] and rec["ja4"].startswith("q13d0211an_") and rec["ts"] == 10.0


def test_reordered_crypto_frames_coalesced_packets_and_retransmissions() -> None:
    ch, sh = hellos()
    client, server = initial_keys(DCID, VERSION_1)
    parts = [ch[:50], ch[50:120], ch[120:]]
    offs = [0, 50, 120]
    p0 = protect(client, version=VERSION_1, dcid=DCID, scid=b"\x0c" * 4, pn=0,
                 frames=crypto(offs[2], parts[2]) + b"\x01" + b"\x00" * 7 + crypto(offs[0], parts[0]), pad_to=1100)
    p1 = protect(client, version=VERSION_1, dcid=DCID, scid=b"\x0c" * 4, pn=1, frames=crypto(offs[1], parts[1]),
                 pad_to=1100)
    s0 = protect(server, version=VERSION_1, dcid=b"\x0c" * 4, scid=b"\x5e" * 8, pn=0,
                 frames=bytes.fromhex("0200000000") + crypto(0, sh))
    handshake_pkt = bytes([0xE0]) + (1).to_bytes(4, "big") + b"\x04" + b"\x0c" * 4 + b"\x08" + b"\x5e" * 8 + b"\x40\x20" + b"\x77" * 32
    short = b"\x40" + b"\x0c" * 4 + b"\x99" * 40
    (rec,) = feed([(True, p0), (True, p0), (True, p1), (False, s0 + handshake_pkt), (True, short),
                   (False, short)]).logs("ssl")
    assert (rec["version"], rec["cipher"], rec["server_name"], rec["ssl_history"]) == (
        "TLSv13", "TLS_AES_128_GCM_SHA256", "quic.example", "Cs")
    assert rec["next_protocol"] is None and rec["alpn"] == ["h3"]


def test_crypto_stream_overlaps_duplicates_and_bounds() -> None:
    msg = bytes([1]) + (30).to_bytes(3, "big") + bytes(range(30))
    s = _CryptoStream()
    s.add(20, msg[20:])
    s.add(5, msg[5:25])  # overlaps the piece after it
    s.add(20, msg[20:30])  # a shorter duplicate is ignored
    assert s.messages() == []
    s.add(0, msg[:8])
    assert s.messages() == [msg] and s.pieces == {} and s.held == 0
    s.add(0, msg)  # a retransmission of what was delivered
    assert s.messages() == []
    big = _CryptoStream()
    for off in range(100, _MAX_CRYPTO + 5000, 1000):
        big.add(off, bytes(1000))
    assert big.held <= _MAX_CRYPTO and all(off + len(d) <= _MAX_CRYPTO for off, d in big.pieces.items())


def test_retry_gives_a_second_client_hello_under_new_keys() -> None:
    ch, sh = hellos("retry.example")
    first_dcid, retry_scid = DCID, bytes.fromhex("1b036a11")
    c0, _ = initial_keys(first_dcid, VERSION_1)
    c1, s1 = initial_keys(retry_scid, VERSION_1)
    retry = bytes([0xF0]) + (1).to_bytes(4, "big") + b"\x04" + b"\xaa" * 4 + b"\x04" + retry_scid + b"token" + bytes(16)
    (rec,) = feed([
        (True, protect(c0, version=VERSION_1, dcid=first_dcid, scid=b"\xaa" * 4, pn=0, frames=crypto(0, ch), pad_to=1100)),
        (False, retry),
        (True, protect(c1, version=VERSION_1, dcid=retry_scid, scid=b"\xaa" * 4, pn=1, frames=crypto(0, ch), pad_to=1100)),
        (False, protect(s1, version=VERSION_1, dcid=b"\xaa" * 4, scid=b"\xbb" * 4, pn=0, frames=crypto(0, sh))),
    ]).logs("ssl")
    assert rec["ssl_history"] == "CCs" and rec["server_name"] == "retry.example" and rec["version"] == "TLSv13"


def test_version_2_handshake() -> None:
    ch, sh = hellos("v2.example")
    client, server = initial_keys(DCID, VERSION_2)
    (rec,) = feed([
        (True, protect(client, version=VERSION_2, dcid=DCID, scid=b"", pn=0, frames=crypto(0, ch), pad_to=1100)),
        (False, protect(server, version=VERSION_2, dcid=b"", scid=b"\x01" * 4, pn=0, frames=crypto(0, sh))),
    ]).logs("ssl")
    assert (rec["version"], rec["server_name"], rec["ssl_history"]) == ("TLSv13", "v2.example", "Cs")


def test_undecryptable_traffic_logs_nothing() -> None:
    ch, _ = hellos()
    wrong, _ = initial_keys(b"\x01" * 8, VERSION_1)  # keys of another connection ID
    pkt = protect(wrong, version=VERSION_1, dcid=DCID, scid=b"", pn=0, frames=crypto(0, ch), pad_to=1100)
    assert feed([(True, pkt), (True, b"\x40" + bytes(50))]).records == []


def test_detect() -> None:
    c = _conn()
    assert QUIC.detect(CLIENT_INITIAL_V1, True, c)
    assert QUIC.detect(SERVER_INITIAL_V1, False, c)
    assert QUIC.detect(CLIENT_INITIAL_V2_HEAD + bytes(1136), True, c)
    assert not QUIC.detect(CLIENT_INITIAL_V1[:600], True, c)  # the length field runs past the datagram
    assert not QUIC.detect(b"\x80\x00\x00\x00\x00\x08" + DCID + b"\x00\x00\x00\x00\x01", True, c)  # version negotiation
    assert not QUIC.detect(bytes([0xE0]) + CLIENT_INITIAL_V1[1:], True, c)  # a Handshake packet does not start one
    assert not QUIC.detect(b"\x40" + bytes(100), True, c)  # short header
    assert not QUIC.detect(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
                           True, c)  # a DNS query
    assert not DNS.detect(CLIENT_INITIAL_V1, True, c)  # and DNS does not take QUIC


def test_through_the_dispatcher_on_any_port(tmp_path: Path) -> None:
    for port in (443, 8853):
        pkts = [(0.0, udp("10.0.0.1", 50000, "10.0.0.2", port, CLIENT_INITIAL_V1)),
                (0.05, udp("10.0.0.2", port, "10.0.0.1", 50000, SERVER_INITIAL_V1)),
                (0.10, udp("10.0.0.1", 50000, "10.0.0.2", port, b"\x40" + DCID + bytes(30)))]
        app, out, _ = run(write(tmp_path / "q.pcap", pkts), [DNS, QUIC])
        (rec,) = out.logs("ssl")
        assert (rec["id.orig_h"], rec["id.resp_p"], rec["server_name"]) == ("10.0.0.1", port, "example.com")
        assert dict(app.services()) == {rec["uid"]: ["quic", "ssl"]}


def test_cryptography_is_imported_only_for_quic_packets() -> None:
    code = ("import sys; import recorder.core.apps.registry, recorder.core.apps.dispatch; "
            "from recorder.core.apps.quic import QUIC; QUIC.detect(bytes.fromhex(sys.argv[1]), True, None); "
            "print(any(m == 'cryptography' or m.startswith('cryptography.') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, CLIENT_INITIAL_V1.hex()], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


# -- fuzz -----------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1199), st.integers(0, 255)), max_size=6),
       st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=6), st.integers(0, 1200))
def test_fuzz_never_raises(flips, junk, cut) -> None:
    """Random datagrams, and the sample packets with bytes changed or cut, in any mix."""
    client = bytearray(CLIENT_INITIAL_V1)
    server = bytearray(SERVER_INITIAL_V1)
    for on_client, pos, value in flips:
        target = client if on_client else server
        target[pos % len(target)] = value
    grams = [(True, bytes(client)), (True, bytes(client[:cut])), (False, bytes(server)),
             (False, bytes(server) + bytes(client[cut:]))] + junk
    conn = _conn()
    for is_orig, d in grams:
        QUIC.detect(d, is_orig, conn)
    p = QUIC(conn, ListOutput())
    for i, (is_orig, d) in enumerate(grams):
        p.data(is_orig, d, 1.0 + i)
    p.end(50.0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_frame_and_header_readers_never_raise(raw: bytes) -> None:
    crypto_frames(raw)
    parse_long_header(raw)
    parse_long_header(b"\xc0\x00\x00\x00\x01" + raw)


# -- Zeek's baselines, through the CLI --------------------------------------------------------------

@pytest.mark.reference
@pytest.mark.parametrize("trace", ["quic__interop__quic-go_quic-go__retry.pcap", "quic__quic-39264-rand.pcap",
                                   "quic__quicdoq.pcap", "quic__quicv2-echo-443.pcap"])
def test_quic_traces_agree_with_zeek(trace: str, tmp_path: Path) -> None:
    want = zeek_ssl_rows(trace)
    ours, flows = our_ssl_rows(trace, tmp_path)
    keys = SSL_KEYS + ["curve", "resumed", "established", "ssl_history", "cert_chain_fps"]
    assert [[r[k] for k in keys] for r in ours] == [[r[k] for k in keys] for r in want]
    assert all(r["ja4"].startswith("q13") for r in ours)
    assert {f["service"] for f in flows if f["uid"] == ours[0]["uid"]} == {"quic,ssl"}
    assert TLS.logs["ssl"] == QUIC.logs["ssl"]
