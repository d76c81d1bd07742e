"""``wiretrail logs``: log files into the store (``ingest``), Sigma rules over them (``detect``,
``rules``), and the stored events listed (``wiretrail logs``)."""

from __future__ import annotations

import json
import os
import sys

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.cli.flows import TimeType
from analysis.output import TABLE_MAX_ROWS, output_options, render

# the rules shipped with Wiretrail, used when --rules is not given
DEFAULT_RULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "rules", "sigma")

COLUMNS = {
    "ts": "time", "host": "string", "kind": "string", "src_ip": "addr", "src_port": "port", "account": "string",
    "action": "string", "outcome": "string", "raw": "string", "fields": "string", "file": "string",
    "line": "count", "uid": "string", "id": "count",
}
TABLE_COLUMNS = ("ts", "host", "kind", "src_ip", "account", "action", "outcome")
ALERT_COLUMNS = {"ts": "time", "severity": "count", "signature": "string", "host": "string", "account": "string",
                 "src_ip": "addr", "sigma_id": "string", "level": "string", "file": "string", "line": "count"}


def _zone(ctx, param, value):
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not a time zone (such as UTC or Europe/Paris)") from None


def _log_format(ctx, param, value):
    if value is None:
        return None
    from analysis.logs.web import LogFormatError, compile_format

    try:
        compile_format(value)
    except (LogFormatError, ValueError) as err:
        raise click.BadParameter(str(err)) from None
    return value


def _event_row(row: dict) -> dict:
    out = {c: row.get(c) for c in COLUMNS}
    out["ts"] = row["ts_ns"] / 1e9 if row.get("ts_ns") is not None else None
    out["file"] = row.get("path")
    return out


@click.group(invoke_without_command=True)
@db_option
@click.option("--host", metavar="NAME|IP|CIDR", help="Events of this host name, or from this source address.")
@click.option("--account", metavar="NAME", help="Events of this account (case-insensitive).")
@click.option("--since", type=TimeType(), help="Events at or after TIME (RFC 3339, date, epoch s).")
@click.option("--until", type=TimeType(), help="Events before TIME.")
@click.option("--kind", metavar="KIND", help="Only this kind (sshd, sudo, su, web, windows, raw, ...).")
@click.option("--limit", type=click.IntRange(min=0),
              help=f"At most N events (a table shows {TABLE_MAX_ROWS} unless given).")
@output_options()
@click.pass_context
def logs(ctx, db, host, account, since, until, kind, limit, fmt) -> None:
    """List stored log events (oldest first), or read logs and run Sigma rules (subcommands)."""
    if ctx.invoked_subcommand is not None:
        return
    from analysis.logs.store import query_events

    store = open_for_reading(db)
    capped = fmt == "table" and limit is None
    rows = query_events(store, host=host, account=account, since=since, until=until, kind=kind,
                        limit=TABLE_MAX_ROWS + 1 if capped else limit)
    columns = list(TABLE_COLUMNS) if fmt == "table" else list(COLUMNS)
    render(map(_event_row, rows), fmt, columns, zeek_types=[COLUMNS[c] for c in columns],
           table_max_rows=TABLE_MAX_ROWS if capped else None,
           more_note=f"(first {TABLE_MAX_ROWS} events; use --limit or --format json for all)")


@logs.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@db_option
@click.option("--host-name", metavar="NAME", help="The host the logs came from (when the lines do not say).")
@click.option("--tz", callback=_zone, metavar="ZONE",
              help="Time zone of timestamps written without one (syslog); default UTC.")
@click.option("--log-format", callback=_log_format, metavar="FORMAT",
              help="Apache LogFormat of web access logs (default: combined, then common).")
