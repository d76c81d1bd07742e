"""``wiretrail rules``: check Suricata-syntax rule files before replaying captures against them."""

from __future__ import annotations

import click

from analysis.cli.params import parse_vars


@click.group()
def rules() -> None:
    """Suricata-syntax rules (rules/*.rules)."""


@rules.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--var", "var", multiple=True, metavar="NAME=VALUE",
              help="Define an address or port variable (HOME_NET, EXTERNAL_NET, HTTP_PORTS...; names "
                   "ending in _PORTS are ports). Suricata's defaults apply to the rest. Repeatable.")
def check(paths: tuple[str, ...], var: tuple[str, ...]) -> None:
    """Load rule files or folders (every *.rules below them, and the threshold.config beside
    each rules file) and report every rejected rule or threshold.config line as path:line:
    reason on stderr, and the line `N rules loaded, M rejected` on stdout. Exit 1 when any is
    rejected."""
    from analysis.rules import Variables, load_rules

    ruleset = load_rules(paths, Variables.with_overrides(parse_vars(var)))
    click.echo(f"{len(ruleset.rules)} rules loaded, {len(ruleset.errors)} rejected")
    ruleset.raise_errors()
