"""FTP control and data channels: crafted conversations, the reference traces, a fuzz test.

The reference traces are fed to the parsers by ``tests.helpers.streams.tcp_streams`` (a test-only
stand-in for the dispatcher) and compared with Zeek's logs by ``tests.helpers.zeek``.
"""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, ListOutput, Parser
from recorder.core.apps.ftp import FTP, FTPData, build_path_compressed, parse_eprt, parse_port
from tests.helpers import need
from tests.helpers.streams import run_parser, tcp_streams
from tests.helpers.zeek import ZEEK_APP, norm, zeek_header, zeek_rows
from tests.helpers.zeek import stream_agreement as agreement

APP = ZEEK_APP
FTP_KEYS = ["id.orig_h", "id.resp_h", "user", "command", "arg", "reply_code"]  # compare_app.KEYS["ftp.log"]



# -- crafted conversations ----------------------------------------------------------------------

def _conn(port: int = 21) -> Conn:
    return Conn("10.0.0.1", 40000, "10.0.0.2", port, "tcp", 1000.0, uid="Ctest")


def _talk(parser: Parser, script: list[tuple[bool, bytes]]) -> None:
    for i, (side, data) in enumerate(script):
        parser.data(side, data, 1000.0 + i)
    parser.end(2000.0)


def test_ftp_login_success_and_log_records() -> None:
    out = ListOutput()
    ftp = FTP(_conn(), out)
    _talk(ftp, [
        (False, b"220 FTP server ready\r\n"), (True, b"USER alice\r\n"), (False, b"331 Password required\r\n"),
        (True, b"PASS s3cret\r\n"), (False, b"230-Welcome\r\n  to the box\r\n230 Logged in\r\n"),
        (True, b"CWD /srv/data\r\n"), (False, b"250 CWD ok\r\n"),
        (True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,2,19,137)\r\n"),
        (True, b"RETR report.pdf\r\n"), (False, b"150 Opening BINARY mode (1234 bytes)\r\n"),
        (False, b"226 Transfer complete\r\n"), (True, b"QUIT\r\n"), (False, b"221 Bye\r\n"),
    ])
    assert out.credentials == [{"ts": 1003.0, **_conn().ident(), "protocol": "FTP", "user": "alice",
                                "secret": "s3cret", "success": True, "note": None}]
    recs = out.logs("ftp")
    assert [r["command"] for r in recs] == ["PASV", "RETR"]
    assert all(r["user"] == "alice" and r["password"] == "<hidden>" for r in recs)
    assert recs[0]["data_channel.resp_p"] == 19 * 256 + 137 and recs[0]["data_channel.passive"] is True
    assert recs[1]["arg"] == "ftp://10.0.0.2/srv/data/report.pdf"
    assert (recs[1]["reply_code"], recs[1]["reply_msg"], recs[1]["file_size"]) == (226, "Transfer complete", 1234)
    exp = out.expected[0]
    assert (exp["orig_h"], exp["resp_h"], exp["resp_p"], exp["parser"]) == ("10.0.0.1", "10.0.0.2", 5001, FTPData)
    assert exp["context"]["control_uid"] == "Ctest" and exp["context"]["session"]["filename"] == "report.pdf"


def test_ftp_login_failure_and_anonymous_password_shown() -> None:
    out = ListOutput()
    _talk(FTP(_conn(), out), [
        (False, b"220 ready\r\n"), (True, b"USER bob\r\n"), (False, b"331 pw\r\n"),
        (True, b"PASS wrong\r\n"), (False, b"530 Login incorrect.\r\n"),
        (True, b"USER anonymous\r\n"), (False, b"331 pw\r\n"), (True, b"PASS me@x.org\r\n"),
        (False, b"230 ok\r\n"), (True, b"PORT 10,0,0,1,200,10\r\n"), (False, b"200 PORT ok\r\n"),
        (True, b"STOR up.bin\r\n"), (False, b"150 go\r\n"), (False, b"226 done\r\n"),
    ])
    assert [(c["user"], c["secret"], c["success"]) for c in out.credentials] == [
        ("bob", "wrong", False), ("anonymous", "me@x.org", True)]
    recs = out.logs("ftp")
    assert [(r["command"], r["password"]) for r in recs] == [("PORT", "me@x.org"), ("STOR", "me@x.org")]
    assert recs[0]["data_channel.orig_h"] == "10.0.0.2" and recs[0]["data_channel.resp_p"] == 51210
    assert recs[1]["arg"] == "ftp://10.0.0.2/up.bin"


