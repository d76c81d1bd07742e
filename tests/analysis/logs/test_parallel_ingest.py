"""A log file read by several worker processes (``analysis.logs.parallel``) stores exactly the rows
a serial read stores: every column, in the same order, with the same ids and the same counts; on
generated auth and web lines, and on a file whose awkward lines (a line over ``MAX_LINE``, invalid
UTF-8, NUL, CRLF, blank lines, no final newline) sit at the ranges' cuts. A worker that fails
ends the ingest with one line and leaves nothing of the file in the store; an interrupt leaves no
scratch file behind."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analysis.logs import ingest as ingest_module
from analysis.logs import parallel as parallel_module
from analysis.logs import reading
from analysis.logs.ingest import MAX_LINE, Options, Parallel, ingest_file
from analysis.logs.parallel import parts
from analysis.logs.reading import Part
from recorder.core.store import Store

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_798_000_000
USERS = ["root", "alice", "bob", "deploy"]


def auth_line(rng: random.Random, t: int) -> str:
    stamp = time.strftime("%b %e %H:%M:%S", time.gmtime(t))
    ip, port, user = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65535), rng.choice(USERS)
    return rng.choice([
        f"{stamp} gw sshd[{port}]: Failed password for {user} from {ip} port {port} ssh2",
        f"{stamp} gw sshd[{port}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:abc",
        f"{stamp} gw sudo:   {user} : TTY=pts/1 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/id",
        f"{stamp} gw systemd-logind[9]: New session {port} of user {user}.",
        f"{stamp} gw café[1]: naïve ünïcode for {user}",
        "not a syslog line",
    ])


def web_line(rng: random.Random, t: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    return (f'203.0.{rng.randrange(256)}.{rng.randrange(1, 255)} - - [{stamp}] "GET /p{rng.randrange(50)}?q=%27 '
            f'HTTP/1.1" {rng.choice((200, 404))} {rng.randrange(9999)} "-" "Mozilla/5.0"')


def generated(folder: Path, n: int) -> tuple[Path, Path]:
    rng = random.Random(5)
    auth, web = folder / "auth.log", folder / "access.log"
    auth.write_text("".join(auth_line(rng, T0 + i // 7) + "\n" for i in range(n)), encoding="utf-8")
    web.write_text("".join(web_line(rng, T0 + i // 7) + "\n" for i in range(n)), encoding="utf-8")
    os.utime(auth, (T0 + 86400, T0 + 86400))
    return auth, web


def awkward(path: Path) -> Path:
    """Syslog lines with every awkward kind of line, many times over, so that some sit at (or
    across) the cut of any number of ranges; no final newline."""
    rng = random.Random(3)
    odd = [b"x" * (MAX_LINE + 10), b"y" * MAX_LINE, b"bad \xff\xfe utf-8", b"nul \x00 byte", b"", b"   ",
           b"\r", b"Jan  1 00:00:01 gw sshd[5]: Failed password for root from 192.0.2.1 port 5 ssh2\r",
           b"z" * (3 * MAX_LINE)]
    lines = []
    for i in range(3000):
        lines.append(rng.choice(odd) if rng.random() < 0.1 else auth_line(rng, T0 + i).encode())
    path.write_bytes(b"\n".join(lines) + b"\nJan  1 00:00:02 gw sshd[6]: Invalid user q from 192.0.2.2 port 6")
    os.utime(path, (T0 + 86400, T0 + 86400))
    return path


def stored(db: Path) -> tuple[list, list]:
    con = sqlite3.connect(db)
    try:
        return (con.execute("SELECT * FROM log_events ORDER BY id").fetchall(),
                con.execute("SELECT id, path, sha256, kind, host, events, skipped FROM log_sources ORDER BY id")
                .fetchall())
    finally:
        con.close()


def ingest_all(db: Path, files, parallel: Parallel, options: Options | None = None) -> list:
    options = options or Options()
    store = Store(str(db))
    store.ensure_schema()
    try:
        return [ingest_file(store, str(f), options, parallel) for f in files]
    finally:
        store.close()


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_generated_lines_give_the_serial_rows(tmp_path, workers):
    files = generated(tmp_path, 6000)
    serial = ingest_all(tmp_path / "serial.db", files, Parallel(workers=1))
    split = ingest_all(tmp_path / "split.db", files, Parallel(min_bytes=0, workers=workers))
    assert split == serial
    assert stored(tmp_path / "split.db") == stored(tmp_path / "serial.db")
    assert len(stored(tmp_path / "split.db")[0]) == 12000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".wiretrail-logs-")]  # scratch files gone


@pytest.mark.parametrize("workers", [2, 3])
def test_several_ranges_per_worker_give_the_serial_rows(tmp_path, monkeypatch, workers):
    """Ranges smaller than a file's share of a worker: each worker takes every n-th range, and the
    parent copies them in the file's order while the workers go on with later ones."""
    monkeypatch.setattr(parallel_module, "PART_MIN_BYTES", 1)
    files = generated(tmp_path, 6000)
    assert all(parallel_module.part_count(f.stat().st_size, workers) == workers * parallel_module.PARTS_PER_WORKER
               for f in files)
    serial = ingest_all(tmp_path / "serial.db", files, Parallel(workers=1))
    split = ingest_all(tmp_path / "split.db", files, Parallel(min_bytes=0, workers=workers))
    assert split == serial
    assert stored(tmp_path / "split.db") == stored(tmp_path / "serial.db")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".wiretrail-logs-")]


