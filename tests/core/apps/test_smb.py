"""SMB2: files written to and read from shares, NTLM logins; crafted sessions, Zeek's reference
trace, a capture ingested end to end, and a bounded fuzz test."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import MAX_BUFFER, ListOutput
from recorder.core.apps.ntlm import authenticate_user
from recorder.core.apps.smb import SMB
from tests.helpers import need, wiretrail_cli
from tests.helpers.packets import tcp, write
from tests.helpers.smb import (
    LOGON_FAILURE,
    MORE,
    SUCCESS,
    close,
    create,
    create_response,
    login,
    nb,
    ntlm_authenticate,
    ok,
    read_req,
    read_resp,
    session_setup,
    set_info,
    smb_conn,
    talk,
    tree_connect,
    tree_connect_response,
    write_req,
)
from tests.helpers.streams import run_parser, tcp_streams
from tests.helpers.zeek import ZEEK_APP as APP

FID_UP, FID_DOWN, FID_PIPE = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16
UPLOAD = bytes(range(256)) * 300 + b"%%EOF upload"  # written by the client
DOWNLOAD = b"%PDF-1.4\n" + hashlib.sha256(b"x").digest() * 2000  # read by the client


def session_script(*, login_status: int = SUCCESS) -> list[tuple[bool, bytes]]:
    """Log in, write UPLOAD to a share in 3 out-of-order pieces, read DOWNLOAD in 2, and talk RPC
    on a named pipe (which is no file)."""
    request, answer = login(1, "CORP", "alice", login_status)
    s: list[tuple[bool, bytes]] = [
        (True, request), (False, answer),
        (True, nb(tree_connect(2, "\\\\fs\\share"))), (False, nb(tree_connect_response(2, 5, 1))),
        (True, nb(tree_connect(3, "\\\\fs\\IPC$"))), (False, nb(tree_connect_response(3, 6, 2))),
        (True, nb(create(4, 5, "finance\\q3.xlsx"))), (False, nb(create_response(4, FID_UP))),
        (True, nb(create(5, 6, "srvsvc"))), (False, nb(create_response(5, FID_PIPE))),
        (True, nb(write_req(6, FID_PIPE, 0, b"\x05\x00\x0b\x03 an RPC bind"))), (False, nb(ok(9, 6))),
    ]
    a, b = 30000, 60000
    for mid, (lo, hi) in ((7, (b, len(UPLOAD))), (8, (0, a)), (9, (a, b))):
        s += [(True, nb(write_req(mid, FID_UP, lo, UPLOAD[lo:hi]))), (False, nb(ok(9, mid)))]
    s += [(True, nb(close(10, FID_UP))), (False, nb(ok(6, 10))),
          (True, nb(create(11, 5, "reports\\annual.pdf"))),
          (False, nb(create_response(11, FID_DOWN, size=len(DOWNLOAD))))]
    half = len(DOWNLOAD) // 2
    s += [(True, nb(read_req(12, FID_DOWN, 0, half), read_req(13, FID_DOWN, half, len(DOWNLOAD) - half))),
          (False, nb(read_resp(12, DOWNLOAD[:half]), read_resp(13, DOWNLOAD[half:]))),
          (True, nb(close(14, FID_DOWN))), (False, nb(ok(6, 14)))]
    return s



def test_files_written_and_read_and_the_ntlm_login() -> None:
    out = talk(session_script())
    up, down = out.files  # the pipe's RPC is no file
    assert (up["filename"], up["is_orig"], up["source"], up["missing_bytes"]) == ("finance\\q3.xlsx", True, "SMB", 0)
    assert hashlib.sha256(up["data"]).hexdigest() == hashlib.sha256(UPLOAD).hexdigest()
    assert (down["filename"], down["is_orig"], down["total_bytes"], down["missing_bytes"]) == \
        ("reports\\annual.pdf", False, len(DOWNLOAD), 0)
    assert hashlib.sha256(down["data"]).hexdigest() == hashlib.sha256(DOWNLOAD).hexdigest()
    (cred,) = out.credentials
    assert (cred["protocol"], cred["user"], cred["secret"], cred["success"]) == ("NTLM", "CORP\\alice", None, True)


def test_failed_login_and_byte_at_a_time_delivery() -> None:
    out = talk(session_script(login_status=LOGON_FAILURE), segment=1)
    assert [(c["user"], c["success"]) for c in out.credentials] == [("CORP\\alice", False)]
    assert [hashlib.sha256(f["data"]).hexdigest() for f in out.files] == \
        [hashlib.sha256(UPLOAD).hexdigest(), hashlib.sha256(DOWNLOAD).hexdigest()]


def test_compounded_requests_act_on_the_file_their_create_opened() -> None:
    """Windows renames with CREATE + SET_INFO + CLOSE in one compound, and small files go as
    CREATE + WRITE + CLOSE; those name the file as "the one just opened" (all ff). They act on
    that file, never on another one still open (here a copy in progress)."""
    any_file = b"\xff" * 16
    rename = b"\x00" * 16 + len("new.txt".encode("utf-16-le")).to_bytes(4, "little") + "new.txt".encode("utf-16-le")
    big = bytes(range(256)) * 100
    script = [(True, nb(tree_connect(1, "\\\\fs\\d"))), (False, nb(tree_connect_response(1, 7, 1))),
              (True, nb(create(2, 7, "copy.bin"))), (False, nb(create_response(2, FID_UP))),
              (True, nb(write_req(3, FID_UP, 0, big[:10000]))), (False, nb(ok(9, 3))),
              (True, nb(create(4, 7, "old.txt"), set_info(5, any_file, 10, rename), close(6, any_file))),
              (False, nb(create_response(4, FID_DOWN, 3), ok(17, 5), ok(6, 6))),
              (True, nb(create(7, 7, "small.txt"), write_req(8, any_file, 0, b"tiny file body"), close(9, any_file))),
              (False, nb(create_response(7, b"\x07" * 16), ok(9, 8), ok(6, 9))),
              (True, nb(write_req(10, FID_UP, 10000, big[10000:]))), (False, nb(ok(9, 10))),
              (True, nb(close(11, FID_UP))), (False, nb(ok(6, 11)))]
    out = talk(script)
    assert [(f["filename"], f["data"]) for f in out.files] == [("small.txt", b"tiny file body"), ("copy.bin", big)]
    assert [(r["action"], r["name"], r["prev_name"]) for r in out.logs("smb_files")] == [
        ("SMB::FILE_OPEN", "copy.bin", None), ("SMB::FILE_OPEN", "old.txt", None),
        ("SMB::FILE_RENAME", "new.txt", "old.txt"), ("SMB::FILE_OPEN", "small.txt", None)]


def test_a_login_without_its_answer_has_an_unknown_outcome() -> None:
    out = talk([(True, nb(session_setup(1, ntlm_authenticate("CORP", "bob"))))])
    assert [(c["user"], c["success"]) for c in out.credentials] == [("CORP\\bob", None)]


def test_a_message_longer_than_the_parser_holds_is_streamed_into_its_file() -> None:
    big = hashlib.sha512(b"seed").digest() * ((MAX_BUFFER * 3) // 64)  # 3 MiB in one WRITE
    script = [(True, nb(tree_connect(1, "\\\\fs\\d"))), (False, nb(tree_connect_response(1, 7, 1))),
              (True, nb(create(2, 7, "big.bin"))), (False, nb(create_response(2, FID_UP))),
              (True, nb(write_req(3, FID_UP, 0, big))), (False, nb(ok(9, 3))),
              (True, nb(read_req(4, FID_UP, 0, len(big)))), (False, nb(read_resp(4, big))),
              (True, nb(close(5, FID_UP)))]
    written, read = talk(script, segment=65536).files
    assert written["is_orig"] and not read["is_orig"]
    assert written["data"] == big and read["data"] == big and written["missing_bytes"] == read["missing_bytes"] == 0


def test_a_gap_loses_only_what_it_covers() -> None:
    """After a gap the parser finds the next message header; the file has a hole, counted missing."""
    out = ListOutput()
    p = SMB(smb_conn(), out)
    for side, payload in [(True, nb(tree_connect(1, "\\\\fs\\d"))), (False, nb(tree_connect_response(1, 7, 1))),
                          (True, nb(create(2, 7, "x.bin"))), (False, nb(create_response(2, FID_UP)))]:
        p.data(side, payload, 1.0)
    first = nb(write_req(3, FID_UP, 0, b"A" * 5000))
    p.data(True, first[:3000], 2.0)
    p.gap(True, len(first) - 3000, 2.1)  # the rest of the first write never arrives
    p.data(True, b"garbage" + nb(write_req(4, FID_UP, 5000, b"B" * 100)) + nb(close(5, FID_UP)), 2.2)
    p.end(3.0)
    (f,) = out.files
    assert f["data"] == b"B" * 100 and f["missing_bytes"] == 5000  # the hole is missing, not zeros


def test_pieces_beyond_the_bounds_are_counted_not_held() -> None:
    """A write far into a file (or past what a connection may hold) allocates nothing: its bytes
    count as missing, the file's other pieces are kept."""
    from recorder.core.apps import smbfile

    out = ListOutput()
    p = SMB(smb_conn(), out)
    for side, payload in [(True, nb(tree_connect(1, "\\\\fs\\d"))), (False, nb(tree_connect_response(1, 7, 1))),
                          (True, nb(create(2, 7, "x.bin"))), (False, nb(create_response(2, FID_UP))),
                          (True, nb(write_req(3, FID_UP, 0, b"head"))),
                          (True, nb(write_req(4, FID_UP, smbfile.MAX_FILE - 2, b"tail"))),
                          (True, nb(close(5, FID_UP)))]:
        p.data(side, payload, 1.0)
    assert p.held == 0
    (f,) = out.files
    assert (f["data"], f["missing_bytes"]) == (b"head", 4)


