"""Credential secrets at rest with ``encrypt_to``: the recorder's parsers (``LiveApps``, no
network needed) write every secret encrypted for the recipient, so a grep of the database file
finds none of the passwords in the traffic; ``credentials --show-secrets --identity`` shows them,
and a keyed fingerprint shows one password used twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.cli import main as wiretrail
from recorder.core.agecrypt import parse_recipient
from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.secretseal import FINGERPRINT_KEY, sealer_for
from recorder.core.store import Store
from recorder.sinks import Counters, LiveApps

pyrage = pytest.importorskip("pyrage")
CAPTURES = [Path(__file__).resolve().parents[2] / "captures" / n for n in ("demo-breach.pcap", "demo.pcap")]
# passwords of the FTP and HTTP form logins in the two captures (not words the schema itself holds)
PASSWORDS = ("Winter2024!", "Sh0pAdm1n!", "Summer2026", "shop2026", "letmein", "welcome1", "admin123")


def cli(*args: str):
    return CliRunner().invoke(wiretrail, list(args))


def record(db: Path, sealer) -> None:
    """The demo captures through the recorder's parser process into ``db``."""
    store = Store(str(db), secrets=sealer)
    store.ensure_schema()
    apps = LiveApps(store, Counters())
    dec = Decoder(fast=True)
    for path in CAPTURES:
        for raw in read_batches(str(path), batch_size=50):
            apps.feed(raw, dec.decode(raw), None)
    apps.flush()
    apps.close()
    store.close()


def test_secrets_encrypted_in_the_database_and_shown_with_the_identity(tmp_path: Path):
    ident = pyrage.x25519.Identity.generate()
    key, other = tmp_path / "key.txt", tmp_path / "other.txt"
    key.write_text(f"{ident}\n")
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    sensor = tmp_path / "captures"
    sensor.mkdir()
    clear, enc = tmp_path / "clear.db", tmp_path / "enc.db"
    record(clear, None)
    record(enc, sealer_for(parse_recipient(str(ident.to_public())), sensor))

    clear_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("clear.db*"))
    enc_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("enc.db*"))
    assert all(p.encode() in clear_bytes for p in PASSWORDS)  # the test would see them
    assert [p for p in PASSWORDS if p.encode() in enc_bytes] == []
    assert (sensor / FINGERPRINT_KEY).stat().st_mode & 0o777 == 0o600

    shown = cli("credentials", "--db", str(clear), "--show-secrets", "--format", "csv")
    r = cli("credentials", "--db", str(enc), "--show-secrets", "--identity", str(key), "--format", "csv")
    assert r.exit_code == 0, r.output
    strip = [line.rsplit(",", 1)[0] for line in r.output.splitlines()]  # without secret_fp
    assert strip == [line.rsplit(",", 1)[0] for line in shown.output.splitlines()]
    masked = cli("credentials", "--db", str(enc), "--format", "csv")
    assert masked.exit_code == 0 and "****" in masked.output and "BEGIN AGE" not in masked.output

    r = cli("credentials", "--db", str(enc), "--show-secrets")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "--identity KEYFILE" in r.output
    r = cli("credentials", "--db", str(enc), "--show-secrets", "--identity", str(other))
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "not the one the recorder encrypted to" in r.output

    with sqlite3.connect(enc) as conn:
        rows = conn.execute("SELECT user, secret, secret_fp FROM credentials WHERE secret IS NOT NULL").fetchall()
    assert rows and all(s.startswith("-----BEGIN AGE ENCRYPTED FILE-----") for _, s, _ in rows)
    fps = [fp for _, _, fp in rows]
    assert len(fps) == len(rows) and all(len(fp) == 16 for fp in fps)
    # Winter2024! twice (HTTP form and FTP): one fingerprint; every other password its own
    assert len(set(fps)) == len(rows) - 1
    with sqlite3.connect(clear) as conn:
        secrets = [s for (s,) in conn.execute("SELECT secret FROM credentials WHERE secret IS NOT NULL")]
    assert len(set(secrets)) == len(secrets) - 1
