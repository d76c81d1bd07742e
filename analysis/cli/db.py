"""``wiretrail db``: create or upgrade the schema, and summarise a database."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from analysis.output import output_options, render, rfc3339

# recorder.core.store (SQLAlchemy) is imported inside the commands so `wiretrail --help` stays fast.
DEFAULT_DB = "./wiretrail.db"  # the same as recorder.core.store.DEFAULT_DB

DB_HELP = "Database: a SQLite file path or a URL (postgresql://user:pw@host/db). Env: WIRETRAIL_DB."


def db_option(fn: Callable) -> Callable:
    """``--db PATH|URL``, from WIRETRAIL_DB when not given, else ./wiretrail.db."""
    return click.option("--db", envvar="WIRETRAIL_DB", default=DEFAULT_DB, show_default=True,
                        metavar="PATH|URL", help=DB_HELP)(fn)


def open_listing(db: str):
    """What the listings (flows, alerts, the protocol logs) read from: a SQLite file through Python's
    own sqlite3, without importing SQLAlchemy (most of a listing's start-up), or a PostgreSQL
    store. Both run the same queries (``recorder.core.store.listing``); never creates a file."""
    if "://" not in db:
        from recorder.core.store.sqlite_reader import SqliteReader

        reader = SqliteReader(db)
        reader.require_schema()
        return reader
    return open_for_reading(db)


def open_for_reading(db: str):
    """A store that must already exist and hold the current schema (never creates a file)."""
    from recorder.core.store import Store

    store = Store(db, create=False)
    store.require_schema()
    return store


@click.group()
def db() -> None:
    """Manage the flow database."""


@db.command()
@db_option
def migrate(db: str) -> None:
    """Create the schema, or upgrade it to this version's revision."""
    from recorder.core.store import Store

    store = Store(db)
    before = store.revision()
    after = store.migrate()
    if before == after:
        click.echo(f"{store.display}: already at revision {after}", err=True)
    else:
        click.echo(f"{store.display}: migrated from {before or 'empty'} to revision {after}", err=True)


CAPTURE_COLUMNS = ["id", "path", "format", "packets", "malformed", "bytes", "skipped_bytes", "first_ts", "last_ts",
                   "ingested_at", "sensor", "interface", "kernel_drops", "iface_drops", "sealed_at",
                   "repaired", "deleted_at", "sha256", "skipped_ranges"]
CAPTURE_TYPES = ["count", "string", "string", "count", "count", "count", "count", "time", "time", "time",
                 "string", "string", "count", "count", "time", "bool", "time", "string", "string"]


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / 1_000_000_000


@db.command()
@db_option
@output_options(formats=("table", "json"))
def info(db: str, fmt: str) -> None:
    """Summarise a database: schema revision, file mode (a warning when others can read a database
    holding credentials), captures, flows and their time span, drops, protocol records, parser
    failures per protocol, and the byte ranges skipped in damaged captures."""
    from recorder.core.store import Store

    store = Store(db, create=False)
    summary = store.info()
    mode, readers = _file_access(store)
    summary["file_mode"] = mode
    summary["readable_by"] = readers
    credentials = (summary.get("app_records") or {}).get("credentials", 0)
    if readers and credentials:
        click.echo(f"warning: {summary['database']} holds {credentials} credential(s) (passwords seen in the "
                   f"traffic) and {readers} can read it (mode {mode}); chmod 600 it", err=True)
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    pairs = {
        "database": summary["database"], "revision": summary["revision"] or "(no schema)",
        "file_mode": "-" if mode is None else f"{mode} ({'readable by ' + readers if readers else 'owner only'})",
        "captures": summary["capture_count"], "flows": summary["flow_count"],
        "first_flow": rfc3339(_seconds(summary["first_ts_ns"])) or "-",
        "last_flow": rfc3339(_seconds(summary["last_ts_ns"])) or "-",
        "packets": summary["packets"], "malformed": summary["malformed"],
        "kernel_drops": sum(c.get("kernel_drops") or 0 for c in summary["captures"]),
        "interface_drops": sum(c.get("iface_drops") or 0 for c in summary["captures"]),
    }
    records = summary.get("app_records") or {}
    pairs["protocol_records"] = ", ".join(f"{k} {v}" for k, v in records.items() if v) or "0"
    failures: dict[str, int] = {}
    for f in summary.get("parser_failures") or []:
        failures[f["service"]] = failures.get(f["service"], 0) + int(f["count"])
    pairs["parser_failures"] = ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "0"
    render(({"field": k, "value": v} for k, v in pairs.items()), "table", ["field", "value"])
    if summary["revision"] != summary["head"]:
        click.echo(f"schema revision {summary['revision']}, this version needs {summary['head']}; "
                   "run wiretrail db migrate", err=True)
    if summary["captures"]:
        render(capture_rows(summary["captures"]), "table", CAPTURE_COLUMNS, zeek_types=CAPTURE_TYPES,
               title="captures")
    damaged = [c for c in summary["captures"] if c.get("skipped_ranges")]
    if damaged:  # read past damage: which byte ranges were skipped (start-end, end exclusive)
        render(({"id": c["id"], "path": c["path"], "skipped_bytes": c["skipped_bytes"],
                 "skipped_ranges": c["skipped_ranges"]} for c in damaged), "table",
               ["id", "path", "skipped_bytes", "skipped_ranges"], title="damaged captures")


def _file_access(store) -> tuple[str | None, str | None]:
    """A SQLite store's permission bits and who besides its owner can read it (None, None for a
    server database)."""
    from recorder.core.secure_files import describe_mode

    path = store.engine.url.database if store.is_sqlite else None
    if not path or path == ":memory:":
        return None, None
    try:
        return describe_mode(path)
    except OSError:
        return None, None


def capture_rows(caps: list[dict]):
    """Capture rows with their nanosecond times as seconds, for the shared renderer."""
    return ({**c, "first_ts": _seconds(c["first_ts_ns"]), "last_ts": _seconds(c["last_ts_ns"]),
             "ingested_at": _seconds(c["ingested_at"]), "sealed_at": _seconds(c.get("sealed_at")),
             "deleted_at": _seconds(c.get("deleted_at"))} for c in caps)
