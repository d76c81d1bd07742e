"""`wiretrail flows` and `wiretrail db` through CliRunner: exit codes, stderr, every format."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.output import CONN, flow_to_zeek, render, zeek_value
from recorder.core.store import SCHEMA_HEAD, Store, addr16

T0 = 1_258_531_221_486_539_000  # 2009-11-18T08:00:21.486539Z

ZEEK_FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
    "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history",
    "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto", "community_id",
    "capture_drops",
]
ZEEK_TYPES = [
    "time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count",
    "string", "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]", "count",
    "string", "bool",
]


def flow(n, orig, resp, **kw):
    row = {
        "uid": f"CFlow{n:013d}", "capture_id": None, "file_offset": 24, "ts_ns": T0 + n * 1_000_000_000,
        "duration_ns": 219_721_000, "orig_h": orig, "orig_p": 49186 + n, "resp_h": resp, "resp_p": 21,
        "orig_a": addr16(orig), "resp_a": addr16(resp), "proto": "tcp", "ip_proto": 6, "service": "ftp",
        "orig_bytes": 0, "resp_bytes": 342, "conn_state": "SF", "local_orig": False, "local_resp": True,
        "missed_bytes": 0, "history": "ShAdfFa", "orig_pkts": 5, "orig_ip_bytes": 372, "resp_pkts": 4,
        "resp_ip_bytes": 642, "tunnel_parents": None, "community_id": "1:+2pjk5xbVNh0Ng1gXOrfrErwg1k=",
    }
    row.update(kw)
    return row


ROWS = [
    flow(0, "2001:470:1f11:81f:c999:d94:aa7c:2e3e", "2001:470:4867:99::21"),
    flow(1, "10.0.0.5", "10.0.0.9", proto="udp", ip_proto=17, service=None, duration_ns=None, orig_bytes=None,
         resp_bytes=None, conn_state="S0", local_orig=None, local_resp=None, history="D", resp_p=53,
         tunnel_parents="CAaaaaaaaaaaaaaaaa,CBbbbbbbbbbbbbbbbb"),
    flow(2, "192.168.7.7", "10.0.0.5", service="", history="-", conn_state="REJ", tunnel_parents=""),
]


@pytest.fixture
def db(db_url):
    store = Store(db_url)
    store.migrate()
    store.insert_flows(ROWS)
    store.close()
    return db_url


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def data_lines(text):
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


# --- formats ------------------------------------------------------------------------------

def test_zeek_format_exact(db):
    r = run("flows", "--db", db, "--format", "zeek")
    assert r.exit_code == 0, r.output
    lines = r.stdout.split("\n")
    assert lines[:5] == ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
                         "#path\tconn"]
    assert re.fullmatch(r"#open\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[5])
    assert lines[6] == "\t".join(["#fields", *ZEEK_FIELDS])
    assert lines[7] == "\t".join(["#types", *ZEEK_TYPES])
    assert lines[8] == (
        "1258531221.486539\tCFlow0000000000000\t2001:470:1f11:81f:c999:d94:aa7c:2e3e\t49186\t"
        "2001:470:4867:99::21\t21\ttcp\tftp\t0.219721\t0\t342\tSF\tF\tT\t0\tShAdfFa\t5\t372\t4\t642\t"
        "-\t6\t1:+2pjk5xbVNh0Ng1gXOrfrErwg1k=\tF")
    assert lines[9].split("\t")[6:22] == [
        "udp", "-", "-", "-", "-", "S0", "-", "-", "0", "D", "5", "372", "4", "642",
        "CAaaaaaaaaaaaaaaaa,CBbbbbbbbbbbbbbbbb", "17"]
    # empty string -> (empty); a value that reads as unset is escaped; empty set -> (empty)
    third = lines[10].split("\t")
    assert (third[7], third[15], third[20]) == ("(empty)", "\\x2d", "(empty)")
    assert re.fullmatch(r"#close\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[11])
    assert lines[12:] == [""]


def test_zeek_matches_reference_layout(db):
    """Our #fields/#types are Zeek's conn.log lines plus community_id and capture_drops at the end."""
    r = run("flows", "--db", db, "--format", "zeek")
    ours = {ln.split("\t")[0]: ln for ln in r.stdout.splitlines() if ln.startswith("#")}
    zeek_fields = "\t".join(["#fields", *ZEEK_FIELDS[:-2]])
    zeek_types = "\t".join(["#types", *ZEEK_TYPES[:-2]])
    assert ours["#fields"] == zeek_fields + "\tcommunity_id\tcapture_drops"
    assert ours["#types"] == zeek_types + "\tstring\tbool"


