"""``wiretrail alerts``: the alerts ``wiretrail replay`` stored, filtered; any output format, or
Suricata EVE JSON lines (``--format eve``) exactly as they were written."""

from __future__ import annotations

import json
import sys
import time

import click

from analysis.alerts import RepeatFold, eve_timestamp
from analysis.cli.db import db_option, open_listing
from analysis.cli.params import TimeType, check_host
from analysis.output import TABLE_MAX_ROWS, output_options, render

# column -> Zeek type (drives how each format shows it)
COLUMNS = {
    "ts": "time", "sid": "count", "severity": "count", "kind": "string", "signature": "string",
    "src_ip": "addr", "src_port": "port", "dest_ip": "addr", "dest_port": "port", "proto": "string",
    "app_proto": "string", "uid": "string", "flow_id": "count", "community_id": "string", "gid": "count",
    "rev": "count", "category": "string", "action": "string", "tactic": "string", "technique": "string",
    "capture_id": "count",
}
TABLE_COLUMNS = ("ts", "sid", "severity", "kind", "signature", "src_ip", "src_port", "dest_ip", "dest_port",
                 "proto", "uid")


def _sids(ctx, param, values):
    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if not item.isdigit() or int(item) < 1:
                raise click.BadParameter(f"{item!r} is not a signature id (a whole number >= 1)")
            out.append(int(item))
    return out or None


def to_row(row: dict) -> dict:
    """A store alert row as a listing row (times as epoch seconds)."""
    out = {c: row.get(c) for c in COLUMNS}
    out["ts"] = row["ts_ns"] / 1_000_000_000
    out["sid"] = row["signature_id"]
    return out


@click.command()
@db_option
@click.option("--host", callback=check_host, metavar="IP|CIDR", help="Either endpoint in this address or network.")
@click.option("--port", type=click.IntRange(0, 65535), help="Either endpoint's port.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp"]))
@click.option("--since", type=TimeType(), help="Alerts at or after TIME (RFC 3339, date, epoch s).")
@click.option("--until", type=TimeType(), help="Alerts before TIME.")
@click.option("--uid", help="Alerts on one connection (its uid).")
@click.option("--sid", "sids", multiple=True, callback=_sids, metavar="SID[,SID...]",
              help="Signature id (repeatable or comma-separated).")
@click.option("--severity", type=click.IntRange(min=1), metavar="N",
              help="Severity N or higher (1 is the highest): --severity 2 shows 1 and 2.")
@click.option("--signature", metavar="TEXT", help="Signature text contains TEXT (case-insensitive).")
@click.option("--kind", type=click.Choice(["signature", "behaviour", "log"]),
              help="Only signature, behaviour or log (Sigma, from `wiretrail logs detect`) alerts.")
@click.option("--capture", "capture_id", type=click.IntRange(min=1), metavar="ID",
              help="Alerts from one capture (its id in `wiretrail captures`).")
@click.option("--limit", type=click.IntRange(min=0),
              help=f"At most N alerts (a table shows {TABLE_MAX_ROWS} unless given).")
@click.option("--follow", is_flag=True, help="Print alerts stored from now on as they arrive (the live "
              "recorder's), one line each (table, jsonl or eve), until interrupted.")
@click.option("--repeats", type=click.IntRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help="With --follow (table, jsonl): repeats of an alert (same rule, source and destination) "
                   "within SECONDS of its first line are one line with their count; 0 = every alert. "
                   "--format eve shows every alert.")
@output_options("eve")
def alerts(db, host, port, proto, since, until, uid, sids, severity, signature, kind, capture_id, limit,
           follow, repeats, fmt) -> None:
    """List stored alerts (from `wiretrail replay` or the live recorder), oldest first. --format eve
    writes them as Suricata EVE JSON lines; --follow waits for new ones."""
    store = open_listing(db)
    if follow:
        if fmt not in ("table", "jsonl", "eve"):
            raise click.UsageError("--follow writes one line per alert: --format table, jsonl or eve")
        _follow(store, fmt, dict(host=host, port=port, proto=proto, since=since, until=until, uid=uid, sids=sids,
                                 max_severity=severity, signature=signature, kind=kind, capture_id=capture_id),
                RepeatFold(0 if fmt == "eve" else repeats))
        return
    capped = fmt == "table" and limit is None
    rows = store.query_alerts(host=host, port=port, proto=proto, since=since, until=until, uid=uid, sids=sids,
                              max_severity=severity, signature=signature, kind=kind, capture_id=capture_id,
                              limit=TABLE_MAX_ROWS + 1 if capped else limit)
    if fmt == "eve":
        for row in rows:
            sys.stdout.write(row["eve"] + "\n")
        return
    columns = list(TABLE_COLUMNS) if fmt == "table" else list(COLUMNS)
    render(map(to_row, rows), fmt, columns, zeek_types=[COLUMNS[c] for c in columns],
           table_max_rows=TABLE_MAX_ROWS if capped else None,
           more_note=f"showing the first {TABLE_MAX_ROWS} alerts; use --limit N, or --format jsonl|csv|eve "
                     "for all of them")


def _line(entry: tuple[dict, int, dict], fmt: str) -> str:
    """One line of --follow: an alert, or (``count`` > 1, or a first repeat) repeats counted."""
    row, count, last = entry
    if fmt == "eve":
        return row["eve"]
    if fmt == "jsonl":
        return json.dumps({**to_row(row), "count": count, "last_ts": last["ts_ns"] / 1_000_000_000}, default=str)
    port = f":{row['dest_port']}" if row.get("dest_port") is not None else ""
    text = (f"{eve_timestamp(row['ts_ns'])[:19]}Z  sev {row['severity']}  {row['kind']:<9}  {row['signature_id']:>8}  "
            f"{row['src_ip']} -> {row['dest_ip']}{port}  {row['signature']}")
    return text if last is row else text + f"  (repeated {count} times until {eve_timestamp(last['ts_ns'])[11:19]}Z)"


def _follow(store, fmt: str, filters: dict, fold: RepeatFold, poll: float = 1.0) -> None:
    """Poll the store for alerts stored after the newest one at start; print each as it comes,
    repeats counted (``fold``). One line on stderr says from when it follows."""
    last = store.last_alert_id()
    click.echo(f"following alerts stored from now on ({last or 0} already stored); Ctrl-C to stop", err=True)
    try:
        while True:
            now = time.monotonic()
            out = fold.due(now)
            for row in store.query_alerts(after_id=last, **filters):
                entry = fold.add(row, now)
                if entry is not None:
                    out.append(entry)
                last = row["id"]
            for entry in out:
                sys.stdout.write(_line(entry, fmt) + "\n")
            sys.stdout.flush()
            time.sleep(poll)
    except KeyboardInterrupt:
        for entry in fold.due():
            sys.stdout.write(_line(entry, fmt) + "\n")
        sys.stdout.flush()
