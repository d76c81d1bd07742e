"""``wiretrail captures`` and ``wiretrail verify``: the capture files in the store, and the
chain of custody of the files the recorder sealed."""

from __future__ import annotations

import click

from analysis.cli.db import CAPTURE_COLUMNS, CAPTURE_TYPES, capture_rows, db_option, open_for_reading
from analysis.cli.params import identity_option
from analysis.output import output_options, render
from recorder.core.evidence import EvidenceError, check_decrypts
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
@click.option("--export", "export_path", type=click.Path(dir_okay=False), metavar="MANIFEST.json",
              help="Also write a hand-over manifest: every sealed file's name, size, time span, packets, "
                   "SHA-256, chain hash and verification result now, and the tool version (owner-only file).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), metavar="MANIFEST.json",
              help="Check copies of the files in DIR against a manifest (no database needed).")
@click.argument("directory", required=False, type=click.Path(file_okay=False), metavar="[DIR]")
@identity_option
def verify(db: str, no_files: bool, export_path: str | None, manifest_path: str | None,
           directory: str | None, identities) -> None:
    """Verify the evidence: every file the recorder sealed still has the size and SHA-256 it was
    sealed with, every record is linked to the one before it (hash chain per sensor and
    interface), and no capture file beside them lacks a record, so an altered, truncated, deleted,
    added or replaced file or record shows. Files that retention deleted are recorded as such and
    not looked for. Exit 1 with one line per problem.

    Encrypted files (encrypt_to) are checked without a key: the chain covers their encrypted
    bytes. With --identity, each is also decrypted (in memory) and must authenticate to its end.

    With --manifest MANIFEST.json DIR, check a handed-over copy of the files in DIR against the
    manifest instead, on any machine, without the database."""
    if manifest_path:
        if directory is None:
            raise click.UsageError("--manifest needs the DIR holding the copied files")
        _check_manifest(manifest_path, directory)
        return
    if directory is not None:
        raise click.UsageError("DIR is only for --manifest")
    store = open_for_reading(db)
    rows = store.captures()
    report = verify_chain(rows, check_files=not no_files)
    decrypted = check_decrypts(rows, identities, report) if identities and not no_files else None
    if export_path:
        from recorder.core.manifest import export

        click.echo(export(export_path, rows, report, database=store.display).summary(export_path), err=True)
    summary = (f"{report.links_checked} sealed file record(s) in the chain, {report.files_checked} file(s) "
               f"re-hashed, {report.files_deleted} deleted by retention"
               + (f", {decrypted} encrypted file(s) decrypted" if decrypted is not None else ""))
    _finish(report, summary)


def _check_manifest(path: str, directory: str) -> None:
    from recorder.core.manifest import check, load

    manifest = load(path)
    report = check(manifest, directory)
    summary = (f"{len(manifest['files'])} file(s) in the manifest ({manifest.get('tool')}, exported "
               f"{manifest.get('exported_at')}), {report.files_checked} re-hashed in {directory}, "
               f"{report.files_deleted} deleted by retention before the export")
    _finish(report, summary)


def _finish(report, summary: str) -> None:
    for problem in report.problems:
        click.echo(problem, err=True)
    if not report.ok:
        raise EvidenceError(f"NOT verified: {len(report.problems)} problem(s); {summary}")
    click.echo(f"verified: {summary}")