def test_jsonl_like_zeek_json(db):
    r = run("flows", "--db", db, "--format", "jsonl")
    assert r.exit_code == 0, r.output
    objs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(objs) == 3
    first = objs[0]
    assert list(first) == [f for f in ZEEK_FIELDS if f != "tunnel_parents"]  # unset fields are omitted
    assert first["ts"] == 1258531221.486539 and first["duration"] == 0.219721
    assert first["id.orig_p"] == 49186 and first["local_orig"] is False
    second = objs[1]
    assert "service" not in second and "duration" not in second and "local_orig" not in second
    assert second["tunnel_parents"] == ["CAaaaaaaaaaaaaaaaa", "CBbbbbbbbbbbbbbbbb"]
    assert objs[2]["service"] == "" and objs[2]["tunnel_parents"] == []


def test_json_is_one_array(db):
    r = run("flows", "--db", db, "--format", "json")
    assert r.exit_code == 0, r.output
    arr = json.loads(r.stdout)
    assert [o["uid"] for o in arr] == [row["uid"] for row in ROWS]
    empty = run("flows", "--db", db, "--format", "json", "--port", "1")
    assert json.loads(empty.stdout) == []


def test_csv(db):
    r = run("flows", "--db", db, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ZEEK_FIELDS
    assert rows[0]["ts"] == "2009-11-18T08:00:21.486539Z"
    assert rows[0]["duration"] == "0.219721" and rows[0]["local_resp"] == "true"
    assert rows[1]["duration"] == "" and rows[1]["tunnel_parents"] == "CAaaaaaaaaaaaaaaaa,CBbbbbbbbbbbbbbbbb"


def test_table(db):
    r = run("flows", "--db", db)
    assert r.exit_code == 0, r.output
    assert "2009-11-18T08:00:21.486539Z" in r.stdout and "id.orig_h" in r.stdout
    assert "2001:470:1f11:81f:c999:d94:aa7c:2e3e" in r.stdout  # not truncated off a terminal
    assert r.stderr == ""


def test_table_caps_rows_with_note(tmp_path):
    db = str(tmp_path / "many.db")
    store = Store(db)
    store.migrate()
    store.insert_flows([flow(i, "10.0.0.1", "10.0.0.2") for i in range(1005)])
    store.close()
    r = run("flows", "--db", db)
    assert r.exit_code == 0
    assert "showing the first 1000 flows" in r.stderr and "--limit" in r.stderr
    assert "CFlow0000000000999" in r.stdout and "CFlow0000000001000" not in r.stdout
    r = run("flows", "--db", db, "--limit", "1005")
    assert r.stderr == "" and "CFlow0000000001004" in r.stdout
    r = run("flows", "--db", db, "--format", "jsonl")
    assert len(r.stdout.splitlines()) == 1005 and r.stderr == ""


# --- filters ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--host", "10.0.0.0/24"], [1, 2]),
    (["--host", "2001:470::/32"], [0]),
    (["--host", "192.168.7.7"], [2]),
    (["--port", "53"], [1]),
    (["--proto", "udp"], [1]),
    (["--state", "S0,REJ"], [1, 2]),
    (["--state", "sf", "--state", "REJ"], [0, 2]),
    (["--since", "2009-11-18T08:00:22Z"], [1, 2]),
    (["--since", "2009-11-18T09:00:22+01:00"], [1, 2]),
    (["--until", "1258531222.486539"], [0]),
    (["--since", "2009-11-18", "--until", "2009-11-19"], [0, 1, 2]),
    (["--uid", "CFlow0000000000002"], [2]),
    (["--limit", "2"], [0, 1]),
])
def test_filters(db, args, expected):
    r = run("flows", "--db", db, "--format", "jsonl", *args)
    assert r.exit_code == 0, r.output
    assert [json.loads(ln)["uid"] for ln in r.stdout.splitlines()] == [ROWS[i]["uid"] for i in expected]


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, option", [
    (["--since", "yesterday"], "--since"),
    (["--until", "2024-13-01"], "--until"),
    (["--host", "10.0.0.300"], "--host"),
    (["--port", "70000"], "--port"),
    (["--state", "XX"], "--state"),
    (["--format", "xml"], "--format"),
])
def test_bad_values_exit_2(tmp_path, args, option):
    r = run("flows", "--db", str(tmp_path / "none.db"), *args)
    assert r.exit_code == 2
    assert option in r.stderr


