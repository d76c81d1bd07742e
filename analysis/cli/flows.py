"""``wiretrail flows``: query the flow store; Zeek conn.log records in any output format."""

from __future__ import annotations

import calendar
import ipaddress
import re
from decimal import Decimal, InvalidOperation

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.output import CONN, TABLE_MAX_ROWS, flow_to_zeek, output_options, render

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}:?\d{2})?)?"
)
_EPOCH = re.compile(r"\d+(?:\.\d{1,9})?")


def parse_time(text: str) -> int:
    """RFC 3339 (``Z`` or an offset; none means UTC), a date (midnight UTC) or epoch seconds -> ns."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            raise ValueError(text) from None
    m = _RFC3339.fullmatch(text)
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, tz = m.groups()
    fields = [int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0)]
    if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= calendar.monthrange(fields[0], fields[1])[1]
            and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        raise ValueError(text)
    secs = calendar.timegm((*fields, 0, 0, 0))
    if tz and tz not in "Zz":
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        secs -= sign * (hh * 3600 + mm * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


class TimeType(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_time(value)
        except ValueError:
            self.fail(f"{value!r} is not a time: use RFC 3339 (2024-05-01T12:00:00Z), a date "
                      "(2024-05-01) or epoch seconds", param, ctx)


def _check_host(ctx, param, value):
    if value is not None:
        try:
            ipaddress.ip_network(value.strip(), strict=False)  # as recorder.core.store.host_range
        except ValueError:
            raise click.BadParameter(f"{value!r} is not an IP address or CIDR") from None
    return value


def _states(ctx, param, values):
    states = [s.strip().upper() for v in values for s in v.split(",") if s.strip()]
    bad = [s for s in states if s not in CONN_STATES]
    if bad:
        raise click.BadParameter(f"unknown conn_state {', '.join(bad)} (one of {', '.join(CONN_STATES)})")
    return states or None


@click.command()
@db_option
@click.option("--host", callback=_check_host, metavar="IP|CIDR",
              help="Either endpoint in this address or network.")
@click.option("--port", type=click.IntRange(0, 65535), help="Either endpoint's port (ICMP: type/code).")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp", "unknown_transport"]))
@click.option("--since", type=TimeType(), help="Flows starting at or after TIME (RFC 3339, date, epoch s).")
@click.option("--until", type=TimeType(), help="Flows starting before TIME.")
@click.option("--state", "states", multiple=True, callback=_states, metavar="S[,S...]",
              help="conn_state (repeatable or comma-separated), e.g. S0,REJ.")
@click.option("--uid", help="One connection's uid.")
@click.option("--limit", type=click.IntRange(min=0),
              help=f"At most N flows (a table shows {TABLE_MAX_ROWS} unless given).")
@click.option("--open", "open_only", is_flag=True,
              help="Connections still open at the recorder's last rotation (interim records: counts so far) "
                   "instead of finished flows.")
@output_options("zeek")
def flows(db, host, port, proto, since, until, states, uid, limit, open_only, fmt) -> None:
    """List flows as Zeek conn.log records, oldest first. capture_drops is true when the recorder
    lost packets while the flow was active (its counts may be short)."""
    store = open_for_reading(db)
    capped = fmt == "table" and limit is None
    rows = store.query_flows(host=host, port=port, proto=proto, since=since, until=until, states=states,
                             uid=uid, limit=TABLE_MAX_ROWS + 1 if capped else limit, open_only=open_only)
    columns = CONN.columns_for(fmt)
    render(map(flow_to_zeek, rows), fmt, columns, zeek_path=CONN.path, zeek_types=CONN.types_for(columns),
           table_max_rows=TABLE_MAX_ROWS if capped else None,
           more_note=f"showing the first {TABLE_MAX_ROWS} flows; use --limit N, or --format jsonl|csv|zeek "
                     "for all of them")
