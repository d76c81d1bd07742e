"""``wiretrail report``: the owner's report of what the store holds, as one self-contained HTML file
(or Markdown, the JSON facts, a STIX 2.1 bundle), and an ATT&CK Navigator layer.

Exit codes: 0 written; 1 nothing recorded (in the time range), the store unreadable, or --out
not writable (one line; no file half-written)."""

from __future__ import annotations

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.cli.params import TimeType, check_cidr

FORMATS = ("html", "md", "json", "stix")


def report_options(fn):
    """``--format``, ``--attack-layer``, ``--local-net`` and ``--company``, shared with ``replay --report``."""
    for option in reversed((
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="html: one self-contained file (default); md: the same as Markdown; json: the facts "
                          "(story and timeline); stix: a STIX 2.1 bundle. Default: from FILE's name "
                          "(.md, .json, .stix.json), else html."),
        click.option("--attack-layer", "attack_layer_path", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Also write an ATT&CK Navigator layer (JSON): the techniques seen, scored by how "
                          "many incidents show them."),
        click.option("--company", metavar="NAME", help="The company's name, for the draft customer notification."),
    )):
        fn = option(fn)
    return fn


@click.command()
@db_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the report here (through a temporary file and a rename: never half-written).")
@report_options
@click.option("--since", type=TimeType(), help="Only what happened at or after TIME (RFC 3339, date, epoch s).")
@click.option("--until", type=TimeType(), help="Only what happened before TIME.")
@click.option("--local-net", "local_nets", multiple=True, metavar="CIDR", callback=check_cidr,
              help="A local network (repeatable); private ranges are always local.")
def report(db: str, out: str, fmt: str | None, attack_layer_path: str | None, company: str | None,
           since: int | None, until: int | None, local_nets: tuple[str, ...]) -> None:
    """Write the owner's report: what happened, since when, whether it is still going on and what
    to do now; how they got in, a timeline, the hosts and the attackers' movement, each incident
    with its evidence, the accounts to reset (administrators first), the data at risk (masked), a
    draft customer notification, and an evidence appendix (captures and their SHA-256, the
    evidence-chain check, the commands that reproduce the report)."""
    from analysis.report.produce import write_from_store

    store = open_for_reading(db)
    written = write_from_store(store, out, fmt, attack_layer_path=attack_layer_path, since_ns=since,
                               until_ns=until, local_nets=local_nets, company=company)
    click.echo(f"report ({written}) written to {out}", err=True)
    if attack_layer_path:
        click.echo(f"ATT&CK Navigator layer written to {attack_layer_path}", err=True)
