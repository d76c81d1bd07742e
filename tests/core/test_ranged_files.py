"""Files fetched by byte ranges (HTTP 206): pieces joined by URL across connections
(recorder.core.apps.files.RangedFile, the HTTP parser's pieces, the store's files records)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.files import RangedFile
from recorder.core.apps.http import HTTP
from recorder.core.store import Store
from recorder.core.store.listing import query_log
from recorder.core.store.records import StoreOutput

ORIGINAL = random.Random(3).randbytes(25_000)
SHA256 = hashlib.sha256(ORIGINAL).hexdigest()


def conn(port: int) -> Conn:
    return Conn("10.0.0.1", port, "10.0.0.2", 80, "tcp", 1000.0 + port, uid=f"C{port}")


def reply_206(first: int, last: int, total: int | str = len(ORIGINAL)) -> bytes:
    body = ORIGINAL[first:last + 1]
    return (f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{total}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def fetch(out, port: int, replies: list[bytes], ts: float) -> None:
    p = HTTP(conn(port), out)
    for reply in replies:
        p.data(True, b"GET /big.iso HTTP/1.1\r\nHost: mirror\r\nRange: bytes=0-\r\n\r\n", ts)
        p.data(False, reply, ts + 0.5)
    p.end(ts + 1)


def test_http_reports_206_bodies_and_byteranges_parts_as_pieces_of_the_url():
    out = ListOutput()
    fetch(out, 1, [reply_206(0, 9_999)], 1.0)
    parts = b"".join(b"--SEP\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n%s\r\n"
                     % (a, b, len(ORIGINAL), ORIGINAL[a:b + 1]) for a, b in ((10_000, 14_999), (20_000, 24_999)))
    parts += b"--SEP--\r\n"
    multipart = (b"HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=SEP\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(parts)) + parts
    fetch(out, 2, [multipart], 2.0)
    got = [(f["piece"], len(f["data"]), f["total_bytes"]) for f in out.files]
    url = "10.0.0.1 mirror/big.iso"
    assert got == [((url, 0), 10_000, 25_000), ((url, 10_000), 5_000, 25_000), ((url, 20_000), 5_000, 25_000)]
    assert [r["resp_fuids"] for r in out.logs("http")] == [[f"F-{url}"], [f"F-{url}"]]


def test_pieces_with_a_hole_have_no_hashes_and_count_what_is_missing():
    rf = RangedFile("u", "HTTP")
    rf.add(conn(1), 1.0, 0, ORIGINAL[:10_000], len(ORIGINAL))
    rf.add(conn(2), 2.0, 20_000, ORIGINAL[20_000:], len(ORIGINAL))
    rf.add(conn(2), 2.5, 20_000, ORIGINAL[20_000:21_000], len(ORIGINAL))  # a shorter repeat adds nothing
    records, data = rf.records()
    assert data is None
    assert [(r["uid"], r["fuid"], r["seen_bytes"], r["missing_bytes"], r["total_bytes"], r["sha256"])
            for r, _ in records] == [("C1", rf.fuid, 15_000, 10_000, 25_000, None),
                                     ("C2", rf.fuid, 15_000, 10_000, 25_000, None)]
    assert records[0][0]["duration"] == 1.5


def test_a_file_fetched_whole_in_ranges_over_two_connections_hashes_and_extracts_as_the_original(tmp_path):
    out_dir = tmp_path / "files"
    out_dir.mkdir()
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        out = StoreOutput(store, extract_dir=str(out_dir))
        fetch(out, 1, [reply_206(0, 12_499)], 1.0)
        fetch(out, 2, [reply_206(12_000, 24_999, "*")], 2.0)  # overlapping, total unknown
        out.close()
        rows = list(query_log(store, "files"))
    assert len(rows) == 2 and rows[0]["fuid"] == rows[1]["fuid"]
    assert {r["uid"] for r in rows} == {"C1", "C2"}
    assert {(r["seen_bytes"], r["missing_bytes"], r["sha256"]) for r in rows} == {(25_000, 0, SHA256)}
    (extracted,) = list(out_dir.iterdir())
    assert rows[0]["extracted"] == extracted.name
    assert hashlib.sha256(Path(extracted).read_bytes()).hexdigest() == SHA256


def test_the_byte_budget_keeps_spans_but_not_hashes(monkeypatch, tmp_path):
    import recorder.core.store.records as appstore

    monkeypatch.setattr(appstore, "MAX_RANGED_BYTES", 5_000)
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        out = StoreOutput(store)
        fetch(out, 1, [reply_206(0, 12_499), reply_206(12_500, 24_999)], 1.0)
        out.close()
        (row,) = list(query_log(store, "files"))
    assert (row["seen_bytes"], row["missing_bytes"], row["sha256"], row["mime_type"]) == (25_000, 0, None, None)
