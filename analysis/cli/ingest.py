"""``wiretrail ingest``: read captures into the flow store."""

from __future__ import annotations

import os
import sys

import click

from analysis.cli.params import check_cidr, identity_option


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option("--db", default=lambda: os.environ.get("WIRETRAIL_DB", "wiretrail.db"), show_default="wiretrail.db",
              help="Database path (SQLite) or SQLAlchemy URL (postgresql://...). Env: WIRETRAIL_DB.")
@click.option("--local-net", "local_nets", multiple=True, callback=check_cidr, metavar="CIDR",
              help="A local network for local_orig/local_resp (repeatable); private ranges are always local.")
@click.option("--extract-files", "extract_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Write every transferred file (HTTP bodies, mail attachments, FTP data) under DIR, owner-only (0600).")
@click.option("--no-parsers", is_flag=True, help="Flows only: skip protocol parsing (dns, http, tls, ...).")
@identity_option
def ingest(captures: tuple[str, ...], db: str, local_nets: list[str], extract_dir: str | None,
           no_parsers: bool, identities) -> None:
    """Read CAPTURES (pcap, pcapng, gzip; files, directories or globs) into the flow store.

    Files are read in time order as one stream, so a connection spanning rotated files is one
    flow. A file already in the store (same SHA-256) is skipped. Encrypted files (*.pcap.age,
    the recorder's encrypt_to) need --identity: each is decrypted into an owner-only temporary
    file for the ingest's duration; the store names the encrypted file.
    """
    from recorder.core.pipeline.ingest import ingest as run_ingest
    from recorder.core.store import Store

    store = Store(db)
    store.ensure_schema()
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        stats = run_ingest(list(captures), store, local_nets=local_nets,
                           progress=progress.advance if progress else None,
                           on_warning=lambda w: click.echo(f"warning: {w}", err=True),
                           parsers=not no_parsers, extract_dir=extract_dir, identities=identities)
    finally:
        if progress:
            progress.close()
    for f in stats.files:
        if f.skipped_reason:
            click.echo(f"skipped {f.path}: {f.skipped_reason}", err=True)
    click.echo(
        f"{stats.packets:,} packets, {stats.flows:,} flows, {stats.malformed:,} malformed, "
        f"{len([f for f in stats.files if not f.skipped_reason])} file(s) in {stats.seconds:.2f} s "
        f"({stats.packets_per_second:,.0f} packets/s)", err=True)
    if stats.app_records or stats.parser_failures:
        click.echo(f"{stats.app_records:,} protocol records, {stats.parser_failures:,} parser failures", err=True)


class _Progress:
    """A rich progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("ingest"), BarColumn(), TextColumn("{task.completed:,} packets"),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.task = self.p.add_task("ingest", total=None)
        self.p.start()

    def advance(self, packets: int, nbytes: int) -> None:
        self.p.advance(self.task, packets)

    def close(self) -> None:
        self.p.stop()
