"""Detection on two threads (``analysis.logs.workers``) gives exactly the serial run's matches, in
the same order, on SQLite (the table laid out in two halves) and on PostgreSQL (one pass); its
scratch files are gone afterwards, also when a worker fails."""

from __future__ import annotations

import dataclasses
import glob
import os
import random
from pathlib import Path

import pytest

from analysis.logs import layout, workers
from analysis.logs.detect import run
from analysis.logs.ingest import Options, ingest_file
from analysis.logs.sigma import Query, load_rules
from recorder.core.store import Store

ROOT = Path(__file__).resolve().parents[3]
USERS = ["root", "admin", "alice", "bob", "oracle", "test"]


def _logs(folder: Path, lines: int) -> list[Path]:
    """Auth lines from a few busy addresses (the correlations fire) and many quiet ones, web lines
    with attacks and generated-rule tokens."""
    rng = random.Random(11)
    auth, web = [], []
    for i in range(lines):
        ip = f"10.0.0.{rng.randrange(3)}" if rng.random() < .3 else f"10.1.{rng.randrange(9)}.{rng.randrange(250)}"
        u, k, t = rng.choice(USERS), rng.random(), 3600 + i // 4
        msg = (f"sshd[1]: Failed password for {u} from {ip} port {1024 + i % 60000} ssh2" if k < .5 else
               f"sshd[1]: Invalid user {u}{i % 9} from {ip} port 5" if k < .6 else
               f"sshd[1]: Accepted password for {u} from {ip} port 6 ssh2" if k < .7 else
               f"useradd[2]: new user: name={u}{i % 5}, UID=1001, GID=1001, home=/h, shell=/bin/sh" if k < .72 else
               f"sudo:   {u} : TTY=pts/0 ; PWD=/h ; USER=root ; COMMAND=/usr/bin/{rng.choice(['id', 'xmlrpc'])}")
        auth.append(f"Jan  1 {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d} gw {msg}\n")
        if i % 3 == 0:
            path = rng.choice(["/", "/wp-admin/x", "/uploads/shell.php?cmd=id", "/../../etc/passwd", "/.env"])
            web.append(f'192.0.2.{i % 7} - - [01/Jan/2027:05:{i // 60 % 60:02d}:{i % 60:02d} +0000] "GET {path} '
                       f'HTTP/1.1" {rng.choice((200, 404))} 10 "-" "{rng.choice(["curl/8", "backup1", "Mozilla"])}"\n')
    (folder / "auth.log").write_text("".join(auth))
    os.utime(folder / "auth.log", (1_798_800_000, 1_798_800_000))
    (folder / "access.log").write_text("".join(web))
    return [folder / "auth.log", folder / "access.log"]


def _rules(folder: Path):
    """Our rules and generated ones like bench/bench_logs.py's (contains, startswith, endswith,
    regular expressions): several shared scans, single rules and correlations."""
    rules = folder / "rules"
    rules.mkdir()
    for i in range(40):
        tok = ["wp-admin", ".env", "xmlrpc", "backup"][i % 4] + (str(i) if i >= 4 else "")
        det, src = [(f"cs-uri-stem|contains: '{tok}'", "category: webserver"),
                    (f"cs-user-agent|startswith: '{tok}'\n        sc-status: 200", "category: webserver"),
                    (f"command|endswith: '/{tok}'", "product: linux\n    service: sudo"),
                    (f"user|re: '^{tok.replace('.', '[.]')}[0-9]*$'\n        action: login",
                     "product: linux\n    service: sshd")][i % 4]
        (rules / f"gen{i:03d}.yml").write_text(
            f"title: generated {i}\nid: 00000000-0000-4000-8000-{i:012d}\nlogsource:\n    {src}\n"
            f"detection:\n    sel:\n        {det}\n    condition: sel\nlevel: low\n")
    return load_rules([str(ROOT / "rules" / "sigma"), str(rules)])


