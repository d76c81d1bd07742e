"""Gap recovery: after lost bytes every line protocol resynchronises at its next line that parses
and goes on logging, pairing commands and replies again without shifting them; the dispatcher
reports a hole as soon as the receiver acknowledges past it (as Zeek does), not at the end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.ftp import FTP
from recorder.core.apps.http import HTTP
from recorder.core.apps.imap import IMAP
from recorder.core.apps.pop3 import POP3
from recorder.core.apps.smtp import SMTP
from recorder.core.apps.streams import Stream
from recorder.core.apps.telnet import Telnet
from tests.helpers import wiretrail_cli
from tests.helpers.packets import tcp_session

N = 30


def _ftp_lines() -> list[tuple[bool, bytes]]:
    s = [(False, b"220 FTP server ready\r\n"), (True, b"USER bob\r\n"), (False, b"331 Password required\r\n"),
         (True, b"PASS x\r\n"), (False, b"230 Logged in\r\n")]
    for i in range(N):
        s += [(True, f"RETR file{i}.txt\r\n".encode()), (False, f"550 file{i}.txt: No such file\r\n".encode())]
    return s


def _pop3_lines() -> list[tuple[bool, bytes]]:
    s = [(False, b"+OK POP3 ready\r\n"), (True, b"USER bob\r\n"), (False, b"+OK\r\n")]
    for i in range(N):
        s += [(True, f"DELE {i}\r\n".encode()), (False, f"-ERR no message {i}\r\n".encode())]
    return s


def _imap_lines() -> list[tuple[bool, bytes]]:
    s = [(False, b"* OK IMAP4rev1 ready\r\n")]
    for i in range(N):
        s += [(True, f"a{i} SELECT box{i}\r\n".encode()), (False, f"a{i} NO no box{i}\r\n".encode())]
    return s


def _http_messages() -> list[tuple[bool, bytes]]:
    """Requests and replies with bodies of known length, chunked bodies, a POST and empty replies;
    each reply's head and body are separate items (a body need not end with a line end)."""
    s: list[tuple[bool, bytes]] = []
    for i in range(N):
        body = (f"file {i} ".encode() * (i + 1))[: 20 + 13 * i]
        if i % 5 == 3:
            s += [(True, f"POST /form{i} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n\r\n".encode()),
                  (True, body), (False, b"HTTP/1.1 204 No Content\r\n\r\n")]
        elif i % 5 == 1:
            s += [(True, f"GET /chunked{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode()),
                  (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")]
            s += [(False, b"%x\r\n" % len(body[k:k + 17]) + body[k:k + 17] + b"\r\n") for k in range(0, len(body), 17)]
            s.append((False, b"0\r\n\r\n"))
        else:
            s += [(True, f"GET /file{i}.txt HTTP/1.1\r\nHost: h\r\n\r\n".encode()),
                  (False, f"HTTP/1.1 {404 if i % 7 == 0 else 200} OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()),
                  (False, body)]
    return s


def _telnet_lines() -> list[tuple[bool, bytes]]:
    s = [(False, b"\xff\xfd\x18Debian GNU/Linux 12\r\n")]
    for i in range(N // 2):
        # a terminal-type subnegotiation before each prompt: a gap inside it must not swallow the rest
        s += [(False, b"\xff\xfa\x18\x01\xff\xf0host login: "), (True, f"user{i}\r\n".encode()), (False, b"Password: "),
              (True, f"pw{i}\r\n".encode()), (False, b"\r\nLogin incorrect\r\n")]
    return s + [(False, b"host login: "), (True, b"root\r\n"), (False, b"Password: "), (True, b"toor\r\n"),
                (False, b"Last login: Mon\r\nroot@host:~# ")]


PROTOCOLS = {"ftp": (FTP, _ftp_lines, 21, lambda r: (r["command"], r["arg"], r["reply_code"])),
             "telnet": (Telnet, _telnet_lines, 23, lambda r: (r["user"], r["secret"], r["success"])),
             "pop3": (POP3, _pop3_lines, 110, lambda r: (r["command"], r["arg"], r["reply"])),
             "imap": (IMAP, _imap_lines, 143, lambda r: (r["command"], r["arg"], r["reply"])),
             "http": (HTTP, _http_messages, 80, lambda r: (r["method"], r["uri"], r["status_code"],
                                                          r["request_body_len"], r["response_body_len"]))}


def _segments(lines: list[tuple[bool, bytes]], cuts: list[int]) -> list[tuple[int, bool, bytes]]:
    """Each line as one or two segments (cut at ``cuts[i] % len``): (line index, side, bytes)."""
    out = []
    for i, (side, line) in enumerate(lines):
        c = cuts[i % len(cuts)] % len(line) if cuts else 0
        if c:
            out += [(i, side, line[:c]), (i, side, line[c:])]
        else:
            out.append((i, side, line))
    return out


def _run(name: str, segments, dropped: set[int]) -> list[tuple[float, tuple]]:
    cls, _, port, key = PROTOCOLS[name]
    out = ListOutput()
    p = cls(Conn("10.0.0.5", 40000, "10.0.0.9", port, "tcp", 0.0, uid="C1"), out)
    for k, (i, side, data) in enumerate(segments):
        if k in dropped:
            p.gap(side, len(data), float(i))
        else:
            p.data(side, data, float(i))
    p.end(1e6)
    rows = out.credentials if name == "telnet" else [r for n, r in out.records if n == name]
    return [(r["ts"], key(r)) for r in rows]


def _resyncs_at(name: str, line: tuple[bool, bytes]) -> bool:
    """Where a protocol goes on after a gap: any line, or for Telnet the server's next login prompt."""
    return name != "telnet" or (not line[0] and line[1].endswith(b"login: "))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PROTOCOLS)), st.lists(st.integers(0, 40), min_size=1, max_size=8),
       st.sets(st.integers(8, 4 * N), min_size=1, max_size=4))
def test_records_after_the_last_gap_equal_the_intact_streams(name, cuts, drop) -> None:
    segments = _segments(PROTOCOLS[name][1](), cuts)
    drop = {k for k in drop if k < len(segments)}
    intact = _run(name, segments, set())
    damaged = _run(name, segments, drop)
    if not drop:
        assert damaged == intact
        return
    # the first line starting wholly after the last lost segment
    last = max(drop)
    lines = PROTOCOLS[name][1]()
    after = next((segments[k][0] for k in range(last + 1, len(segments))
                  if segments[k][0] != segments[last][0] and _resyncs_at(name, lines[segments[k][0]])), None)
    if after is None:
        return
    if name == "http":  # a reply whose request was lost is logged on its own (no method): not in the intact log
        damaged = [r for r in damaged if r[1][0] is not None]
    assert [r for r in damaged if r[0] >= after] == [r for r in intact if r[0] >= after]


def test_smtp_transactions_after_a_gap() -> None:
    lines = [(False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 mx\r\n")]
    for i in range(6):
        lines += [(True, f"MAIL FROM:<a{i}@x>\r\n".encode()), (False, b"250 ok\r\n"),
                  (True, f"RCPT TO:<b{i}@y>\r\n".encode()), (False, b"250 ok\r\n"),
                  (True, b"DATA\r\n"), (False, b"354 go\r\n"),
                  (True, f"Subject: m{i}\r\n\r\nbody {i}\r\n.\r\n".encode()), (False, b"250 queued\r\n")]
    out = ListOutput()
    p = SMTP(Conn("10.0.0.5", 40000, "10.0.0.9", 25, "tcp", 0.0, uid="C1"), out)
    for k, (side, line) in enumerate(lines):
        if 11 <= k <= 13:  # the second mail's RCPT reply, DATA and 354 are lost (and half of RCPT)
            p.gap(side, len(line), float(k))
        elif k == 10:
            p.data(side, line[:9], float(k))
            p.gap(side, len(line) - 9, float(k))
        else:
            p.data(side, line, float(k))
    p.end(1e6)
    subjects = [(r["mailfrom"], r["subject"]) for r in out.logs("smtp")]
    assert [s for s in subjects if s[1] in {f"m{i}" for i in range(2, 6)}] == \
        [(f"a{i}@x", f"m{i}") for i in range(2, 6)]


def test_stream_reports_a_hole_once_acknowledged() -> None:
    got: list = []
    s = Stream(lambda d: got.append(d), lambda n: got.append(n))
    s.start(999, True)  # data from 1000
    s.add(1000, b"abc")
    s.add(1010, b"xyz")  # 1003-1009 lost
    assert got == [b"abc"]
    s.ack(1005)  # the receiver has up to 1004: 2 bytes of the hole are a gap, the rest may come
    assert got == [b"abc", 2]
    s.ack(1013)
    assert got == [b"abc", 2, 5, b"xyz"] and s.gaps == 7


def test_ftp_capture_with_lost_segments_logs_every_later_transfer(tmp_path: Path) -> None:
    """Through ingest: segments lost mid-session (one line split across two, its first half lost)
    are reported when the other side acknowledges past them, and every later command is logged
    with its reply."""
    lines = _ftp_lines()
    # RETR file5 (line 15): its first 6 bytes lost; lines 20, 21 and 24 lost whole
    cap = tcp_session(tmp_path / "ftp-gaps.pcap", lines, port=21, lost={15: 6, 20: None, 21: None, 24: None})
    db = tmp_path / "g.db"
    subprocess.run([wiretrail_cli(), "ingest", "--db", str(db), str(cap)], check=True, capture_output=True)
    rows = [json.loads(x) for x in subprocess.run([wiretrail_cli(), "ftp", "--db", str(db), "--format", "jsonl"],
                                                  check=True, capture_output=True, text=True).stdout.splitlines()]
    retr = [(r["arg"].rsplit("/", 1)[-1], r.get("reply_code")) for r in rows if r.get("command") == "RETR"]
    later = [f"file{i}.txt" for i in range(11, N)]
    assert [x for x in retr if x[0] in later] == [(f, 550) for f in later]


# -- TLS: resynchronised at the next valid record header -----------------------------------------

def _tls_records() -> list[tuple[bool, bytes]]:
    """ClientHello, ServerHello, then plaintext records that each add one history letter (warning
    alerts, heartbeats, HelloRequests and NewSessionTickets, both sides), then ChangeCipherSpec,
    an encrypted Finished and application data each way. Bodies avoid bytes that look like a record
    header, so the only headers are the real ones."""
    from tests.helpers.tls import client_hello, handshake, record, server_hello
    recs = [(True, record(22, client_hello(), 0x0301)), (False, record(22, server_hello()))]
    for i in range(40):
        side = i % 3 != 0
        kind = i % 4
        if kind == 0:
            recs.append((side, record(21, bytes([1, 40 + i]))))  # warning alert, a description per record
        elif kind == 1:
            recs.append((side, record(24, b"\x01\x00\x08" + b"A" * (8 + i))))
        elif kind == 2:
            recs.append((side, record(22, handshake(0, b""))))
        else:
            recs.append((side, record(22, handshake(4, b"\x00\x00\x00\x10" + b"B" * (20 + i)))))
    return recs + [(True, record(20, b"\x01")), (True, record(22, b"\x99" * 40)), (False, record(20, b"\x01")),
                   (False, record(22, b"\x98" * 40)), (True, record(23, b"\x55" * 50)),
                   (False, record(23, b"\x56" * 50))]


def _tls_run(segments, dropped: set[int]) -> tuple[list[int], list[str], bool]:
    """(history length before each segment, history, established)."""
    from recorder.core.apps.tls import TLS
    out = ListOutput()
    p = TLS(Conn("10.0.0.5", 40000, "10.0.0.9", 443, "tcp", 0.0, uid="C1"), out)
    before = []
    for k, (i, side, data) in enumerate(segments):
        before.append(len(p.history))
        if k in dropped:
            p.gap(side, len(data), float(i))
        else:
            p.data(side, data, float(i))
    p.end(1e6)
    rows = out.logs("ssl")
    return before, list(rows[0]["ssl_history"]) if rows else [], bool(rows and rows[0]["established"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 60), min_size=1, max_size=8), st.sets(st.integers(4, 90), min_size=1, max_size=4))
def test_tls_records_after_the_last_gap_equal_the_intact_streams(cuts, drop) -> None:
    segments = _segments(_tls_records(), cuts)
    drop = {k for k in drop if k < len(segments)}
    if not drop:
        return
    last = max(drop)
    after = next((k for k in range(last + 1, len(segments)) if segments[k][0] != segments[last][0]
                  and segments[k][0] != segments[k - 1][0]), None)
    if after is None:
        return
    before_i, hist_i, est_i = _tls_run(segments, set())
    before_d, hist_d, est_d = _tls_run(segments, drop)
    assert hist_d[before_d[after]:] == hist_i[before_i[after]:]
    # established needs a readable sign from each side that it encrypts: when the gaps took a
    # side's ChangeCipherSpec and its last record's header, nothing after them can tell
    whole = {segments[k][1] for k in range(after, len(segments)) if segments[k][0] != segments[k - 1][0]}
    if whole == {True, False}:
        assert est_d == est_i is True


def _tls12_chunks() -> list[tuple[bool, bytes]]:
    """A TLS 1.2 handshake (the certificate's bytes are filler: it is lost in these tests)."""
    from tests.helpers.tls import client_hello, handshake, record, server_hello, vec
    ch = record(22, client_hello(session_id=b""), 0x0301)
    ske = handshake(12, b"\x03\x00\x17" + vec(b"\x04" + b"\x05" * 64, 1) + b"\x04\x01" + vec(b"\x06" * 8, 2))
    cert = b"\x41" * 600
    server_flight = (record(22, server_hello(cipher=0xC02F, extensions=[(0xFF01, b"\x00")]))
                     + record(22, handshake(11, vec(vec(cert, 3), 3)) + ske) + record(22, handshake(14, b"")))
    client_flight = record(22, handshake(16, vec(b"\x07" * 65, 1))) + record(20, b"\x01") + record(22, b"\x99" * 40)
    return [(True, ch), (False, server_flight), (True, client_flight),
            (False, record(20, b"\x01") + record(22, b"\x98" * 40)), (True, record(23, b"\x55" * 100))]


def test_tls_gap_inside_the_certificate_still_logs_the_rest_of_the_handshake() -> None:
    chunks = _tls12_chunks()
    out = ListOutput()
    from recorder.core.apps.tls import TLS
    p = TLS(Conn("10.0.0.5", 40000, "10.0.0.9", 443, "tcp", 0.0, uid="C1"), out)
    for k, (side, data) in enumerate(chunks):
        if k == 1:  # the server's flight: ServerHello arrives, 300 bytes of the certificate record are lost
            from tests.helpers.tls import record, server_hello
            hello = len(record(22, server_hello(cipher=0xC02F, extensions=[(0xFF01, b"\x00")])))
            p.data(side, data[:hello + 20], 1.0)
            p.gap(side, 300, 1.0)
            p.data(side, data[hello + 320:], 1.0)
        else:
            p.data(side, data, float(k))
    p.end(9.0)
    [r] = out.logs("ssl")
    assert r["version"] == "TLSv12" and r["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert r["ssl_history"] == "CsnGIi" and r["established"] is True
    assert r.get("curve") is None  # the ServerKeyExchange was in the lost record


def _capture(tmp_path: Path, lines, port: int, lost: dict[int, int | None]) -> Path:
    """A TCP session carrying ``lines`` (side, bytes) one segment each, ingested; ``lost``: line
    index -> None (the whole segment lost) or n (its first n bytes lost, the rest sent as a segment)."""
    cap = tcp_session(tmp_path / "gaps.pcap", lines, port=port, lost=lost)
    db = tmp_path / "g.db"
    subprocess.run([wiretrail_cli(), "ingest", "--db", str(db), str(cap)], check=True, capture_output=True)
    return db


def _rows(db: Path, command: str) -> list[dict]:
    out = subprocess.run([wiretrail_cli(), command, "--db", str(db), "--format", "jsonl"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(x) for x in out.splitlines()]


def test_telnet_capture_with_lost_segments_logs_every_later_login(tmp_path: Path) -> None:
    lines = _telnet_lines()
    # lost: a whole user name, the end of a subnegotiation with the prompt after it, half a password
    db = _capture(tmp_path, lines, 23, {7: None, 11: 4, 19: 2})
    rows = [r for r in _rows(db, "credentials") if r["protocol"].lower() == "telnet"]
    got = [(r["user"], r["success"]) for r in rows]  # secrets are masked in listings
    later = [(f"user{i}", False) for i in range(4, N // 2)] + [("root", True)]
    assert got[-len(later):] == later


def test_tls_capture_with_a_lost_segment_is_still_established(tmp_path: Path) -> None:
    chunks = _tls12_chunks()
    server_flight = chunks[1][1]
    lines = [chunks[0], (False, server_flight[:200]), (False, server_flight[200:700]), (False, server_flight[700:]),
             *chunks[2:], (False, b"\x17\x03\x03\x00\x20" + b"\x66" * 32)]
    db = _capture(tmp_path, lines, 443, {2: None})
    [row] = _rows(db, "tls")
    assert row["version"] == "TLSv12" and row["established"] is True
    assert row["ssl_history"].endswith("nGIi")