def test_ftp_auth_tls_hands_over_after_234() -> None:
    out = ListOutput()
    ftp = FTP(_conn(), out)
    ftp.data(False, b"220 ready\r\n", 1.0)
    ftp.data(True, b"AUTH TLS\r\n", 2.0)
    assert not ftp.redetect
    ftp.data(False, b"234 AUTH TLS ok\r\n", 3.0)
    assert ftp.redetect


def test_ftp_detect() -> None:
    c = _conn()
    assert FTP.detect(b"220 ProFTPD Server ready\r\n", False, c)
    assert FTP.detect(b"USER anonymous\r\n", True, c)
    assert not FTP.detect(b"220 mx.example.com ESMTP Postfix\r\n", False, c)
    assert not FTP.detect(b"GET / HTTP/1.1\r\n", True, c)
    assert not FTP.detect(b"USER alice\r\n", True, _conn(110))


def test_ftp_helpers() -> None:
    assert parse_port("10,0,0,1,4,1") == ("10.0.0.1", 1025)
    assert parse_port("300,0,0,1,4,1") is None
    assert parse_eprt("|2|2001:db8::1|49189|") == ("2001:db8::1", 49189)
    assert parse_eprt("|2|x|") is None
    assert build_path_compressed(".", "robots.txt") == "robots.txt"
    assert build_path_compressed("/pub/a", "../b/./c.txt") == "/pub/b/c.txt"


def test_ftp_data_carves_the_file() -> None:
    original = bytes(range(256)) * 4099 + b"tail"
    out = ListOutput()
    session = {"command": "RETR", "filename": "pub/big.tar.gz"}
    data_conn = Conn("10.0.0.1", 40001, "10.0.0.2", 5001, "tcp", 1000.0, uid="Cdata")
    parser = FTPData(data_conn, out, {"command": "PASV", "filename": None, "control_uid": "Ctest",
                                      "session": session})
    for i in range(0, len(original), 1460):
        parser.data(False, original[i:i + 1460], 1000.0 + i / 1e6)
    parser.end(1001.0)
    (f,) = out.files
    assert hashlib.sha256(f["data"]).hexdigest() == hashlib.sha256(original).hexdigest()
    assert (f["source"], f["filename"], f["is_orig"], f["missing_bytes"]) == ("FTP_DATA", "big.tar.gz", False, 0)
    assert session["fuid"] == f["fuid"]


def test_ftp_data_counts_a_gap_as_missing() -> None:
    out = ListOutput()
    parser = FTPData(Conn("10.0.0.2", 20, "10.0.0.1", 5001, "tcp", 0.0), out, {"filename": "x.bin"})
    parser.data(True, b"a" * 100, 1.0)
    parser.gap(True, 50, 1.1)
    parser.data(True, b"b" * 10, 1.2)
    parser.end(2.0)
    assert out.files[0]["missing_bytes"] == 50 and out.files[0]["is_orig"] is True
    assert out.files[0]["data"] == b"a" * 100 + b"b" * 10 and out.files[0]["filename"] == "x.bin"


# -- the reference traces -----------------------------------------------------------------------

def test_ftp_log_agrees_with_zeek_baselines() -> None:
    hit, total, misses = agreement("ftp.log", FTP_KEYS, {"ftp": FTP})
    assert total == 9
    assert hit == total, misses


