"""The fast paths of ingest and detect give what the slow ones gave: the web log's cached day
(against strptime), and REGEXP conditions answered by lookup tables (against the row-by-row
``regexp`` function, on the same table and SQL: case-sensitive, NULLs, negation, a quote, a
REGEXP inside a string literal left alone)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.logs.detect import Regexps
from analysis.logs.layout import connect as _connect
from analysis.logs.layout import regexp as _regexp
from analysis.logs.messages import SSHD, _sshd
from analysis.logs.store import _FIELDS_JSON, _JSON_FIELDS
from analysis.logs.web import _time_ns

STAMPS = ["[10/Oct/2000:13:55:36 -0700]", "[31/Dec/2026:23:59:59 +0530]", "[01/Jan/2027:00:00:00 -1200]",
          "[29/Feb/2024:12:00:00 +0000]", "[29/Feb/2021:12:00:00 +0000]", "[10/Oct/2000:13:55:60 -0700]",
          "[10/Oct/2000:24:00:00 +0000]", "[10/Oct/2000:1\u00b2:55:36 -0700]", "[10/Foo/2000:13:55:36 -0700]",
          "[1/Oct/2000:13:55:36 -0700]", "[10/Oct/2000:13:55:36 +0000"]


@pytest.mark.parametrize("stamp", STAMPS)
def test_cached_day_equals_strptime(stamp):
    days: dict = {}
    assert _time_ns(stamp, days) == _time_ns(stamp)
    assert _time_ns(stamp, days) == _time_ns(stamp)  # second time from the cache


@pytest.mark.parametrize("message", [
    "Accepted password for root from 198.51.100.7 port 41000 ssh2",
    "Failed password for invalid user bob from 10.0.0.1 port 22 ssh2",
    "Invalid user x from 2001:db8::1 port 5",
    "Connection from 10.0.0.1 port 5 on 10.0.0.2 port 22",
    "Connection closed by authenticating user root 10.0.0.1 port 5 [preauth]",
    "Received disconnect from 10.0.0.1 port 5:11: Bye [preauth]",
    "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)",
    "error: maximum authentication attempts exceeded for root from 10.0.0.1 port 5 ssh2 [preauth]",
    "Server listening on 0.0.0.0 port 22.", " Accepted password for root from 10.0.0.1 port 5",
])
def test_sshd_first_word_dispatch_equals_trying_every_pattern(message):
    def every(message):
        for rx, action, outcome in SSHD:
            if rx.search(message):
                return action, outcome
        return None, None
    got = _sshd(message)
    assert (got.action, got.outcome) == every(message)


def test_regexp_lookup_equals_the_function():
    conn = _connect()
    conn.execute("CREATE TABLE logs (wt_event_id INTEGER PRIMARY KEY, user TEXT COLLATE NOCASE, "
                 "`cs-uri` TEXT COLLATE NOCASE, n TEXT COLLATE NOCASE)")
    rows = [(1, "Admin7", "/a'b", "12"), (2, "admin7", "/x", None), (3, None, "/ADMIN", "7"), (4, "root", None, "x12")]
    conn.executemany("INSERT INTO logs VALUES (?,?,?,?)", rows)
    queries = [
        "SELECT wt_event_id FROM logs WHERE user REGEXP '^admin[0-9]+$'",
        "SELECT wt_event_id FROM logs WHERE user REGEXP '(?i)^admin[0-9]+$'",
        "SELECT wt_event_id FROM logs WHERE NOT user REGEXP '^admin'",
        "SELECT wt_event_id FROM logs WHERE NOT (`cs-uri` REGEXP 'a''b')",
        "SELECT wt_event_id FROM logs WHERE n REGEXP '^[0-9]+$' OR user = 'x REGEXP ''y'''",
        "SELECT wt_event_id FROM logs WHERE user REGEXP 'nothing' AND n = '7'",
        "SELECT wt_event_id FROM logs WHERE `cs-uri` REGEXP '(' OR user = 'root'",
    ]
    regexps = Regexps(conn)
    for sql in queries:
        slow = sorted(r[0] for r in conn.execute(sql))
        fast_sql = regexps.rewrite(sql)
        assert "REGEXP" not in fast_sql.replace("'x REGEXP ''y'''", "")
        assert sorted(r[0] for r in conn.execute(fast_sql)) == slow, sql
    assert _regexp("^admin", "admin1") and not _regexp(None, "x")


def test_correlation_groups_left_out_change_nothing(tmp_path):
    """Correlations run over the rows of the groups that can fire only (``needs``, found for the
    correlations grouped by the same fields in one pass): on logs where some groups fire and others
    fall short, the matches equal those with every group kept."""
    import dataclasses
    import os as _os
    import random

    from analysis.logs.detect import run
    from analysis.logs.ingest import Options, ingest_file
    from analysis.logs.sigma import load_rules
    from recorder.core.store import Store

    rng = random.Random(5)
    users = ["root", "admin", "alice", "bob", "eve", "oracle", "test"]
    lines = []
    for i in range(3000):
        # a few busy addresses, many quiet ones
        ip = f"10.0.0.{rng.randrange(4)}" if rng.random() < .5 else f"10.0.{rng.randrange(1, 9)}.{rng.randrange(250)}"
        u = rng.choice(users)
        k = rng.random()
        msg = (f"sshd[1]: Failed password for {u} from {ip} port {1024 + i} ssh2" if k < .6 else
               f"sshd[1]: Invalid user {u}{i % 7} from {ip} port {1024 + i}" if k < .75 else
               f"sshd[1]: Accepted password for {u} from {ip} port {1024 + i} ssh2" if k < .85 else
               f"useradd[2]: new user: name={u}, UID=1001, GID=1001, home=/h, shell=/bin/sh" if k < .88 else
               f"sudo:   {u} : TTY=pts/0 ; PWD=/h ; USER=root ; COMMAND=/bin/sh")
        t = 3600 + i * 4
        lines.append(f"Jan  1 {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d} gw {msg}")
    # 15 failures two minutes apart (never 10 in 10 min: left out), and 10 failures whose first
    # and last are exactly 10 min apart (the window's bounds are inclusive: it fires)
    extra = [(20000 + i * 120, "10.9.9.9") for i in range(15)] + [(30000 + i * 600 // 9, "10.9.9.8") for i in range(10)]
    for t, ip in extra:
        lines.append(f"Jan  1 {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d} gw sshd[1]: "
                     f"Failed password for root from {ip} port 999 ssh2")
    log = tmp_path / "auth.log"
    log.write_text("\n".join(lines) + "\n")
    _os.utime(log, (1_798_800_000, 1_798_800_000))
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    ingest_file(store, str(log), Options())
    rules = load_rules([str(__import__("pathlib").Path(__file__).resolve().parents[3] / "rules" / "sigma")])
    assert any(r.needs for r in rules.rules)
    # the correlations grouped by src_ip read their rows once, as one unit (``needs.NeedRows``)
    from analysis.logs.workers import units
    shared = [{r.title for r in u.rules} for u in units(rules) if u.rules[0].correlation and len(u.rules) > 1]
    assert {"SSH password guessing from one address",
            "Password spraying - failed logons to many accounts from one address"} <= shared[0]
    every = dataclasses.replace(rules, rules=tuple(dataclasses.replace(r, needs=()) for r in rules.rules))

    def key(matches):
        return sorted((m.rule.title, m.event_ids, m.group) for m in matches)
    fast, slow = key(run(store, rules)[0]), key(run(store, every)[0])
    assert fast == slow
    fired = {title for title, _, _ in fast}
    guessing = [dict(group).get("src_ip") for title, _, group in fast if title == "SSH password guessing from one address"]
    assert "10.9.9.8" in guessing and "10.9.9.9" not in guessing
    assert {"SSH password guessing from one address",
            "Password spraying - failed logons to many accounts from one address"} <= fired
    store.close()


def test_shared_scan_equals_one_scan_per_rule(tmp_path):
    """Detection rules of one kind evaluated together (``scope``) match what each gives alone,
    including regular expressions, a rule that matches nothing and two rules on one row."""
    import dataclasses

    from analysis.logs.detect import run
    from analysis.logs.ingest import Options, ingest_file
    from analysis.logs.sigma import load_rules
    from recorder.core.store import Store

    web = tmp_path / "access.log"
    web.write_text("".join(
        f'192.0.2.{i % 7} - - [01/Jan/2027:05:00:{i % 60:02d} +0000] "GET /{p} HTTP/1.1" {s} 10 "-" "{ua}"\n'
        for i, (p, s, ua) in enumerate([("wp-admin/x", 200, "curl/8"), ("index.html", 200, "Mozilla"),
                                        ("WP-ADMIN", 404, "sqlmap/1"), (".env", 200, "curl/7"),
                                        ("cgi-bin/a", 500, "Mozilla")] * 5)))
    auth = tmp_path / "auth.log"
    auth.write_text("".join(
        f"Jan  1 01:00:{i:02d} gw sshd[1]: Failed password for {u} from 198.51.100.{i} port {4000 + i} ssh2\n"
        for i, u in enumerate(["admin1", "Admin2", "root", "admin", "backup9"])))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    dets = [("webserver", "cs-uri-stem|contains: 'wp-admin'"), ("webserver", "cs-user-agent|startswith: 'curl'"),
            ("webserver", "sc-status: 200"), ("webserver", "cs-uri-stem|contains: 'nothing-here'"),
            ("sshd", "user|re: '^admin[0-9]+$'"), ("sshd", "user|re: '(?i)^ADMIN'"), ("sshd", "user|re: '^zz'")]
    for i, (src, det) in enumerate(dets):
        logsource = "category: webserver" if src == "webserver" else "product: linux\n    service: sshd"
        (rules_dir / f"r{i}.yml").write_text(
            f"title: r{i}\nid: 00000000-0000-4000-8000-{i:012d}\nlogsource:\n    {logsource}\n"
            f"detection:\n    sel:\n        {det}\n    condition: sel\nlevel: low\n")
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    for f in (web, auth):
        ingest_file(store, str(f), Options())
    rules = load_rules([str(rules_dir)])
    assert len(rules.rules) == len(dets) and all(r.scope for r in rules.rules)
    alone = dataclasses.replace(rules, rules=tuple(dataclasses.replace(r, scope=None) for r in rules.rules))

    def key(matches):
        return sorted((m.rule.title, m.event_ids) for m in matches)
    shared = key(run(store, rules)[0])
    assert shared == key(run(store, alone)[0])
    counts = {t: sum(1 for title, _ in shared if title == t) for t in {title for title, _ in shared}}
    assert counts == {"r0": 10, "r1": 10, "r2": 15, "r4": 1, "r5": 3}  # Sigma: case-insensitive but |re
    store.close()


@pytest.mark.parametrize("block", [7, 100, 4096, 1 << 20])
def test_block_lines_equal_line_by_line(tmp_path, monkeypatch, block):
    """A plain file read in blocks gives the lines and skip counts that the line-by-line reading
    of the same bytes gzipped gives: blank, CR, NUL, invalid UTF-8, long lines, no last newline."""
    import gzip
    import random

    from analysis.logs import reading

    long = reading.MAX_LINE
    pieces = [b"a line\n", b"\n", b"   \n", b"x\r\n", b"\r\n", b" lead\n", b"nul\x00x\n", b"bad\xff\n",
              "\u00e9t\u00e9\n".encode(), b"y" * long + b"\n", b"y" * (long + 1) + b"\n", b"z" * (3 * long) + b"\n",
              "\u00e9".encode() * (long // 2 + 1) + b"\n", b"\x0c\n", b"last"]
    rng = random.Random(block)
    monkeypatch.setattr(reading, "BLOCK", block)
    for trial in range(12):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(40)))
        if trial % 3 == 0:
            data = data.rstrip(b"\n") + b"q" * (long + trial % 3 - 1)
        plain, zipped = tmp_path / f"{trial}.log", tmp_path / f"{trial}.log.gz"
        plain.write_bytes(data)
        zipped.write_bytes(gzip.compress(data))
        by_block, by_line = {"skipped": 0}, {"skipped": 0}
        assert list(reading.lines(str(plain), by_block)) == list(reading.lines(str(zipped), by_line))
        assert by_block == by_line


def test_fields_read_on_their_rules_rows_only_change_nothing(tmp_path):
    """A JSON field read only on the rows of the log sources of the rules naming it (``rows``)
    gives the matches of reading it on every row: shipped rules (correlations, Windows fields) and
    web and sshd rules, one field named by rules of both sources."""
    import dataclasses
    from pathlib import Path

    from analysis.logs.detect import run
    from analysis.logs.ingest import Options, ingest_file
    from analysis.logs.sigma import load_rules
    from recorder.core.store import Store

    web = tmp_path / "access.log"
    web.write_text("".join(f'203.0.113.{i % 3} - - [01/Jan/2027:05:00:{i:02d} +0000] "GET /{p} HTTP/1.1" 200 1 "-" "{u}"\n'
                           for i, (p, u) in enumerate([("wp-admin", "curl/8"), ("x", "root"), ("etc/passwd", "admin")] * 4)))
    auth = tmp_path / "auth.log"
    auth.write_text("".join(f"Jan  1 01:00:{i:02d} gw sshd[1]: Failed password for {u} from 198.51.100.9 port {4000 + i} ssh2\n"
                            for i, u in enumerate(["root", "admin", "alice", "bob", "eve", "pi", "git"] * 2)))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    dets = [("category: webserver", "cs-uri-stem|contains: 'passwd'"), ("category: webserver", "cs-user-agent: 'root'"),
            ("product: linux\n    service: sshd", "user: 'root'"), ("product: linux", "user: 'admin'"),
            ("category: webserver", "user: 'admin'")]
    for i, (src, det) in enumerate(dets):
        (rules_dir / f"r{i}.yml").write_text(f"title: r{i}\nid: 00000000-0000-4000-8000-{i:012d}\nlogsource:\n    {src}\n"
                                             f"detection:\n    sel:\n        {det}\n    condition: sel\nlevel: low\n")
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    for f in (web, auth):
        ingest_file(store, str(f), Options())
    rules = load_rules([str(Path(__file__).resolve().parents[3] / "rules" / "sigma"), str(rules_dir)])
    assert all(r.rows is not None for r in rules.rules) and rules.field_rows["cs-uri-stem"] is not None
    everywhere = dataclasses.replace(rules, rules=tuple(dataclasses.replace(r, rows=None) for r in rules.rules))

    def key(matches):
        return sorted((m.rule.title, m.event_ids, m.group) for m in matches)
    found = key(run(store, rules)[0])
    assert found == key(run(store, everywhere)[0])
    assert {"r0", "r1", "r2", "r3", "Password spraying - failed logons to many accounts from one address"} <= {
        title for title, _, _ in found}
    store.close()


_SCALARS = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text()


def _values(scalars):
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                        max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _values(_SCALARS), max_size=6),
       st.dictionaries(st.text(), _values(_SCALARS | st.floats(allow_nan=False, allow_infinity=False)), max_size=6))
def test_fields_json_by_orjson_equals_the_json_module(fields, with_floats):
    """The fields' JSON written by orjson is the json module's text (a float's notation may differ:
    ``1e-05`` against ``0.00001``) and reads back the same."""
    pytest.importorskip("orjson")
    assert _FIELDS_JSON(fields) == _JSON_FIELDS(fields)
    assert json.loads(_FIELDS_JSON(with_floats)) == json.loads(_JSON_FIELDS(with_floats))


@pytest.mark.parametrize("fields", [{"n": 2**70}, {1: "a", "b": 2}, {"when": object()}])
def test_fields_json_falls_back_where_orjson_refuses(fields):
    """What orjson refuses (an integer over 64 bits, a key that is not a string) is written by the
    json module; what neither knows is written as its ``str``."""
    assert _FIELDS_JSON(fields) == _JSON_FIELDS(fields)
    assert json.loads(_FIELDS_JSON(fields))
