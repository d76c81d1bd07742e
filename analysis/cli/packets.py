"""``wiretrail extract`` (a flow's packets as pcap/pcapng, through the packet index) and
``wiretrail packets`` (a flow's packets dissected by tshark, or its reassembled TCP stream)."""

from __future__ import annotations

import os

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.cli.params import TimeType, check_host
from analysis.packets.extract import ExtractResult, bpf_filter, read_packets, write_pcap, write_pcapng
from analysis.packets.select import Selection, select_flows
from recorder.core.errors import WiretrailError


@click.command()
@db_option
@click.option("--uid", "uids", multiple=True, metavar="UID", help="A flow's uid (repeatable).")
@click.option("--community-id", "community_ids", multiple=True, metavar="ID", help="A flow's Community ID (repeatable).")
@click.option("--alert", type=int, metavar="ID", help="The flow of this alert (`wiretrail alerts`' id).")
@click.option("--incident", metavar="ID", help="Flows between the incident's hosts during it (`wiretrail incidents`).")
@click.option("--host", callback=check_host, metavar="IP|CIDR", help="Flows with either endpoint in this address or network.")
@click.option("--port", type=click.IntRange(0, 65535), help="Flows with this port on either side.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp", "unknown_transport"]))
@click.option("--since", type=TimeType(), help="Packets at or after TIME (RFC 3339, date, epoch s).")
@click.option("--until", type=TimeType(), help="Packets before TIME.")
@click.option("--bpf", metavar="EXPR", help="Keep only packets this BPF filter (tcpdump's syntax, libpcap's compiler) accepts.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file (written owner-only, atomically).")
@click.option("--pcapng", is_flag=True, help="Write pcapng, with a comment naming the flow uid on every packet.")
def extract(db, uids, community_ids, alert, incident, host, port, proto, since, until, bpf, out, pcapng) -> None:
    """Write the packets of the chosen flows, in time order, as pcap (or pcapng), reading only the
    byte ranges the packet index names. Capture files deleted by retention are named (one line
    each); a file changed since it was indexed is refused."""
    if since is not None and until is not None and until <= since:
        raise WiretrailError("empty time range: --until is not after --since")
    store = open_for_reading(db)
    sel = Selection(tuple(uids), tuple(community_ids), alert, incident, host, port, proto, since, until)
    chosen = select_flows(store, sel)
    res = ExtractResult()
    packets = read_packets(store, chosen, since=since, until=until,
                           on_missing=lambda line: click.echo(f"Warning: {line}", err=True), result=res)
    if bpf:
        keep = {}
        for p in packets:
            if p.linktype not in keep:
                keep[p.linktype] = bpf_filter(bpf, p.linktype)
        packets = [p for p in packets if keep[p.linktype](p.data)]
    if not packets:
        raise WiretrailError(f"no packets of the {len(chosen)} flow(s) chosen are in the indexed capture files"
                             + (" (some files are gone)" if res.missing else ""))
    (write_pcapng if pcapng else write_pcap)(out, packets)
    click.echo(f"{len(packets)} packets of {len(chosen)} flow(s) written to {os.path.abspath(out)} "
               f"({res.bytes_read} bytes read from {res.files} file(s))", err=True)