@pytest.mark.parametrize("workers", [2, 5, 11, 23])
def test_awkward_lines_at_the_cuts_give_the_serial_rows_and_counts(tmp_path, workers):
    log = awkward(tmp_path / "auth.log")
    serial = ingest_all(tmp_path / "serial.db", [log], Parallel(workers=1), Options(host="h"))
    split = ingest_all(tmp_path / "split.db", [log], Parallel(min_bytes=0, workers=workers), Options(host="h"))
    assert split == serial and serial[0].skipped > 100
    assert stored(tmp_path / "split.db") == stored(tmp_path / "serial.db")


@pytest.mark.parametrize("block", [reading.BLOCK, 4096])
def test_any_cut_at_a_line_start_reads_the_same_lines(tmp_path, monkeypatch, block):
    """Cut in two at every line start of the awkward file (and small blocks, so that long lines
    cross blocks): the parts' lines and counts add up to the whole file's."""
    monkeypatch.setattr(reading, "BLOCK", block)
    log = awkward(tmp_path / "a.log")
    data = log.read_bytes()
    whole_counts = {"skipped": 0}
    whole = list(reading.lines(str(log), whole_counts))
    starts = [i + 1 for i, b in enumerate(data) if b == 10][::37]
    for cut in starts:
        counts = {"skipped": 0}
        first = Part(0, cut, 0)
        second = Part(cut, len(data), data[:cut].count(b"\n"))
        got = list(reading.lines(str(log), counts, first)) + list(reading.lines(str(log), counts, second))
        assert (got, counts) == (whole, whole_counts), cut


def test_parts_cut_after_newlines_and_count_the_lines_before(tmp_path):
    log = awkward(tmp_path / "a.log")
    data = log.read_bytes()
    for n in (1, 2, 3, 8, 200):
        got = parts(str(log), n)
        assert got[0].start == 0 and got[-1].end == len(data)
        assert all(a.end == b.start for a, b in zip(got, got[1:]))
        assert all(data[p.start - 1] == ord("\n") and p.lines == data[:p.start].count(b"\n") for p in got[1:])
        assert 1 <= len(got) <= n


def test_a_small_file_is_read_serially(tmp_path):
    assert ingest_module._ranges(Store(str(tmp_path / "w.db")), str(awkward(tmp_path / "a.log")), "syslog",
                                 100_000, Parallel()) == ([], 1)


FAILING = textwrap.dedent("""
    import os, resource, sys
    from analysis.logs.ingest import Options, Parallel, ingest_file
    from recorder.core.errors import WiretrailError
    from recorder.core.store import Store
    db, log = sys.argv[1], sys.argv[2]
    store = Store(db)
    store.ensure_schema()
    store.close()
    store = Store(db)
    limit = os.path.getsize(db) + (1 << 20)  # the workers' scratch files outgrow this
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        ingest_file(store, log, Options(), Parallel(min_bytes=0, workers=2))
    except WiretrailError as err:
        print(err)
        sys.exit(1)
""")


def test_a_failing_worker_gives_one_line_and_stores_nothing_of_the_file(tmp_path):
    auth, _web = generated(tmp_path, 40000)
    db = tmp_path / "w.db"
    r = subprocess.run([sys.executable, "-c", FAILING, str(db), str(auth)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{auth}:") and "scratch file" in lines[0], lines
    assert stored(db) == ([], [])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".wiretrail-logs-")]


INTERRUPTED = textwrap.dedent("""
    import sys
    from analysis.logs.ingest import Options, Parallel, ingest_file
    from recorder.core.store import Store
    store = Store(sys.argv[1])
    store.ensure_schema()
    try:
        ingest_file(store, sys.argv[2], Options(), Parallel(min_bytes=0, workers=2))
    except KeyboardInterrupt:
        print("interrupted")
        sys.exit(130)
    print("finished")
""")


def test_an_interrupt_leaves_no_scratch_file(tmp_path):
    auth, _web = generated(tmp_path, 150000)
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(tmp_path / "w.db"), str(auth)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not [p for p in os.listdir(tmp_path) if p.startswith(".wiretrail-logs-")]:
        assert proc.poll() is None and time.monotonic() < deadline, "no scratch folder seen"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert (proc.returncode, out.strip()) == (130, "interrupted")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".wiretrail-logs-")]
    assert stored(tmp_path / "w.db") == ([], [])


def test_a_scratch_folder_that_cannot_be_made_is_one_error_and_stores_nothing(tmp_path):
    from recorder.core.errors import WiretrailError

    log = awkward(tmp_path / "auth.log")
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(WiretrailError) as got:
        ingest_all(tmp_path / "w.db", [log], Parallel(min_bytes=0, workers=2, scratch_dir=str(missing)))
    assert str(got.value) == f"{log}: cannot make a scratch folder in {missing}: No such file or directory"
    assert stored(tmp_path / "w.db") == ([], [])
