"""``wiretrail extract`` (a flow's packets as pcap/pcapng, through the packet index) and
``wiretrail packets`` (a flow's packets dissected by tshark, or its reassembled TCP stream)."""

from __future__ import annotations

import os

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.cli.params import TimeType, check_host, identity_option
from analysis.output import output_options, render
from recorder.core.errors import WiretrailError


@click.command()
@db_option
@click.option("--uid", "uids", multiple=True, metavar="UID", help="A flow's uid (repeatable).")
@click.option("--community-id", "community_ids", multiple=True, metavar="ID", help="A flow's Community ID (repeatable).")
@click.option("--alert", type=int, metavar="FLOW_ID", help="The flow of the alerts with this flow_id (as `wiretrail alerts` shows it).")
@click.option("--incident", metavar="ID", help="Flows between the incident's hosts during it (`wiretrail incidents`).")
@click.option("--host", callback=check_host, metavar="IP|CIDR", help="Flows with either endpoint in this address or network.")
@click.option("--port", type=click.IntRange(0, 65535), help="Flows with this port on either side.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp", "unknown_transport"]))
@click.option("--since", type=TimeType(), help="Packets at or after TIME (RFC 3339, date, epoch s); without --uid "
              "and the like, of the flows still going then, however long before they started.")
@click.option("--until", type=TimeType(), help="Packets before TIME.")
@click.option("--bpf", metavar="EXPR", help="Keep only packets this BPF filter (tcpdump's syntax, libpcap's compiler) accepts.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file (written owner-only, atomically).")
@click.option("--pcapng", is_flag=True, help="Write pcapng, with a comment naming the flow uid on every packet.")
@identity_option
def extract(db, uids, community_ids, alert, incident, host, port, proto, since, until, bpf, out, pcapng,
            identities) -> None:
    """Write the packets of the chosen flows, in time order, as pcap (or pcapng), reading only the
    byte ranges the packet index names. Capture files deleted by retention are named (one line
    each); a file changed since it was indexed is refused. Encrypted files (*.pcap.age, the
    recorder's encrypt_to) need --identity; each is decrypted in memory as a stream up to the
    last packet wanted (nothing decrypted is written to disk but --out)."""
    from analysis.packets.extract import extract as extract_flows
    from analysis.packets.selection import Selection

    sel = Selection(tuple(uids), tuple(community_ids), alert, incident, host, port, proto, since, until)
    lean = alert is None and incident is None
    store = (_lean_store(db) if lean else None) or open_for_reading(db)  # a SQLite file: no SQLAlchemy
    res = extract_flows(store, sel, out, bpf=bpf, pcapng=pcapng, identities=identities,
                        on_missing=lambda line: click.echo(f"Warning: {line}", err=True))
    click.echo(f"{res.packets} packets of {res.flows} flow(s) written to {os.path.abspath(out)} "
               f"({res.bytes_read} bytes read from {res.files} file(s))", err=True)


def _lean_store(db: str):
    from analysis.packets.lite import open_lite

    return open_lite(db)


@click.command()
@db_option
@click.option("--uid", required=True, metavar="UID", help="The flow's uid.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N packets.")
@click.option("--follow", is_flag=True, help="The reassembled TCP payload of both sides instead (Follow Stream).")
@click.option("--hex", "as_hex", is_flag=True, help="With --follow: a hex dump instead of text.")
@output_options("details")
@identity_option
def packets(db, uid, limit, follow, as_hex, fmt, identities) -> None:
    """A flow's packets dissected by Wireshark's dissectors (tshark, through pyshark: optional,
    `apt-get install tshark`, `pip install pyshark`); --format details shows every field.
    With --follow, the TCP payload both ways as text (non-printable bytes as \\xNN) or --hex."""
    import tempfile

    from analysis.packets import dissect
    from analysis.packets.extract import read_packets, write_pcapng
    from analysis.packets.select import select_flows
    from analysis.packets.selection import Selection

    store = open_for_reading(db)
    [flow] = select_flows(store, Selection(uids=(uid,)))[:1]
    if not follow:
        dissect.require_tshark()  # before reading anything: one line saying how to install
    found = read_packets(store, [flow], on_missing=lambda line: click.echo(f"Warning: {line}", err=True),
                         identities=identities)
    if not found:
        raise WiretrailError(f"no packets of flow {uid} are in the indexed capture files")
    if follow:
        side = {True: f"{flow['orig_h']}:{flow['orig_p']} -> {flow['resp_h']}:{flow['resp_p']}",
                False: f"{flow['resp_h']}:{flow['resp_p']} -> {flow['orig_h']}:{flow['orig_p']}"}
        for ch in dissect.follow(found, flow):
            if ch.missing:
                click.echo(f"=== {side[ch.from_orig]}: {ch.missing} bytes not captured ===")
                continue
            click.echo(f"=== {side[ch.from_orig]}: {len(ch.data)} bytes ===")
            click.echo(dissect.hexdump(ch.data) if as_hex else dissect.as_text(ch.data))
        return
    with tempfile.TemporaryDirectory(prefix="wiretrail-packets-") as tmp:
        pcap = os.path.join(tmp, "flow.pcapng")
        write_pcapng(pcap, found)
        if fmt == "details":
            for text in dissect.details(pcap, limit):
                click.echo(text)
            return
        rows = dissect.summaries(pcap, limit)
    render(rows, fmt, ["no", "time", "source", "destination", "protocol", "length", "layers"])
