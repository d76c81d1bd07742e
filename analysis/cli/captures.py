"""``wiretrail captures``: the capture files in the store, with their time span and SHA-256."""

from __future__ import annotations

import click

from analysis.cli.db import CAPTURE_COLUMNS, CAPTURE_TYPES, capture_rows, db_option, open_for_reading
from analysis.output import output_options, render


@click.command()
@db_option
@output_options()
def captures(db: str, fmt: str) -> None:
    """List the capture files in the store: time span, packets, malformed packets, SHA-256."""
    store = open_for_reading(db)
    render(capture_rows(store.captures()), fmt, CAPTURE_COLUMNS, zeek_types=CAPTURE_TYPES)