def test_missing_db_is_not_created(tmp_path):
    path = tmp_path / "nothing.db"
    r = run("flows", "--db", str(path))
    assert r.exit_code == 1
    assert r.stderr == f"Error: no database at {path}; run wiretrail ingest first\n"
    assert not path.exists()


def test_default_db_is_the_stores():
    from analysis.cli import db
    from recorder.core import store

    assert db.DEFAULT_DB == store.DEFAULT_DB


def test_db_from_environment(db, tmp_path):
    r = run("flows", "--format", "jsonl", env={"WIRETRAIL_DB": db})
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3


def test_not_a_database_one_line(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00junk" * 1000)
    r = run("flows", "--db", str(path))
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "not a database" in r.stderr and str(path) in r.stderr


def test_unreachable_postgres_one_line():
    r = run("flows", "--db", "postgresql://u:secret@127.0.0.1:1/x")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: postgresql://u:***@127.0.0.1:1/x: ") and r.stderr.count("\n") == 1
    assert "secret" not in r.stderr


def test_empty_database_needs_schema(tmp_path):
    path = tmp_path / "empty.db"
    Store(str(path)).revision()  # creates the file, no tables
    r = run("flows", "--db", str(path))
    assert r.exit_code == 1 and "no Wiretrail tables" in r.stderr


# --- db -----------------------------------------------------------------------------------

def test_db_migrate_and_info(db_url):
    r = run("db", "migrate", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert f"migrated from empty to revision {SCHEMA_HEAD}" in r.stderr
    assert f"already at revision {SCHEMA_HEAD}" in run("db", "migrate", "--db", db_url).stderr
    r = run("db", "info", "--db", db_url, "--format", "json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["revision"] == SCHEMA_HEAD and info["flow_count"] == 0 and info["captures"] == []
    r = run("db", "info", "--db", db_url)
    assert r.exit_code == 0 and "revision" in r.stdout and SCHEMA_HEAD in r.stdout


def test_db_info_table(db):
    store = Store(db)
    store.add_capture(path="/cases/ftp.pcap", sha256="f" * 64, format="pcap", packets=9, first_ts_ns=T0)
    store.close()
    r = run("db", "info", "--db", db)
    assert r.exit_code == 0, r.output
    assert "/cases/ftp.pcap" in r.stdout and "2009-11-18T08:00:21.486539Z" in r.stdout
    assert run("db", "info", "--db", db, "--format", "csv").exit_code == 2


def test_db_info_missing(tmp_path):
    r = run("db", "info", "--db", str(tmp_path / "x.db"))
    assert r.exit_code == 1 and "no database at" in r.stderr


# --- the renderer on its own --------------------------------------------------------------

def test_zeek_escaping():
    assert zeek_value("a\tb\\c\x01", "string") == "a\\x09b\\\\c\\x01"
    assert zeek_value("(empty)", "string") == "\\x28empty)"
    assert zeek_value(["a,b", "-", ""], "set[string]") == "a\\x2cb,\\x2d,(empty)"
    assert zeek_value(0.5, "interval") == "0.500000" and zeek_value(True, "bool") == "T"
    assert zeek_value(None, "count") == "-"


def test_render_generic_spec():
    out = io.StringIO()
    n = render([{"a": 1, "t": 0.0}], "zeek", ["a", "t"], zeek_path="x", zeek_types=["count", "time"], out=out)
    assert n == 1 and "#path\tx\n" in out.getvalue() and "\n1\t0.000000\n" in out.getvalue()
    assert flow_to_zeek(ROWS[0])["ts"] == 1258531221.486539
    assert CONN.columns == ZEEK_FIELDS and CONN.types == ZEEK_TYPES
