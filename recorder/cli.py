"""``wiretrail-recorder``: the always-on capture daemon (the live side arrives with the recorder issue)."""

from __future__ import annotations

import click

from recorder import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wiretrail-recorder")
def main() -> None:
    """Always-on capture daemon. Live capture (`run`, `check-config`) is not built yet:
    today this entry point only reports its version."""
