"""``wiretrail replay``: ingest captures and evaluate rules over them; alerts as a table, JSON or EVE.

Exit codes: 0 done; 1 bad rule file (every problem as path:line: reason) or unreadable capture;
3 when ``--fail-on`` is met.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

from analysis.cli.ingest import _check_cidr
from analysis.output import FORMATS, output_options, render

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules" / "behaviour"
_COLUMNS = ("timestamp", "sid", "severity", "signature", "src_ip", "src_port", "dest_ip", "dest_port", "proto")
_TYPES = ("time", "count", "count", "string", "addr", "port", "addr", "port", "string")


def _split_rules(paths: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """Behaviour rule files and folders, Suricata *.rules files found, paths that do not exist."""
    behaviour, signatures, missing = [], [], []
    for p in map(Path, paths):
        if not p.exists():
            missing.append(str(p))
        elif p.is_dir():
            signatures += sorted(str(f) for f in p.rglob("*.rules"))
            behaviour.append(str(p))
        elif p.suffix == ".rules":
            signatures.append(str(p))
        else:
            behaviour.append(str(p))
    return behaviour, signatures, missing


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH",
              help="Behaviour rule files (*.yaml) or folders; repeatable. Default: the shipped rules/behaviour/.")
@click.option("--db", default=None, metavar="DB",
              help="Keep the ingested store here (path or SQLAlchemy URL). Default: a temporary SQLite database.")
@click.option("--eve", "eve_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the alerts as Suricata EVE JSON lines to FILE.")
@click.option("--fail-on", type=click.Choice(["1", "2", "3", "any"]), metavar="SEVERITY|any",
              help="Exit 3 when an alert of this severity or higher (1 is highest) fires; any: any alert.")
@click.option("--local-net", "local_nets", multiple=True, metavar="CIDR", callback=_check_cidr,
              help="A local network (repeatable); private ranges are always local.")
@output_options(formats=FORMATS[:3])
def replay(captures: tuple[str, ...], rule_paths: tuple[str, ...], db: str | None, eve_path: str | None,
           fail_on: str | None, local_nets: tuple[str, ...], fmt: str) -> None:
    """Ingest CAPTURES and evaluate the behaviour rules over them; print the alerts.

    Suricata signatures (*.rules) are not matched yet: they are skipped with a warning.
    """
    from analysis.alerts import write_eve
    from analysis.behaviour import load_behaviour_rules

    behaviour, signatures, missing = _split_rules(rule_paths or (str(SHIPPED_RULES),))
    for path in missing:
        click.echo(f"{path}: no such file or directory", err=True)
    if signatures:
        click.echo(f"warning: signature matching is not implemented yet; skipped {len(signatures)} *.rules "
                   f"file(s) ({signatures[0]}{', ...' if len(signatures) > 1 else ''})", err=True)
    rules, errors = load_behaviour_rules(behaviour)
    for error in errors:
        click.echo(str(error), err=True)
    if missing or errors:
        raise SystemExit(1)
    with tempfile.TemporaryDirectory(prefix="wiretrail-replay-") as tmp:
        alerts, stats = _run(list(captures), db or os.path.join(tmp, "replay.db"), rules, list(local_nets))
    click.echo(f"{stats.packets:,} packets, {stats.flows:,} flows, {len(rules)} behaviour rules, "
               f"{len(alerts)} alerts", err=True)
    if eve_path:
        try:
            with open(eve_path, "w", encoding="utf-8") as f:
                write_eve(alerts, f)
        except OSError as err:
            raise click.ClickException(f"{eve_path}: cannot write: {err.strerror or err}") from None
    _print(alerts, fmt)
    if fail_on and any(fail_on == "any" or a.severity <= int(fail_on) for a in alerts):
        raise SystemExit(3)


def _run(captures: list[str], db: str, rules, local_nets: list[str]):
    from analysis.behaviour import evaluate
    from recorder.core.ingest import ingest
    from recorder.core.store import Store

    with Store(db) as store:
        store.ensure_schema()
        stats = ingest(captures, store, local_nets=local_nets,
                       on_warning=lambda w: click.echo(f"warning: {w}", err=True))
        return evaluate(store, rules), stats


def _print(alerts, fmt: str) -> None:
    if fmt == "table":
        rows = [{"timestamp": a.ts_ns / 1e9, "sid": a.signature_id, "severity": a.severity, "signature": a.signature,
                 "src_ip": a.src_ip, "src_port": a.src_port, "dest_ip": a.dest_ip, "dest_port": a.dest_port,
                 "proto": a.proto} for a in alerts]
        render(rows, "table", _COLUMNS, zeek_types=_TYPES)
        return
    eves = [a.to_eve() for a in alerts]
    if fmt == "jsonl":
        for e in eves:
            sys.stdout.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(json.dumps(eves, indent=1, ensure_ascii=False) + "\n")
