"""recorder.core.secure_files: exact modes whatever the umask, atomic outputs, and the store,
pcap writer and extracted files that use them."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from recorder.core.apps.files import extract
from recorder.core.capio.pcapio import PcapWriter
from recorder.core.secure_files import (
    GROUP_READ,
    atomic_output,
    create_private,
    describe_mode,
    ensure_private,
)
from recorder.core.store import Store


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_create_private_sets_the_exact_mode(tmp_path, mask):
    with umask(mask):
        os.close(create_private(tmp_path / "a"))
        os.close(create_private(tmp_path / "b", GROUP_READ))
    assert mode(tmp_path / "a") == 0o600
    assert mode(tmp_path / "b") == 0o640


def test_create_private_never_follows_a_symlink_or_overwrites(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    for name in ("link", "target"):
        with pytest.raises(FileExistsError):
            create_private(tmp_path / name)
    assert target.read_text() == "keep"
    assert ensure_private(tmp_path / "target") is False and target.read_text() == "keep"


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out, text=True) as f:
        f.write("half of it")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]  # no temporary file left behind
    with umask(0o022), atomic_output(out, text=True) as f:
        f.write("new")
    assert out.read_text() == "new" and mode(out) == 0o600


def test_pcap_writer_is_private_and_discarded_on_error(tmp_path):
    path = tmp_path / "out.pcap"
    with pytest.raises(ValueError), PcapWriter(path) as w:
        w.write(1_000_000_000, b"x" * 60)
        w.write(-1, b"bad")  # outside the pcap range
    assert os.listdir(tmp_path) == []
    with umask(0o022), PcapWriter(path) as w:
        w.write(1_000_000_000, b"x" * 60)
    assert mode(path) == 0o600 and path.stat().st_size == 24 + 16 + 60


def test_new_sqlite_store_and_its_wal_are_private(tmp_path):
    db = tmp_path / "case.db"
    with umask(0o022):
        store = Store(str(db))
        store.ensure_schema()
        with store.engine.connect() as conn:  # the WAL and shared-memory files exist while connected
            conn.exec_driver_sql("SELECT count(*) FROM flows").all()
            files = sorted(p.name for p in tmp_path.iterdir())
            assert files == ["case.db", "case.db-shm", "case.db-wal"]
            assert {p.name: mode(p) for p in tmp_path.iterdir()} == dict.fromkeys(files, 0o600)
        store.close()
    assert describe_mode(db) == ("0600", None)


def test_recorder_store_is_group_readable(tmp_path):
    db = tmp_path / "rec.db"
    with umask(0o002):
        Store(str(db), file_mode=GROUP_READ).ensure_schema()
    assert mode(db) == 0o640
    assert describe_mode(db)[1].startswith("group ")


def test_existing_store_keeps_its_mode(tmp_path):
    db = tmp_path / "old.db"
    Store(str(db)).ensure_schema()
    os.chmod(db, 0o644)
    Store(str(db)).ensure_schema()
    assert mode(db) == 0o644
    assert describe_mode(db) == ("0644", "anyone on this machine")


def test_extracted_files_are_private(tmp_path):
    with umask(0o022):
        name = extract(tmp_path, "Fabc", "report.pdf", b"%PDF-1.4 secret", "application/pdf")
    assert mode(tmp_path / name) == 0o600


def test_recorder_files_and_database_are_0640(tmp_path):
    from tests.core.sealed import seal_demo

    with umask(0o022):
        db, _, files = seal_demo(tmp_path)
    assert files and {mode(f) for f in files} == {0o640}
    assert mode(db) == 0o640
