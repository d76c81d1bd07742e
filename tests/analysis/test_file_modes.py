"""Secrets at rest: under a usual umask (022) the store `wiretrail ingest` creates (with its WAL
files), the files `--extract-files` writes and the EVE file `replay --eve` writes are owner-only,
and `db info` says the database's mode and warns when others can read its credentials."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from analysis.cli import main
from tests.analysis.behaviour.traffic import Capture, ftp_login, http_get


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def secrets_pcap(tmp_path_factory):
    """An FTP login (a credential), an HTTP download (an extracted file) and a port scan (an alert)."""
    cap = Capture()
    cap.session(0.0, "10.0.0.7", "10.0.0.21", 40001, 21, ftp_login(b"alice", b"hunter2", ok=True))
    cap.session(1.0, "10.0.0.7", "10.0.0.80", 40002, 80, http_get("files.example", "/q3.pdf", body=b"%PDF-1.4 " * 50))
    for i, port in enumerate(range(1, 41)):
        cap.rejected(2.0 + i * 0.01, "10.0.0.66", "10.0.0.5", 41000 + i, port)
    return cap.write(tmp_path_factory.mktemp("secrets") / "secrets.pcap")


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ingest_store_and_extracted_files_are_owner_only(secrets_pcap, tmp_path, umask022):
    db, files = tmp_path / "case.db", tmp_path / "files"
    r = run("ingest", "--db", db, "--extract-files", files, secrets_pcap)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(files.stat().st_mode) == 0o700  # the directory it created, too
    extracted = list(files.iterdir())
    assert extracted, "the HTTP body was not extracted"
    made = [db, *extracted] + [p for p in tmp_path.iterdir() if p.name.startswith("case.db-")]
    assert {str(p): oct(mode(p)) for p in made} == {str(p): "0o600" for p in made}

    r = run("db", "info", "--db", db)
    assert r.exit_code == 0, r.output
    assert "0600 (owner only)" in r.stdout and "warning" not in r.stderr
    os.chmod(db, 0o644)
    r = run("db", "info", "--db", db, "--format", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["file_mode"] == "0644"
    assert "holds 1 credential(s)" in r.stderr and "anyone on this machine can read it (mode 0644)" in r.stderr


def test_replay_eve_file_and_store_are_owner_only(secrets_pcap, tmp_path, umask022):
    eve, db = tmp_path / "alerts.json", tmp_path / "replay.db"
    r = run("replay", secrets_pcap, "--db", db, "--eve", eve)
    assert r.exit_code == 0, r.output
    assert any(json.loads(line)["event_type"] == "alert" for line in eve.read_text().splitlines())
    assert mode(eve) == 0o600 and mode(db) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_eve_unwritable_leaves_nothing(secrets_pcap, tmp_path):
    eve = tmp_path / "missing-dir" / "alerts.json"
    r = run("replay", secrets_pcap, "--eve", eve)
    assert r.exit_code != 0
    assert "cannot write" in r.stderr and not eve.exists()
