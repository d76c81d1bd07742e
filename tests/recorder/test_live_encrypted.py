"""The recorder with ``--encrypt-to``: every sealed file is an age file for the recipient, which
gives nothing away without the identity; Debian's ``age`` CLI opens it, and the pcap inside
holds every packet replayed; verify needs no key; an ingest with --identity indexes what the
recorder indexed; extract --identity of a flow spanning files equals tcpdump's filter over the
decrypted files."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import dpkt
import pytest
from click.testing import CliRunner

from analysis.cli import main as wiretrail
from recorder.core.secretseal import FINGERPRINT_KEY
from tests.recorder.live import index_rows, records

pyrage = pytest.importorskip("pyrage")


def cli(*args: str):
    return CliRunner().invoke(wiretrail, list(args))


def test_live_encrypted_files(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    if shutil.which("age") is None or shutil.which("tcpdump") is None:
        pytest.skip("Debian's age and tcpdump are needed (apt-get install age tcpdump)")
    ident = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"{ident}\n")
    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0", "--no-parsers",
                   "--encrypt-to", str(ident.to_public())).ready()
    netns.replay(loop_pcap, pps=10000)
    assert rec.stop() == 0, rec.text()
    files = sorted(rec.out.glob("*.pcap.age"))
    assert len(files) >= 3 and not list(rec.out.glob("*.pcap"))
    assert (rec.out / FINGERPRINT_KEY).stat().st_mode & 0o777 == 0o600

    # unreadable without the identity: not a capture, no packet bytes in it
    sent = [bytes(b) for _, b in dpkt.pcap.Reader(open(loop_pcap, "rb"))]
    blob = files[0].read_bytes()
    assert blob.startswith(b"age-encryption.org/v1\n")
    assert not any(p[-40:] in blob for p in sent[:2000] if len(p) > 100)
    r = cli("ingest", "--no-parsers", "--db", str(tmp_path / "no-key.db"), str(rec.out))
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "--identity KEYFILE" in r.output

    # Debian's age opens them; together they hold every packet replayed, in order
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = []
    for f in files:
        p = plain_dir / f.name[: -len(".age")]
        subprocess.run(["age", "-d", "-i", str(key), "-o", str(p), str(f)], check=True, capture_output=True)
        plain.append(p)
    got = [bytes(b) for p in plain for _, b in dpkt.pcap.Reader(open(p, "rb"))]
    assert got == sent

    r = cli("verify", "--db", str(rec.db))
    assert r.exit_code == 0 and f"{len(files)} file(s) re-hashed" in r.output, r.output

    again = tmp_path / "again.db"
    r = cli("ingest", "--no-parsers", "--db", str(again), "--identity", str(key), str(rec.out))
    assert r.exit_code == 0, r.output
    live = index_rows(rec.db)
    assert sum(row[5] for row in live) > 1000 and live == index_rows(again)

    with sqlite3.connect(rec.db) as conn:
        conn.row_factory = sqlite3.Row
        chosen = conn.execute("SELECT * FROM flows WHERE proto = 'tcp' ORDER BY orig_pkts + resp_pkts DESC "
                              "LIMIT 30").fetchall()
    spanning = 0
    for f in chosen:
        out = tmp_path / "x.pcap"
        r = cli("extract", "--db", str(rec.db), "--uid", f["uid"], "--out", str(out), "--identity", str(key))
        assert r.exit_code == 0, r.output
        extracted = [bytes(b) for _, b in dpkt.pcap.Reader(open(out, "rb"))]
        expr = f"tcp and host {f['orig_h']} and host {f['resp_h']} and port {f['orig_p']} and port {f['resp_p']}"
        assert extracted == records(plain, expr, tmp_path / "ref.pcap"), f["uid"]
        spanning += "from 1 file" not in r.stderr
    assert spanning, "no flow spans rotated files"


def test_sigkill_leaves_an_encrypted_part_sealed_as_it_stands(netns, tmp_path):
    import signal
    import time

    from recorder.core.agecrypt import DecryptingReader, load_identities
    from recorder.core.errors import CaptureError
    from tests.recorder.live import Recorder
    from tests.recorder.traffic import write_loopback_capture

    ident = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"{ident}\n")
    args = ("--rotate-size", "100M", "--rotate-interval", "0", "--no-parsers", "--encrypt-to", str(ident.to_public()))
    slow = tmp_path / "slow.pcap"
    write_loopback_capture(slow, 6000, seed=11)
    rec = Recorder(netns, tmp_path, *args).ready()
    replay = subprocess.Popen(["ip", "netns", "exec", netns.name, "tcpreplay", "-q", "--pps", "2000",
                               "-i", netns.tx, str(slow)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec.wait_for("WATCHDOG=1")
    time.sleep(1.5)
    assert rec.stop(signal.SIGKILL) == -signal.SIGKILL
    replay.wait(timeout=60)
    time.sleep(1)  # its flow-writer process notices and ends
    parts = list(rec.out.glob("*.pcap.age.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 65536, "the killed recorder leaves its encrypted file"

    rec2 = Recorder(netns, tmp_path, *args).ready()
    assert "left unsealed by an unclean stop; sealed as it stands (encrypted" in rec2.text()
    netns.replay(slow, pps=20000)
    assert rec2.stop() == 0, rec2.text()
    assert not list(rec.out.glob("*.part"))
    with sqlite3.connect(rec.db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM captures ORDER BY id")]
    assert len(rows) == 2 and rows[0]["repaired"] == 1 and rows[0]["packets"] == 0
    assert rows[1]["prev_chain"] == rows[0]["chain"] and rows[1]["packets"] >= 6000
    assert cli("verify", "--db", str(rec.db)).exit_code == 0
    # decrypting the cut file gives its whole chunks (a pcap of the first packets), then one error
    got = b""
    with pytest.raises(CaptureError, match="cannot decrypt"), \
            DecryptingReader(rows[0]["path"], load_identities(str(key))) as r:
        while chunk := r.read(1 << 16):
            got += chunk
    assert len(got) >= 65536 and len(got) % 65536 == 0
    sent = [bytes(b) for _, b in dpkt.pcap.Reader(open(slow, "rb"))]
    head = tmp_path / "head.pcap"
    head.write_bytes(got)
    kept = [bytes(b) for _, b in dpkt.pcap.Reader(open(head, "rb"))]
    n = len(kept) - 1  # the last record is cut by the chunk boundary (dpkt gives what there is)
    assert n > 100 and kept[:n] == sent[:n] and sent[n].startswith(kept[n])


def test_full_disk_seals_the_cut_encrypted_file_and_goes_on(netns, tmp_path, loop_pcap):
    """The encrypting thread writes behind, so a full disk shows late: the cut file is sealed as
    it stands (marked repaired, packets unknown), retention frees space and capture goes on."""
    from tests.recorder.live import Recorder

    ident = pyrage.x25519.Identity.generate()
    out = tmp_path / "small"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(out)], check=True)
    try:
        rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--min-free-percent", "0", "--no-parsers",
                       "--encrypt-to", str(ident.to_public()), out=out).ready()
        netns.replay(loop_pcap, pps=20000)
        assert rec.stop() == 0, rec.text()
        assert "no space left to finish this encrypted file; sealed as it stands" in rec.text()
        assert not list(out.glob("*.part"))
        with sqlite3.connect(rec.db) as conn:
            rows = conn.execute("SELECT path, packets, repaired, sealed_at, deleted_at FROM captures "
                                "ORDER BY id").fetchall()
        cut = [r for r in rows if r[2] and r[3] is not None]
        assert cut and all(r[1] == 0 for r in cut)
        assert rows[-1][3] is not None and rows[-1][4] is None  # the last file sealed and kept
        r = cli("verify", "--db", str(rec.db))
        assert r.exit_code == 0, r.output
    finally:
        subprocess.run(["umount", str(out)], capture_output=True)


def test_live_credentials_encrypted(netns, tmp_path):
    """The daemon with parsers and --encrypt-to: HTTP Basic logins' passwords are nowhere in the
    database files; --show-secrets --identity shows each; a password shared by two accounts has
    one fingerprint."""
    from tests.recorder.live import Recorder
    from tests.recorder.traffic import write_protocol_capture

    ident = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"{ident}\n")
    logins = [("alice", "Tr0ub4dor&3"), ("bob", "correct-horse-battery"), ("carol", "Tr0ub4dor&3"),
              ("dave", "hunter2-but-longer")]
    cap = tmp_path / "logins.pcap"
    write_protocol_capture(cap, 20, logins=logins)
    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0",
                   "--encrypt-to", str(ident.to_public())).ready()
    netns.replay(cap, pps=2000)
    rec.wait_for("WATCHDOG=1")
    assert rec.stop() == 0, rec.text()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("wiretrail.db*"))
    assert b"alice" in data  # user names are stored in clear
    assert [pw for _, pw in logins if pw.encode() in data] == []
    r = cli("credentials", "--db", str(rec.db), "--show-secrets", "--identity", str(key), "--format", "jsonl")
    assert r.exit_code == 0, r.output
    import json

    rows = [json.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 20 and {(x["user"], x["secret"]) for x in rows} == set(logins)
    by_password: dict[str, set[str]] = {}
    for x in rows:
        by_password.setdefault(x["secret"], set()).add(x["secret_fp"])
    assert all(len(fps) == 1 for fps in by_password.values())
    assert len({next(iter(f)) for f in by_password.values()}) == 3  # three passwords, alice and carol share one