def test_smb_mapping_and_smb_files_logs() -> None:
    """Shares mapped (smb_mapping.log), files opened on disk shares, deleted and renamed
    (smb_files.log); opens of named pipes are not file actions; a repeated open is logged once."""
    ft = 132_000_000_000_000_000  # a FILETIME (100 ns since 1601): 2019-04-17T18:40:00Z
    rename = b"\x00" * 16 + len("b.txt".encode("utf-16-le")).to_bytes(4, "little") + "b.txt".encode("utf-16-le")
    script = [(True, nb(tree_connect(1, "\\\\fs\\C$"))), (False, nb(tree_connect_response(1, 5, 1))),
              (True, nb(tree_connect(2, "\\\\fs\\IPC$"))), (False, nb(tree_connect_response(2, 6, 2))),
              (True, nb(create(3, 6, "svcctl"))), (False, nb(create_response(3, FID_PIPE))),
              (True, nb(create(4, 5, "a.txt"))), (False, nb(create_response(4, FID_UP, 12, ft))),
              (True, nb(set_info(5, FID_UP, 10, rename))), (False, nb(ok(17, 5))),
              (True, nb(create(6, 5, "tools\\x.exe", options=0x1000))), (False, nb(create_response(6, FID_DOWN, 7))),
              (True, nb(create(7, 5, ""))), (False, nb(create_response(7, b"\x04" * 16, 0, ft))),
              (True, nb(create(8, 5, ""))), (False, nb(create_response(8, b"\x05" * 16, 0, ft))),
              (True, nb(set_info(9, b"\x04" * 16, 13, b"\x01"))), (False, nb(ok(17, 9)))]
    out = talk(script)
    assert [(r["path"], r["share_type"]) for r in out.logs("smb_mapping")] == \
        [("\\\\fs\\C$", "DISK"), ("\\\\fs\\IPC$", "PIPE")]
    files = out.logs("smb_files")
    assert [(r["action"], r["path"], r["name"], r["size"], r["prev_name"]) for r in files] == [
        ("SMB::FILE_OPEN", "\\\\fs\\C$", "a.txt", 12, None),
        ("SMB::FILE_RENAME", "\\\\fs\\C$", "b.txt", 12, "a.txt"),
        ("SMB::FILE_OPEN", "\\\\fs\\C$", "tools\\x.exe", 7, None),
        ("SMB::FILE_DELETE", "\\\\fs\\C$", "tools\\x.exe", 7, None),
        ("SMB::FILE_OPEN", "\\\\fs\\C$", "<share_root>", 0, None),  # the second open of the root: not again
        ("SMB::FILE_DELETE", "\\\\fs\\C$", "<share_root>", 0, None)]
    assert files[0]["times.modified"] == files[0]["times.created"] == 1555526400.0
    assert files[2]["times.modified"] is None  # FILETIME 0: never