def ingest(files, db, host_name, tz, log_format) -> None:
    """Read log FILES into the store, each by its content (plain or gzip): syslog auth logs
    (RFC 3164/5424), journalctl -o json, Apache/nginx access logs, Windows .evtx.

    Lines that do not parse are kept raw and counted as skipped; a file already read into this
    store (same SHA-256) is skipped; exit 1 only when nothing at all could be read."""
    from analysis.logs.ingest import Options, ingest_file
    from recorder.core.store import Store

    store = Store(db)
    store.ensure_schema()
    options = Options(host=host_name, tz=tz, log_format=log_format)
    total = duplicates = 0
    kinds: dict[str, list[int]] = {}
    lines: list[str] = []  # said once every file is read: when none could be, only the error line
    why: list[str] = []
    for path in files:
        s = ingest_file(store, path, options)
        total += s.events
        duplicates += s.duplicate
        if s.duplicate:
            lines.append(f"{path}: skipped, {s.problem}")
            continue
        note = f" ({s.problem})" if s.problem else ""
        lines.append(f"{path}: {s.kind}, {s.events:,} events read, {s.skipped:,} skipped{note}")
        why.append(f"{path}: {s.kind}, {s.skipped:,} skipped{note}")
        counts = kinds.setdefault(s.kind, [0, 0])
        counts[0] += s.events
        counts[1] += s.skipped
    if not total and not duplicates:
        raise click.ClickException(f"nothing could be read from {len(files)} file(s): " + "; ".join(why))
    for line in lines:
        click.echo(line, err=True)
    if len(files) > 1:
        click.echo("total: " + "; ".join(f"{k} {r:,} read, {sk:,} skipped" for k, (r, sk) in sorted(kinds.items())),
                   err=True)
    from analysis.logs.link import link_flows

    linked = link_flows(store)
    if linked:
        click.echo(f"{linked:,} events linked to the flows that carried them", err=True)


def _load(rules: tuple[str, ...]):
    from analysis.logs.sigma import load_rules

    paths = list(rules) or [DEFAULT_RULES]
    for p in paths:
        if not os.path.exists(p):
            raise click.BadParameter(f"{p}: no such file or folder", param_hint="--rules")
    ruleset = load_rules(paths)
    for path, reason in ruleset.rejected:
        click.echo(f"{path}: {reason}", err=True)
    click.echo(f"{len(ruleset.rules)} rules loaded, {len(ruleset.rejected)} rejected", err=True)
    return ruleset


@logs.command("rules")
@click.argument("paths", nargs=-1, type=click.Path())
def rules_check(paths) -> None:
    """Load Sigma rules (files or folders; default: Wiretrail's own) and report each rule that
    does not convert as `path: reason`, then `N rules loaded, M rejected`."""
    _load(paths)


@logs.command("detect")
@db_option
@click.option("--rules", "rules", multiple=True, metavar="PATH",
              help="Sigma rule file or folder (repeatable); default: Wiretrail's rules/sigma.")
@click.option("--no-store", is_flag=True, help="Print the alerts without storing them in the alerts table.")
@click.option("--expect", "expect_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="A YAML file of expected alerts, as for replay (a Sigma rule's sid is its EVE "
                   "alert.signature_id); exit 3 with the differences when the alerts differ.")
@output_options("eve")
def detect(db, rules, no_store, expect_path, fmt) -> None:
    """Run Sigma rules over the stored log events; alerts go into the alerts table (kind `log`)
    and are printed. Exit 0 with or without alerts (3 when --expect does not hold)."""
    from analysis.logs.detect import detect as run_detect

    expectations = None
    if expect_path:  # every problem of a bad file, through the one error mapping (as replay's)
        from analysis.expect import load_expectations

        expectations = load_expectations(expect_path)
    ruleset = _load(rules)
    found = run_detect(open_for_reading(db), ruleset, joined=not rules, keep=not no_store)
    for path, reason in found.failed:
        click.echo(f"{path}: {reason}", err=True)
    click.echo(f"{found.events:,} events, {len(found.alerts):,} alerts from {found.rules_fired} rule(s)", err=True)
    eves = [eve for _a, eve in found.alerts]
    _print_alerts(found.alerts, fmt)
    if expectations is not None:
        from analysis.expect import compare

        diff = compare(expectations, eves)
        for line in diff:
            click.echo(line, err=True)
        if diff:
            raise SystemExit(3)
        click.echo(f"{expect_path}: {len(expectations.alerts)} expectation(s) hold", err=True)


def _print_alerts(found, fmt) -> None:
    if fmt == "eve":
        for _a, eve in found:
            sys.stdout.write(json.dumps(eve, ensure_ascii=False) + "\n")
        return
    rows = [{"ts": a.ts_ns / 1e9, "severity": a.severity, "signature": a.signature, "host": eve.get("host"),
             "account": eve.get("account"), "src_ip": a.src_ip or None,
             "sigma_id": dict(a.metadata).get("sigma_id"), "level": dict(a.metadata).get("sigma_level"),
             "file": eve["log"].get("file"), "line": eve["log"].get("line")}
            for a, eve in found]
    if fmt in ("json", "jsonl"):
        for row, (_a, eve) in zip(rows, found):
            row["eve"] = eve
    columns = list(ALERT_COLUMNS) + (["eve"] if fmt in ("json", "jsonl") else [])
    render(rows, fmt, columns, zeek_types=[ALERT_COLUMNS.get(c, "string") for c in columns])
