"""`wiretrail verify` (database) and `verify --export` / `verify --manifest` (hand-over): each of a
changed byte, a truncated file, a deleted file, a file added afterwards, a reordered or edited
chain record and a swapped manifest entry is detected, on files sealed by the recorder's code."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat

import pytest
from click.testing import CliRunner

from analysis.cli import main
from recorder import __version__
from tests.core.sealed import seal_demo


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


@pytest.fixture
def sealed(tmp_path):
    db, out, files = seal_demo(tmp_path)
    assert len(files) == 4
    return db, out, files


def flip_byte(path, at=200):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 1]))


def truncate(path, by=100):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - by)


def add_file(out, files):
    extra = out / "s1-eth1-20300101T000000Z-000099.pcap"
    shutil.copy(files[0], extra)
    return extra


# ------------------------------------------------------------------ database verify

def test_clean_store_verifies(sealed):
    db, _, _ = sealed
    r = run("verify", "--db", db)
    assert r.exit_code == 0, r.output
    assert "verified: 4 sealed file record(s) in the chain, 4 file(s) re-hashed" in r.stdout


@pytest.mark.parametrize("damage, expect", [
    (lambda out, files: flip_byte(files[1]), "SHA-256"),
    (lambda out, files: truncate(files[1]), "truncated: "),
    (lambda out, files: files[1].unlink(), "file is missing (not deleted by retention)"),
])
def test_store_verify_detects_file_damage(sealed, damage, expect):
    db, out, files = sealed
    damage(out, files)
    r = run("verify", "--db", db)
    assert r.exit_code == 1
    line = [ln for ln in r.stderr.splitlines() if ln.startswith(str(files[1]))]
    assert len(line) == 1 and line[0].startswith(f"{files[1]}: {expect}"), r.stderr
    assert "NOT verified: 1 problem(s)" in r.stderr


def test_store_verify_detects_an_added_file(sealed):
    db, out, files = sealed
    extra = add_file(out, files)
    r = run("verify", "--db", db)
    assert r.exit_code == 1
    assert f"{extra}: a capture file no sealed record names (added afterwards)" in r.stderr


def test_store_verify_detects_reordered_and_edited_records(sealed):
    db, _, files = sealed
    with sqlite3.connect(db) as conn:  # files 1 and 2 swap places in the sealing order
        (a,), (b,) = conn.execute("SELECT sealed_at FROM captures WHERE id IN (2, 3) ORDER BY id").fetchall()
        conn.execute("UPDATE captures SET sealed_at = ? WHERE id = 2", (b,))
        conn.execute("UPDATE captures SET sealed_at = ? WHERE id = 3", (a,))
    r = run("verify", "--db", db)
    assert r.exit_code == 1 and "chain broken before this file" in r.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE captures SET sealed_at = ? WHERE id = 2", (a,))
        conn.execute("UPDATE captures SET sealed_at = ? WHERE id = 3", (b,))
    assert run("verify", "--db", db).exit_code == 0
    with sqlite3.connect(db) as conn:  # a record edited: fewer packets than were sealed
        conn.execute("UPDATE captures SET packets = packets - 1 WHERE id = 3")
    r = run("verify", "--db", db, "--no-files")
    assert r.exit_code == 1
    assert f"{files[2]}: its record was altered (chain value does not match)" in r.stderr


# ------------------------------------------------------------------ hand-over manifest

@pytest.fixture
def handed_over(sealed, tmp_path):
    """The manifest exported from the store, and a copy of the files elsewhere (no database)."""
    db, _, files = sealed
    manifest = tmp_path / "MANIFEST.json"
    old = os.umask(0o022)
    try:
        r = run("verify", "--db", db, "--export", manifest)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert "manifest SHA-256 " in r.stderr and "chain head(s): s1/eth1 " in r.stderr
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    copy = tmp_path / "handed-over"
    copy.mkdir()
    for f in files:
        shutil.copy(f, copy / f.name)
    return manifest, copy, [copy / f.name for f in files]


def test_manifest_content(handed_over, sealed):
    manifest, _, copies = handed_over
    data = json.loads(manifest.read_text())
    assert data["format"] == "wiretrail-manifest-v1" and data["tool"] == f"wiretrail {__version__}"
    assert data["verified"] is True and data["problems"] == []
    assert [e["name"] for e in data["files"]] == [c.name for c in copies]
    first = data["files"][0]
    assert first["size"] == copies[0].stat().st_size and first["verification"] == "ok"
    assert first["prev_chain"] == "0" * 64 and data["files"][1]["prev_chain"] == first["chain"]
    assert first["first_ts"].endswith("Z") and first["packets"] > 0 and len(first["sha256"]) == 64
    assert data["streams"] == [{"sensor": "s1", "interface": "eth1", "head": data["files"][-1]["chain"]}]


def test_manifest_copy_verifies_without_the_database(handed_over, sealed):
    manifest, copy, _ = handed_over
    os.unlink(sealed[0])
    r = run("verify", "--manifest", manifest, copy)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("verified: 4 file(s) in the manifest") and "4 re-hashed" in r.stdout


@pytest.mark.parametrize("damage, expect", [
    (lambda d, c: flip_byte(c[2]), "SHA-256"),
    (lambda d, c: truncate(c[2], 16), "truncated:"),
    (lambda d, c: c[2].unlink(), "file is missing"),
])
def test_manifest_detects_file_damage(handed_over, damage, expect):
    manifest, copy, copies = handed_over
    damage(copy, copies)
    r = run("verify", "--manifest", manifest, copy)
    assert r.exit_code == 1
    [line] = [ln for ln in r.stderr.splitlines() if not ln.startswith("Error: NOT verified")]
    assert line.startswith(f"{copies[2]}: ") and expect in line


def test_manifest_detects_an_added_file(handed_over):
    manifest, copy, copies = handed_over
    extra = add_file(copy, copies)
    r = run("verify", "--manifest", manifest, copy)
    assert r.exit_code == 1 and f"{extra}: a capture file no sealed record names (added afterwards)" in r.stderr


def _edit(manifest, change):
    data = json.loads(manifest.read_text())
    change(data["files"])
    manifest.write_text(json.dumps(data))


def _swap(files, i, j):
    files[i], files[j] = files[j], files[i]


def _swap_hashes(files):
    files[1]["sha256"], files[2]["sha256"] = files[2]["sha256"], files[1]["sha256"]


def _edit_packets(files):
    files[1]["packets"] += 1


@pytest.mark.parametrize("change, expect", [
    (lambda f: _swap(f, 1, 2), "chain broken before this file"),  # entries reordered
    (_swap_hashes, "its record was altered"),  # two entries' hashes swapped
    (_edit_packets, "its record was altered"),  # an entry edited
    (lambda f: f.pop(), "the manifest's head is"),  # the last entry removed
])
def test_manifest_detects_edited_entries(handed_over, change, expect):
    manifest, copy, _ = handed_over
    _edit(manifest, change)
    r = run("verify", "--manifest", manifest, copy)
    assert r.exit_code == 1 and expect in r.stderr, r.stderr


def test_export_records_problems_found_at_export(sealed, tmp_path):
    db, out, files = sealed
    flip_byte(files[0])
    manifest = tmp_path / "m.json"
    r = run("verify", "--db", db, "--export", manifest)
    assert r.exit_code == 1
    data = json.loads(manifest.read_text())
    assert data["verified"] is False and data["files"][0]["verification"].startswith("SHA-256 ")
    r = run("verify", "--manifest", manifest, out)
    assert r.exit_code == 1 and f"{files[0].name}: at export this file was not verified" in r.stderr


@pytest.mark.parametrize("text, expect", [
    ("{not json", "not JSON"),
    ('{"format": "other"}', "not a Wiretrail manifest"),
    ('{"format": "wiretrail-manifest-v1", "streams": [], "files": [{"name": "../x.pcap"}]}', "file entry 1 lacks"),
])
def test_bad_manifest_is_one_line(tmp_path, text, expect):
    manifest = tmp_path / "m.json"
    manifest.write_text(text)
    r = run("verify", "--manifest", manifest, tmp_path)
    assert r.exit_code == 1 and expect in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_manifest_usage(tmp_path):
    r = run("verify", "--manifest", tmp_path / "m.json")
    assert r.exit_code == 2 and "needs the DIR" in r.stderr