def test_detect() -> None:
    c = smb_conn()
    assert SMB.detect(nb(tree_connect(1, "\\\\a\\b")), True, c)
    assert SMB.detect(b"\x00\x00\x00\x2f\xffSMBr", True, c)  # SMB1 negotiate, upgraded to SMB2
    assert not SMB.detect(b"GET / HTTP/1.1\r\n", True, c)
    assert not SMB.detect(b"\x00\x00\x00\x10\x16\x03\x01\x00", True, c)


def test_ntlm_authenticate_user() -> None:
    assert authenticate_user(ntlm_authenticate("CORP", "alice")) == "CORP\\alice"
    assert authenticate_user(ntlm_authenticate("", "bob")) == "bob"
    assert authenticate_user(b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 60) is None  # a NEGOTIATE
    assert authenticate_user(b"junk") is None


# -- Zeek's reference trace and a capture ingested end to end ---------------------------------

def test_zeek_smb2_trace() -> None:
    """smb__smb2.pcap: a PDF copied to a share; Zeek's files.log names it, its type and size."""
    trace = need(APP / "smb__smb2.pcap", "the zeek-app reference traces")
    ((conn, events),) = tcp_streams(trace)
    out = ListOutput()
    run_parser(SMB, conn, events, out)
    (f,) = out.files
    assert (f["filename"], f["is_orig"], len(f["data"]), f["missing_bytes"]) == ("WP_SMBPlugin.pdf", True, 1508939, 0)
    assert f["data"].startswith(b"%PDF") and f["data"].rstrip().endswith(b"%%EOF")
    assert [(c["user"], c["success"]) for c in out.credentials] == [("CONTOSO\\Administrator", True)]
    # smb_mapping.log and smb_files.log as Zeek's baselines for this trace have them
    assert [(r["path"], r["share_type"]) for r in out.logs("smb_mapping")] == \
        [("\\\\10.0.0.12\\smb2", "DISK"), ("\\\\10.0.0.12\\IPC$", "PIPE")]
    assert [(r["action"], r["name"], r["size"]) for r in out.logs("smb_files")] == [
        ("SMB::FILE_OPEN", "<share_root>", 8192), ("SMB::FILE_OPEN", "WP_SMBPlugin.pdf", 0),
        ("SMB::FILE_OPEN", "<share_root>", 8192)]


