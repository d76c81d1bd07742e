"""HTTP as real taps carry it: segments lost mid-session (the parser resynchronises at the next
request or status line and logs every later transaction), and NTLM carried over HTTP
(``Authorization: NTLM|Negotiate``, ``WWW-Authenticate``) into ntlm.log as for SMB and DCE-RPC,
the account in credentials as an account seen (no secret), the outcome from the reply to the
AUTHENTICATE. Crafted conversations and scapy-built captures through ingest."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.http import HTTP
from tests.helpers import wiretrail_cli
from tests.helpers.packets import tcp_session
from tests.helpers.smb import ntlm_authenticate, ntlm_challenge, ntlm_negotiate

NEGOTIATE = ntlm_negotiate()


def _spnego(token: bytes) -> bytes:
    """A GSS-API/SPNEGO-looking wrapper around an NTLM token (as a Negotiate header carries it)."""
    inner = b"\x04" + bytes([len(token)]) + token if len(token) < 128 else b"\x04\x82" + len(token).to_bytes(2, "big") + token
    return b"\x60\x82" + len(inner).to_bytes(2, "big") + b"\x06\x06\x2b\x06\x01\x05\x05\x02" + inner


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _exchange(scheme: str, user: str, final: int, wrap=lambda b: b) -> list[tuple[bool, bytes]]:
    """A browser's NTLM handshake: anonymous GET -> 401, NEGOTIATE -> 401 + CHALLENGE, AUTHENTICATE -> final."""
    empty = b"Content-Length: 0\r\n\r\n"
    return [
        (True, b"GET /intranet HTTP/1.1\r\nHost: portal\r\n\r\n"),
        (False, f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {scheme}\r\n".encode() + empty),
        (True, f"GET /intranet HTTP/1.1\r\nHost: portal\r\nAuthorization: {scheme} {_b64(wrap(NEGOTIATE))}\r\n\r\n".encode()),
        (False, f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {scheme} "
                f"{_b64(wrap(ntlm_challenge('PORTAL', 'portal.corp.local', 'corp.local')))}\r\n".encode() + empty),
        (True, f"GET /intranet HTTP/1.1\r\nHost: portal\r\nAuthorization: {scheme} "
               f"{_b64(wrap(ntlm_authenticate('CORP', user)))}\r\n\r\n".encode()),
        (False, f"HTTP/1.1 {final} X\r\n".encode() + empty),
    ]


def _run(script: list[tuple[bool, bytes]]) -> ListOutput:
    out = ListOutput()
    p = HTTP(Conn("10.0.0.5", 49800, "10.0.0.9", 80, "tcp", 0.0, uid="C1"), out)
    for i, (side, data) in enumerate(script):
        p.data(side, data, float(i))
    p.end(99.0)
    assert p.errors == 0
    return out


def test_ntlm_over_http_goes_to_ntlm_log_and_the_account_is_seen() -> None:
    out = _run(_exchange("NTLM", "dave", 200))
    (rec,) = out.logs("ntlm")
    assert (rec["username"], rec["domainname"], rec["hostname"], rec["server_nb_computer_name"],
            rec["server_dns_computer_name"], rec["server_tree_name"], rec["success"]) == \
        ("dave", "CORP", "WS", "PORTAL", "portal.corp.local", "corp.local", True)
    assert [(c["protocol"], c["user"], c["secret"], c["success"]) for c in out.credentials] == \
        [("NTLM", "CORP\\dave", None, True)]
    assert [r["status_code"] for r in out.logs("http")] == [401, 401, 200]


def test_refused_ntlm_login_and_negotiate_wrapping() -> None:
    refused = _run(_exchange("NTLM", "mallory", 401))
    assert [(r["username"], r["success"]) for r in refused.logs("ntlm")] == [("mallory", False)]
    assert [(c["user"], c["success"]) for c in refused.credentials] == [("CORP\\mallory", False)]
    wrapped = _run(_exchange("Negotiate", "erin", 200, wrap=_spnego))
    assert [(r["username"], r["server_nb_computer_name"], r["success"]) for r in wrapped.logs("ntlm")] == \
        [("erin", "PORTAL", True)]
    assert [(c["protocol"], c["user"]) for c in wrapped.credentials] == [("NTLM", "CORP\\erin")]


def test_no_ntlm_record_without_ntlm() -> None:
    out = _run([(True, b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate YIIBAAAA\r\n\r\n"),
                (False, b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n")])
    assert out.logs("ntlm") == [] and out.credentials == []


def write_session(path: Path, script: list[tuple[bool, bytes]], *, port: int = 80,
                  lost: frozenset[int] = frozenset()) -> Path:
    """``script`` as one TCP session; the segments whose index is in ``lost`` are left out of the
    capture (the receiver still acknowledges past them)."""
    return tcp_session(path, script, port=port, sport=49800, lost=dict.fromkeys(lost))


def _listing(cli: str, what: str, db: Path) -> list[dict]:
    run = subprocess.run([cli, what, "--db", str(db), "--format", "jsonl"], check=True, capture_output=True, text=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_ntlm_over_http_capture_end_to_end(tmp_path: Path) -> None:
    cli = wiretrail_cli()
    cap = write_session(tmp_path / "http-ntlm.pcap", _exchange("NTLM", "dave", 200))
    db = tmp_path / "n.db"
    subprocess.run([cli, "ingest", "--db", str(db), str(cap)], check=True, capture_output=True)
    assert [(r["username"], r["domainname"], r["server_nb_computer_name"], r["success"])
            for r in _listing(cli, "ntlm", db)] == [("dave", "CORP", "PORTAL", True)]
    assert [(c["protocol"], c["user"], c.get("secret")) for c in _listing(cli, "credentials", db)] == \
        [("NTLM", "CORP\\dave", None)]


def _transactions(n: int) -> list[tuple[bool, bytes]]:
    s: list[tuple[bool, bytes]] = []
    for i in range(n):
        body = f"<p>page {i}</p>".encode() * (i + 3)
        s.append((True, f"GET /page{i}.html HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t\r\n\r\n".encode()))
        if i % 3 == 1:  # chunked, in two chunks
            half = len(body) // 2
            s.append((False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
            s.append((False, b"%x\r\n%s\r\n" % (half, body[:half])))
            s.append((False, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:])))
        else:
            s.append((False, f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()))
            s.append((False, body))
    return s


def test_capture_with_lost_segments_logs_every_later_transaction(tmp_path: Path) -> None:
    """Through ingest: a request, a status line with its headers, a body's middle and a chunk
    header are lost mid-session; the dispatcher reports each hole when the other side
    acknowledges past it, and every transaction after the last loss is logged whole."""
    cli = wiretrail_cli()
    script = _transactions(30)
    firsts = [k for k, (side, _) in enumerate(script) if side]  # each transaction's request
    lost = frozenset({firsts[8], firsts[11] + 1, firsts[14] + 2, firsts[16] + 2})
    # transaction 8's request, 11's status line, 14's body (known length), 16's first chunk
    assert script[firsts[16] + 2][1].startswith(b"%x\r\n" % (len(b"<p>page 16</p>" * 19) // 2))
    cap = write_session(tmp_path / "http-gaps.pcap", script, lost=lost)
    db = tmp_path / "g.db"
    subprocess.run([cli, "ingest", "--db", str(db), str(cap)], check=True, capture_output=True)
    rows = _listing(cli, "http", db)
    logged = [(r.get("uri"), r.get("status_code"), r.get("response_body_len")) for r in rows]
    later = [(f"/page{i}.html", 200, len(f"<p>page {i}</p>".encode() * (i + 3))) for i in range(17, 30)]
    assert [x for x in logged if x[0] in {u for u, _, _ in later}] == later
    # the transactions spanning a loss are logged with what is known
    by_uri = {r.get("uri"): r for r in rows}
    assert "/page8.html" not in by_uri  # its request was lost: its reply is logged on its own
    assert any(r.get("uri") is None and r.get("status_code") == 200 for r in rows)
    assert by_uri["/page11.html"].get("status_code") is None
    assert by_uri["/page14.html"]["response_body_len"] == len(b"<p>page 14</p>" * 17)  # the gap counted
