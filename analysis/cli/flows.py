"""``wiretrail flows``: query the flow store; Zeek conn.log records in any output format."""

from __future__ import annotations

import click

from analysis.cli.db import db_option, open_listing
from analysis.cli.params import TimeType, check_host
from analysis.output import CONN, TABLE_MAX_ROWS, flow_to_zeek, output_options, render

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")

def _states(ctx, param, values):
    states = [s.strip().upper() for v in values for s in v.split(",") if s.strip()]
    bad = [s for s in states if s not in CONN_STATES]
    if bad:
        raise click.BadParameter(f"unknown conn_state {', '.join(bad)} (one of {', '.join(CONN_STATES)})")
    return states or None


@click.command()
@db_option
@click.option("--host", callback=check_host, metavar="IP|CIDR",
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
    store = open_listing(db)
    capped = fmt == "table" and limit is None
    rows = store.query_flows(host=host, port=port, proto=proto, since=since, until=until, states=states,
                             uid=uid, limit=TABLE_MAX_ROWS + 1 if capped else limit, open_only=open_only)
    columns = CONN.columns_for(fmt)
    render(map(flow_to_zeek, rows), fmt, columns, zeek_path=CONN.path, zeek_types=CONN.types_for(columns),
           table_max_rows=TABLE_MAX_ROWS if capped else None,
           more_note=f"showing the first {TABLE_MAX_ROWS} flows; use --limit N, or --format jsonl|csv|zeek "
                     "for all of them")
