"""Encryption at rest (``encrypt_to``): the recorder's writer seals each file for an age
X25519 recipient as it writes it. Without the identity the files give nothing away; with it
(pyrage, and Debian's independent ``age`` CLI) they are the same pcap bytes the writer would
have written in clear; verify checks the chain without a key; ingest and extract read them
with --identity; a wrong identity is one line, exit 1."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from analysis.cli import main as wiretrail
from recorder.core.agecrypt import parse_recipient
from tests.core.sealed import DEMO, seal_demo

pyrage = pytest.importorskip("pyrage")


def cli(*args: str):
    return CliRunner().invoke(wiretrail, list(args))


@pytest.fixture()
def key(tmp_path: Path):
    ident = pyrage.x25519.Identity.generate()
    path = tmp_path / "key.txt"
    path.write_text(f"# created for a test\n{ident}\n")
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    return path, other, str(ident.to_public())


@pytest.fixture()
def sealed(tmp_path: Path, key):
    """The demo capture sealed twice by the writer: encrypted (enc/, enc.db) and in clear (out/)."""
    _, _, public = key
    enc = seal_demo(tmp_path, recipient=parse_recipient(public), name="enc")
    clear = seal_demo(tmp_path)
    return enc, clear


def test_files_unreadable_without_identity_and_equal_to_clear_with_it(sealed, key):
    (_, _, enc_files), (_, _, clear_files) = sealed
    path, other, _ = key
    assert len(enc_files) == len(clear_files) >= 3
    demo = DEMO.read_bytes()
    payloads = [bytes(b) for _, b in dpkt.pcap.Reader(open(DEMO, "rb")) if len(b) > 200][:50]
    for enc, clear in zip(enc_files, clear_files):
        blob = enc.read_bytes()
        assert enc.name.endswith(".pcap.age") and blob.startswith(b"age-encryption.org/v1\n")
        assert not any(p[60:160] in blob for p in payloads)  # no packet's bytes in the file
        plain = pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(path.read_text().split()[-1])])
        assert plain == clear.read_bytes() and plain[24:64] in demo
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(other.read_text().strip())])


@pytest.mark.skipif(shutil.which("age") is None, reason="Debian's age CLI is not installed (apt-get install age)")
def test_debian_age_cli_opens_the_files(sealed, key):
    (_, _, enc_files), (_, _, clear_files) = sealed
    path, other, _ = key
    for enc, clear in zip(enc_files, clear_files):
        out = subprocess.run(["age", "-d", "-i", str(path), str(enc)], capture_output=True, check=True).stdout
        assert out == clear.read_bytes()
    wrong = subprocess.run(["age", "-d", "-i", str(other), str(enc_files[0])], capture_output=True)
    assert wrong.returncode != 0 and not wrong.stdout


def test_verify_without_key_and_with_it(sealed, key):
    (db, out, files), _ = sealed
    path, other, _ = key
    r = cli("verify", "--db", db)
    assert r.exit_code == 0 and "verified" in r.output, r.output
    r = cli("verify", "--db", db, "--identity", str(path))
    assert r.exit_code == 0 and f"{len(files)} encrypted file(s) decrypted" in r.output, r.output
    manifest = Path(db).with_name("manifest.json")  # a hand-over of encrypted files, checked without a key
    assert cli("verify", "--db", db, "--export", str(manifest)).exit_code == 0
    r = cli("verify", "--manifest", str(manifest), str(out))
    assert r.exit_code == 0 and f"{len(files)} re-hashed" in r.output, r.output
    r = cli("verify", "--db", db, "--identity", str(other))
    assert r.exit_code == 1
    assert "the identity given is not the one this file was encrypted to" in r.output
    data = bytearray(files[1].read_bytes())  # a changed byte of the ciphertext: found without a key
    data[len(data) // 2] ^= 1
    files[1].write_bytes(bytes(data))
    r = cli("verify", "--db", db)
    assert r.exit_code == 1 and f"{files[1]}: SHA-256" in r.output, r.output
    r = cli("verify", "--manifest", str(manifest), str(out))
    assert r.exit_code == 1 and files[1].name in r.output, r.output
    extra = out / "s1-eth1-20990101T000000Z-000099.pcap.age"
    extra.write_bytes(files[0].read_bytes())
    r = cli("verify", "--db", db)
    assert f"{extra}: a capture file no sealed record names" in r.output


def flows(db: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT uid, ts_ns, orig_pkts, resp_pkts, orig_bytes, resp_bytes FROM flows "
                            "ORDER BY ts_ns, uid").fetchall()


def test_ingest_and_extract_with_identity(sealed, key, tmp_path: Path):
    (_, out, enc_files), (_, clear_dir, clear_files) = sealed
    path, other, _ = key
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    r = cli("ingest", "--no-parsers", "--db", str(a), str(out))
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "encrypted (age); give the private key with --identity KEYFILE" in r.output
    r = cli("ingest", "--no-parsers", "--db", str(a), "--identity", str(other), str(out))
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "not the one this file was encrypted to" in r.output
    r = cli("ingest", "--no-parsers", "--db", str(a), "--identity", str(path), str(out))
    assert r.exit_code == 0, r.output
    assert cli("ingest", "--no-parsers", "--db", str(b), str(clear_dir)).exit_code == 0
    assert flows(str(a)) == flows(str(b)) and len(flows(str(a))) > 10
    with sqlite3.connect(a) as conn:
        stored = [Path(p).name for (p,) in conn.execute("SELECT path FROM captures ORDER BY path")]
    assert stored == [f.name for f in enc_files]

    with sqlite3.connect(a) as conn:  # a flow with packets in two files
        uid = conn.execute("SELECT uid FROM flows ORDER BY orig_pkts + resp_pkts DESC LIMIT 1").fetchone()[0]
    ea, eb = tmp_path / "a.pcap", tmp_path / "b.pcap"
    r = cli("extract", "--db", str(a), "--uid", uid, "--out", str(ea))
    assert r.exit_code == 1 and "encrypted (age); give the private key with --identity" in r.output
    assert not ea.exists()
    r = cli("extract", "--db", str(a), "--uid", uid, "--out", str(ea), "--identity", str(other))
    assert r.exit_code == 1 and "not the one this file was encrypted to" in r.output and not ea.exists()
    r = cli("extract", "--db", str(a), "--uid", uid, "--out", str(ea), "--identity", str(path))
    assert r.exit_code == 0, r.output
    assert cli("extract", "--db", str(b), "--uid", uid, "--out", str(eb)).exit_code == 0
    assert ea.read_bytes() == eb.read_bytes() and len(list(dpkt.pcap.Reader(open(ea, "rb")))) > 5
    r = cli("packets", "--db", str(a), "--uid", uid, "--follow", "--identity", str(path))
    assert r.exit_code == 0 and r.output == cli("packets", "--db", str(b), "--uid", uid, "--follow").output


def test_identity_file_errors(sealed, tmp_path: Path):
    (db, _, _), _ = sealed
    bad = tmp_path / "bad.txt"
    bad.write_text("# key\nAGE-SECRET-KEY-1NOTAKEY\n")
    r = cli("verify", "--db", db, "--identity", str(bad))
    assert r.exit_code == 1 and r.output.strip() == f"Error: {bad}:2: not an age identity (AGE-SECRET-KEY-1..., as age-keygen writes)"
    r = cli("verify", "--db", db, "--identity", str(tmp_path / "none.txt"))
    assert r.exit_code == 1 and "cannot read the identity file" in r.output