def test_ingest_carves_smb_files_equal_to_the_originals(tmp_path: Path) -> None:
    packets, seq = [], {True: 1000, False: 9000}
    cli_h, srv_h = ("10.1.0.5", 50123), ("10.1.0.9", 445)
    packets.append((0.0, tcp(*cli_h, *srv_h, seq[True] - 1, 0x02)))
    packets.append((0.001, tcp(*srv_h, *cli_h, seq[False] - 1, 0x12, ack=seq[True])))
    t = 0.002
    for side, payload in session_script():
        src, dst = (cli_h, srv_h) if side else (srv_h, cli_h)
        for j in range(0, len(payload), 1448):
            seg = payload[j:j + 1448]
            packets.append((t, tcp(*src, *dst, seq[side], 0x18, seg, ack=seq[not side])))
            seq[side] += len(seg)
            t += 0.0001
    packets.append((t, tcp(*cli_h, *srv_h, seq[True], 0x11, ack=seq[False])))
    packets.append((t + 0.001, tcp(*srv_h, *cli_h, seq[False], 0x11, ack=seq[True] + 1)))
    cap = write(tmp_path / "smb.pcap", packets)
    cli, db, xdir = wiretrail_cli(), str(tmp_path / "w.db"), tmp_path / "x"
    subprocess.run([cli, "ingest", "--db", db, "--extract-files", str(xdir), str(cap)], check=True,
                   capture_output=True)
    rows = [json.loads(x) for x in subprocess.run([cli, "files", "--db", db, "--format", "jsonl"], check=True,
                                                  capture_output=True, text=True).stdout.splitlines()]
    by_name = {r["filename"]: r for r in rows}
    for name, original in (("finance\\q3.xlsx", UPLOAD), ("reports\\annual.pdf", DOWNLOAD)):
        r = by_name[name]
        assert r["sha256"] == hashlib.sha256(original).hexdigest() and r["source"] == "SMB"
        assert (xdir / r["extracted"]).read_bytes() == original
        assert "\\" not in r["extracted"] and "/" not in r["extracted"]
    creds = subprocess.run([cli, "credentials", "--db", db, "--format", "jsonl"], check=True, capture_output=True,
                           text=True).stdout
    assert json.loads(creds)["user"] == "CORP\\alice"
    flows = subprocess.run([cli, "flows", "--db", db, "--format", "jsonl"], check=True, capture_output=True,
                           text=True).stdout
    assert json.loads(flows)["service"] == "smb"
    mapping = subprocess.run([cli, "smb-mapping", "--db", db, "--format", "zeek"], check=True, capture_output=True,
                             text=True).stdout
    rows = [line.split("\t") for line in mapping.splitlines() if not line.startswith("#")]
    assert [r[6:] for r in rows] == [["\\\\\\\\fs\\\\share", "-", "-", "DISK"], ["\\\\\\\\fs\\\\IPC$", "-", "-", "PIPE"]]
    opened = subprocess.run([cli, "smb-files", "--db", db, "--format", "jsonl"], check=True, capture_output=True,
                            text=True).stdout
    assert [json.loads(x)["name"] for x in opened.splitlines()] == ["finance\\q3.xlsx", "reports\\annual.pdf"]


# -- fuzz -------------------------------------------------------------------------------------

_PIECES = [nb(m) for m in (tree_connect(1, "\\\\a\\b"), tree_connect_response(1, 5, 1), create(2, 5, "f"),
                           create_response(2, FID_UP), write_req(3, FID_UP, 0, b"abc"), read_req(4, FID_UP, 0, 9),
                           read_resp(4, b"xyz"), close(5, FID_UP), session_setup(6, ntlm_authenticate("D", "u")),
                           ok(1, 6, MORE), write_req(7, FID_UP, 1 << 40, b"far"))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=90), st.sampled_from(_PIECES)),
                          st.integers(0, 40)), max_size=25))
def test_smb_fuzz_never_raises(chunks: list[tuple[bool, bytes, int]]) -> None:
    p = SMB(smb_conn(), ListOutput())
    for i, (side, b, cut) in enumerate(chunks):
        p.data(side, b[cut:] if i % 3 == 0 else b, float(i))  # a piece cut short or whole
        if i % 7 == 5:
            p.gap(side, 11, float(i))
    p.end(99.0)