def test_ftp_log_every_field_but_ids_agrees_in_order() -> None:
    """Beyond the scored keys: password, file_size, reply_msg and data_channel.* too, record by
    record in Zeek's order (ts, uid and fuid are the framework's)."""
    for trace in ("ftp__ipv6.pcap", "ftp__ipv6-multiline-reply.pcap"):
        base = zeek_rows(need(APP / trace.replace(".pcap", ".ftp.log"), "the Zeek app reference"))
        out = ListOutput()
        for conn, events in tcp_streams(APP / trace):
            if conn.resp_p == 21:
                run_parser(FTP, conn, events, out)
        fields = [f for f, _ in FTP.logs["ftp"] if f not in ("ts", "uid", "fuid")]
        ours = [[norm(r.get(f)) for f in fields] for r in out.logs("ftp")]
        assert ours == [[norm(b[f]) for f in fields] for b in base], trace


def test_ftp_data_channels_of_the_reference_trace_are_carved() -> None:
    """ftp__ipv6.pcap: two LIST/NLST listings, robots.txt fetched twice (77 bytes, as Zeek's
    file_size says) over EPSV and EPRT, and a last LIST; each data connection is matched to the
    channel the control connection announced, as the dispatcher does with out.expect."""
    need(APP / "ftp__ipv6.pcap", "the Zeek app reference")
    out = ListOutput()
    for conn, events in tcp_streams(APP / "ftp__ipv6.pcap"):
        if conn.resp_p == 21:
            run_parser(FTP, conn, events, out)
            continue
        (exp,) = [e for e in out.expected if (e["resp_h"], e["resp_p"]) == (conn.resp_h, conn.resp_p)]
        data = FTPData(conn, out, exp["context"])
        for kind, side, payload, ts in events:
            (data.data if kind == "data" else data.gap)(side, payload, ts)
        data.end(events[-1][3])
    got = [(len(f["data"]), f["filename"], f["is_orig"]) for f in out.files]
    assert got == [(342, None, False), (43, None, False), (77, "robots.txt", False), (77, "robots.txt", True),
                   (342, None, True)]
    assert out.files[2]["data"] == out.files[3]["data"] and out.files[2]["data"].startswith(b"User-agent: *")
    assert [e["context"]["session"].get("command") for e in out.expected] == ["LIST", "NLST", "RETR", "RETR", "LIST"]


# -- fuzz -----------------------------------------------------------------------------------------

_chunks = st.lists(st.tuples(st.booleans(), st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"220 x\r\n", b"USER a\r\n", b"PASS b\r\n", b"230 ok\r\n", b"PASV\r\n",
                     b"227 (1,2,3,4,5,6)\r\n", b"EPSV\r\n", b"229 (|||70000|)\r\n", b"RETR f\r\n",
                     b"150-\r\n", b"150 x\r\n", b"EPRT |2|::1|0|\r\n", b"PORT 1,2\r\n", b"CWD ..\r\n",
                     b"257 \"/a\"\"b\"\r\n", b"PWD\r\n", b"CDUP\r\n", b"AUTH TLS\r\n", b"234 go\r\n"]))),
    max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_chunks)
def test_ftp_fuzz_never_raises(chunks: list[tuple[bool, bytes]]) -> None:
    out = ListOutput()
    ftp = FTP(_conn(), out)
    data = FTPData(_conn(5000), out, {"session": {}})
    for i, (side, b) in enumerate(chunks):
        ftp.data(side, b, float(i))
        data.data(side, b, float(i))
        if i % 7 == 3:
            ftp.gap(side, 5, float(i))
            data.gap(side, 5, float(i))
    ftp.end(99.0)
    data.end(99.0)




def test_ftp_log_fields_are_zeeks() -> None:
    assert list(FTP.logs["ftp"]) == zeek_header(need(APP / "ftp__ipv6.ftp.log", "the Zeek app reference"))