def _key(result):
    matches, failed, count = result
    return [(m.rule.id, m.rule.title, m.event_ids, m.group) for m in matches], failed, count


def _scratch() -> set[str]:
    return set(glob.glob(os.path.join(workers.scratch_base(), "wiretrail-detect-*")))


SPLIT_MIN = 1_000  # the layout's threshold for these tests: a few thousand events are split


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("threads")
    store = Store(str(folder / "w.db"))
    store.ensure_schema()
    for f in _logs(folder, 4_000):  # more events than SPLIT_MIN: the layout is split
        ingest_file(store, str(f), Options())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layout, "SPLIT_MIN", SPLIT_MIN)
        yield store, _rules(folder)
    store.close()


def test_two_threads_give_the_serial_matches_in_order(sqlite_store):
    store, rules = sqlite_store
    assert len(workers.units(rules)) > 4 and any(u.scope for u in workers.units(rules))
    before = _scratch()
    serial, threaded = _key(run(store, rules, threads=1)), _key(run(store, rules, threads=2))
    assert threaded == serial
    matches, failed, count = serial
    assert count > layout.SPLIT_MIN and not failed
    fired = {title for _id, title, _ids, _group in matches}
    assert {"SSH password guessing from one address", "Web shell request"} <= fired
    assert any(title.startswith("generated") for title in fired)
    # a window: the events from a time on (the live recorder's), split or not
    since = 1_798_761_600 * 10**9 + 3600 * 10**9 + 2000 * 10**9 // 4
    assert _key(run(store, rules, since, threads=2)) == _key(run(store, rules, since, threads=1))
    assert _scratch() <= before


def test_scratch_files_go_when_a_worker_fails(sqlite_store):
    """An error that is not a rule's (here a query that is not text) stops both threads, is raised,
    and leaves no scratch file behind."""
    store, rules = sqlite_store
    broken = dataclasses.replace(rules, rules=rules.rules + (dataclasses.replace(
        rules.rules[0], title="broken", scope=None, correlation=False, queries=(Query(sql=17),)),))  # type: ignore[arg-type]
    before = _scratch()
    with pytest.raises(AttributeError):
        run(store, broken, threads=2)
    assert _scratch() <= before


@pytest.mark.postgres
def test_two_threads_on_postgres(pg_url, tmp_path):
    """On PostgreSQL the events are copied through Python (``_stage``), laid out in one pass."""
    from tests.helpers.postgres import pg_reset

    pg_reset(pg_url)
    with Store(pg_url) as store:
        store.ensure_schema()
        for f in _logs(tmp_path, 3_000):
            ingest_file(store, str(f), Options())
        rules = _rules(tmp_path)
        serial = _key(run(store, rules, threads=1))
        assert serial[0] and _key(run(store, rules, threads=2)) == serial


def test_split_layout_equals_one_pass_and_is_indexed(sqlite_store, tmp_path):
    """The table laid out in two halves (its source indexes made before the rows go in) holds the
    one-pass table's rows, and a rule's source condition is answered from those indexes."""
    store, rules = sqlite_store
    one = layout.connect()
    layout.build_table(one, rules.fields, layout.stage(one, store), rules.field_rows)
    two = layout.connect(str(tmp_path / "logs.db"))
    layout.build_halves(two, str(tmp_path / "logs.db"), store, None, rules)
    rows = "SELECT * FROM logs ORDER BY wt_event_id"
    assert two.execute(rows).fetchall() == one.execute(rows).fetchall()
    assert len(one.execute(rows).fetchall()) > layout.SPLIT_MIN
    for conn in (one, two):
        indexed = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"logs_wt_kind", "logs_wt_source"} <= indexed
        plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN SELECT wt_event_id FROM logs "
                                                      "WHERE wt_kind = 'sshd' AND user = 'root'"))
        assert "logs_wt_kind" in plan
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    one.close()
    two.close()
