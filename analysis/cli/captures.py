"""``wiretrail captures`` and ``wiretrail verify``: the capture files in the store, and the
chain of custody of the files the recorder sealed."""

from __future__ import annotations

import click

from analysis.cli.db import CAPTURE_COLUMNS, CAPTURE_TYPES, capture_rows, db_option, open_for_reading
from analysis.output import output_options, render
from recorder.core.evidence import EvidenceError
from recorder.core.evidence import verify as verify_chain


@click.command()
@db_option
@output_options()
def captures(db: str, fmt: str) -> None:
    """List the capture files in the store: time span, packets, malformed packets, kernel and
    interface drops while the recorder wrote them, when they were sealed (or deleted by
    retention), SHA-256."""
    store = open_for_reading(db)
    render(capture_rows(store.captures()), fmt, CAPTURE_COLUMNS, zeek_types=CAPTURE_TYPES)


@click.command()
@db_option
@click.option("--no-files", is_flag=True, help="Check the hash chain in the database only; do not re-read the files.")
def verify(db: str, no_files: bool) -> None:
    """Verify the evidence: every file the recorder sealed still has the SHA-256 it was sealed
    with, and every record is linked to the one before it (hash chain per sensor and interface),
    so an altered, deleted or replaced file or record shows. Files that retention deleted are
    recorded as such and not looked for. Exit 1 with one line per problem."""
    store = open_for_reading(db)
    report = verify_chain(store.captures(), check_files=not no_files)
    for problem in report.problems:
        click.echo(problem, err=True)
    summary = (f"{report.links_checked} sealed file record(s) in the chain, {report.files_checked} file(s) "
               f"re-hashed, {report.files_deleted} deleted by retention")
    if not report.ok:
        raise EvidenceError(f"NOT verified: {len(report.problems)} problem(s); {summary}")
    click.echo(f"verified: {summary}")
