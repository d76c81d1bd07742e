"""Transferred files: mime sniffing, fuids, files.log records, and extraction that stays in its directory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import re
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps import files
from recorder.core.apps.base import Conn
from recorder.core.apps.files import (
    MAX_NAME_BYTES,
    _base62_17,
    base62,
    extract,
    file_record,
    make_fuid,
    safe_name,
    sniff_mime,
)

CONN = Conn("141.142.228.5", 59856, "192.150.187.43", 80, "tcp", 1362692526.869344, uid="CHhAvVGS1DHFjwGM9")


def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, "<xml/>")
    return buf.getvalue()


@pytest.mark.parametrize("data, mime", [
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 50 + b"This program cannot be run in DOS mode", "application/x-dosexec"),
    (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8, "application/x-executable"),
    (_zip("word/document.xml"), "application/zip"),  # a docx: a zip, as libmagic without OOXML rules
    (_zip("xl/workbook.xml"), "application/zip"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    (b"GIF89a\x01\x00\x01\x00", "image/gif"),
    (gzip.compress(b"hello"), "application/x-gzip"),
    (b"<!DOCTYPE html>\n<html><body>x</body></html>", "text/html"),
    (b"\r\n  <!-- c -->\n<HTML>\n<head>", "text/html"),
    (b"<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\">", "text/html"),
    (b"<?xml version=\"1.0\"?><rss/>", "application/xml"),
    (b"This is the changelog of bro-aux.\n\n0.26 ...", "text/plain"),
    (b"\xef\xbb\xbfplain text with a BOM", "text/plain"),
    (b"#!/bin/sh\necho hi\n", "text/x-script"),
    (b"\x00\x01\x02\x03 binary junk \xff\xfe", None),
    (b"short", None),  # fewer than 10 printable bytes: Zeek's plain-text signature needs 10
    (b"", None),
])
def test_sniff(data, mime):
    assert sniff_mime(data) == mime


def _sniff_every_check(data: bytes) -> str | None:
    # every check in order on the first 4096 bytes, as sniff_mime did before it picked them by first byte
    head = data[:files.SNIFF_BYTES]
    for prefix, mime in files._PREFIXES:
        if head.startswith(prefix):
            return mime
    for pattern, mime in ((files._ZIP, "application/zip"), (files._HTML, "text/html"), (files._XML, "application/xml"),
                          (files._JSON, "text/json"), (files._SCRIPT, "text/x-script"), (files._PLAIN, "text/plain")):
        if pattern.match(head):
            return mime
    return None


_STARTS = [p for p, _ in files._PREFIXES] + [b"PK\x03\x04ab", b"<!-- x -->", b"<?xml ", b"<html", b"<HEAD", b" \r\n\t",
                                             b"[{", b'{"', b"#!/", b"# /", b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe\x00\x00"]


@settings(max_examples=600, deadline=None)
@given(st.integers(0, 255), st.sampled_from([b""] + _STARTS), st.binary(max_size=40),
       st.sampled_from([b"", b"0123456789ab", b"<body>", b"-->"]))
def test_sniff_by_first_byte_is_every_check_in_order(first, start, rest, tail):
    # the checks picked by the first byte give what running all of them in order gives
    for data in (bytes([first]) + start + rest + tail, start + rest + tail, start + bytes([first]) + rest):
        assert sniff_mime(data) == _sniff_every_check(data), data


def test_sniff_looks_at_the_first_4096_bytes_only():
    assert sniff_mime(b"<!--" + b"x" * 4082 + b"--><html>") == "text/html"  # "<html" ends at byte 4,094
    assert sniff_mime(b"<!--" + b"x" * 4085 + b"--><html>") == "text/plain"  # at byte 4,097
    assert _sniff_every_check(b"<!--" + b"x" * 4085 + b"--><html>") == "text/plain"


def test_sniff_a_run_of_whitespace_is_linear():
    # the nested repeats of the earlier preamble took minutes on 20 spaces before a non-match
    assert sniff_mime(b"\n" * 4096 + b"x") == "text/plain"
    assert sniff_mime(b" \r\n\t" * 1000 + b"\x00") == "text/plain"


_OLD_SPACE = rb"(?:[\r\n \t]*(?:<!--.*?-->)?[\r\n \t]*)*"


def test_sniff_preamble_matches_what_the_nested_one_matched():
    old_html = re.compile(_OLD_SPACE + rb"(?:<\?xml .*?\?>)?" + _OLD_SPACE + rb"<(?:!doctype +html|html|head|title|body)",
                          re.S | re.I)
    old_xml = re.compile(_OLD_SPACE + rb"<\?xml ", re.S)
    rng = random.Random(3)
    atoms = [b" ", b"\n", b"\t", b"<!--", b"-->", b"<!-- c -->", b"<?xml ", b"?>", b"<html", b"<HEAD",
             b"<!doctype  html", b"x", b"<", b"-"]
    for _ in range(5000):
        data = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 6)))
        assert bool(old_html.match(data)) == bool(files._HTML.match(data)), data
        assert bool(old_xml.match(data)) == bool(files._XML.match(data)), data


def test_fuid_shape_and_determinism():
    a = make_fuid(CONN, 0, False)
    assert re.fullmatch(r"F[0-9A-Za-z]{17}", a)
    assert make_fuid(CONN, 0, False) == a
    assert len({a, make_fuid(CONN, 1, False), make_fuid(CONN, 0, True),
                make_fuid(Conn("141.142.228.5", 59857, "192.150.187.43", 80, "tcp", 1362692526.869344), 0, False)}) == 4
    # a fixed value: the fuids stored by earlier versions stay the same
    assert a == "F" + base62(int.from_bytes(hashlib.sha256(
        b"tcp|141.142.228.5|59856|192.150.187.43|80|1362692526.869344|0|0").digest()[:12], "big")).rjust(17, "0")[-17:]


def test_fuid_digits_at_the_limits():
    # the 17 digits from two C integers (compiled) are base62's, padded, for any 96-bit value
    rng = random.Random(7)
    values = [0, 1, 61, 62, 62**10 - 1, 62**10, 62**10 + 1, 62**16, 2**64 - 1, 2**64, 2**96 - 1]
    for n in values + [rng.getrandbits(96) for _ in range(2000)]:
        assert _base62_17(n) == base62(n).rjust(17, "0"), n


def test_record_of_a_whole_body():
    body = b"This is the changelog.\n" * 200
    rec = file_record(CONN, ts=1362692527.009775, data=body, is_orig=False, source="HTTP", index=0,
                      mime_type="application/octet-stream", total_bytes=len(body))
    assert rec["mime_type"] == "text/plain"  # what the bytes are, not what the header claimed
    assert rec["seen_bytes"] == rec["total_bytes"] == len(body) and rec["missing_bytes"] == 0
    assert rec["md5"] == hashlib.md5(body).hexdigest()
    assert rec["sha1"] == hashlib.sha1(body).hexdigest()
    assert rec["sha256"] == hashlib.sha256(body).hexdigest()
    assert rec["analyzers"] == ["MD5", "SHA1", "SHA256"]
    assert rec["uid"] == CONN.uid and rec["id.resp_p"] == 80 and rec["is_orig"] is False


def test_record_with_a_gap_has_no_hashes():
    rec = file_record(CONN, ts=1.0, data=b"\x00" * 30003, is_orig=False, source="HTTP", index=0,
                      total_bytes=104857600, missing_bytes=179998)
    assert rec["md5"] is rec["sha1"] is rec["sha256"] is None
    assert rec["analyzers"] == [] and rec["missing_bytes"] == 179998 and rec["seen_bytes"] == 30003


def test_declared_type_only_when_sniffing_finds_nothing():
    rec = file_record(CONN, ts=1.0, data=b"\x00\x01\x02", is_orig=True, source="SMTP", index=0,
                      mime_type="Application/Octet-Stream; name=x")
    assert rec["mime_type"] == "application/octet-stream"


@pytest.mark.parametrize("filename, expected", [
    (None, "F1-file.txt"),
    ("NEWS.txt", "F1-NEWS.txt"),
    ("../../etc/passwd", "F1-passwd.txt"),
    ("..\\..\\Windows\\system32\\evil.dll", "F1-evil.dll"),
    ("/abs/path/report.pdf", "F1-report.pdf"),
    ("..", "F1-file.txt"),
    ("...", "F1-file.txt"),
    (".bashrc", "F1-bashrc.txt"),
    ("a\x00b\r\n\x1b[31m.exe", "F1-ab_31m.exe"),
    ("x" * 1000 + ".bin", "F1-" + "x" * (MAX_NAME_BYTES - 4) + ".bin"),  # capped, extension kept
    ("x" * 1000, "F1-" + "x" * MAX_NAME_BYTES + ".txt"),
    ("résumé 2024 (final).docx", "F1-résumé 2024 (final).docx"),
    ("a;rm -rf *|b.sh", "F1-a_rm -rf __b.sh"),
    ("name\udcff.txt", "F1-name.txt"),
])
def test_safe_name(filename, expected):
    name = safe_name("F1", filename, "text/plain")
    assert name == expected


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=400)), st.sampled_from([None, "text/plain", "application/x-dosexec"]))
def test_safe_name_fuzz(filename, mime):
    name = safe_name("FAbc", filename, mime)
    assert name.startswith("FAbc-")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in name)
    assert ".." not in name
    assert len(name.encode("utf-8")) <= 5 + MAX_NAME_BYTES + 8
    name.encode("utf-8")  # no lone surrogates


def test_extract_stays_in_its_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    name = extract(out, "Fx", "../../../tmp/evil.sh", b"#!/bin/sh\n", "text/x-script")
    assert name == "Fx-evil.sh"
    assert (out / name).read_bytes() == b"#!/bin/sh\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["Fx-evil.sh"]


def test_extract_never_overwrites_nor_follows_links(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(victim, tmp_path / "Fy-a.txt")
    assert extract(tmp_path, "Fy", "a.txt", b"new", None) == "Fy-a-1.txt"
    assert victim.read_bytes() == b"keep"
    assert extract(tmp_path, "Fy", "a.txt", b"new", None) == "Fy-a-1.txt"  # same content: the same file
    assert extract(tmp_path, "Fy", "a.txt", b"other", None) == "Fy-a-2.txt"
    assert (tmp_path / "Fy-a-2.txt").read_bytes() == b"other"
