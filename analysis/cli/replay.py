"""``wiretrail replay``: ingest captures, match signatures and evaluate behaviour rules over them
(``analysis.replay.replay_captures``); the alerts go to the store and are printed as a table, JSON or EVE.

Exit codes: 0 done; 1 bad rule or expectations file (every problem as path:line: reason) or
unreadable capture; 3 when ``--fail-on`` is met or the alerts differ from ``--expect``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import click

from analysis.cli.params import check_cidr, parse_vars
from analysis.output import FORMATS, output_options, render

_COLUMNS = ("timestamp", "sid", "severity", "signature", "src_ip", "src_port", "dest_ip", "dest_port", "proto")
_TYPES = ("time", "count", "count", "string", "addr", "port", "addr", "port", "string")


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH",
              help="Suricata signature files (*.rules), behaviour rule files (*.yaml) or folders of "
                   "either; repeatable. Default: the shipped rules/ (signatures and behaviour rules). "
                   "Sigma rules (*.yml with a logsource) named here run over the log events in --db "
                   "(`wiretrail logs ingest`). "
                   "A threshold.config beside a rules file applies to its rules.")
@click.option("--var", "var", multiple=True, metavar="NAME=VALUE",
              help="Define an address or port variable for the signatures (HOME_NET, EXTERNAL_NET, "
                   "HTTP_PORTS...; names ending in _PORTS are ports). Repeatable.")
@click.option("--db", default=None, metavar="DB",
              help="Keep the ingested store and its alerts here (path or SQLAlchemy URL). "
                   "Default: a temporary SQLite database.")
@click.option("--eve", "eve_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the alerts as Suricata EVE JSON lines to FILE (owner-only, 0600).")
@click.option("--expect", "expect_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="A YAML file of expected alerts (see analysis/expect.py); exit 3 with the "
                   "differences, one line each, when the alerts differ.")
@click.option("--fail-on", type=click.Choice(["1", "2", "3", "any"]), metavar="SEVERITY|any",
              help="Exit 3 when an alert of this severity or higher (1 is highest) fires; any: any alert.")
@click.option("--local-net", "local_nets", multiple=True, metavar="CIDR", callback=check_cidr,
              help="A local network (repeatable); private ranges are always local. The signatures' "
                   "HOME_NET is these plus the private ranges unless --var HOME_NET is given.")
@click.option("--skip-invalid", is_flag=True,
              help="Skip signatures that do not load (each reported as a warning) instead of exiting 1: "
                   "for large rulesets such as ET Open.")
@click.option("--midstream", is_flag=True,
              help="Inspect TCP sessions picked up without their handshake (Suricata's stream.midstream: "
                   "true): a capture that starts, or a rotated file that begins, while connections are open.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the owner's report of the replayed store to FILE (HTML; .md Markdown, "
                   ".json the facts), as `wiretrail report` does.")
@output_options(formats=FORMATS[:3])
def replay(captures: tuple[str, ...], rule_paths: tuple[str, ...], var: tuple[str, ...], db: str | None,
           eve_path: str | None, expect_path: str | None, fail_on: str | None, local_nets: tuple[str, ...],
           skip_invalid: bool, midstream: bool, report_path: str | None, fmt: str) -> None:
    """Ingest CAPTURES, match the signatures and evaluate the behaviour rules over them; store the
    alerts (see `wiretrail alerts`) and print them."""
    from analysis.alerts import write_eve
    from analysis.expect import compare, load_expectations
    from analysis.replay import replay_captures
    from recorder.core.secure_files import atomic_output

    variables = parse_vars(var)
    expectations = load_expectations(expect_path) if expect_path else None
    report_db, report_tmp = _report_store(report_path, db)  # --report: the store must outlive the replay
    outcome = replay_captures(captures, rules=rule_paths or None, variables=variables, db=report_db,
                              local_nets=local_nets, skip_invalid=skip_invalid, midstream=midstream,
                              on_warning=lambda w: click.echo(f"warning: {w}", err=True))
    alerts = outcome.alerts
    sigs = f"{outcome.signatures} signatures, " if outcome.signatures else ""
    sigs += f"{outcome.sigma_rules} Sigma rules, " if outcome.sigma_rules else ""
    repeats = f"; {outcome.repeats} repeats on one flow stored as counts" if outcome.repeats else ""
    kept = f" ({outcome.stored} new in the store{repeats})" if db else ""
    click.echo(f"{outcome.stats.packets:,} packets, {outcome.stats.flows:,} flows, {sigs}"
               f"{outcome.behaviour_rules} behaviour rules, {len(alerts)} alerts{kept}", err=True)
    if eve_path:
        try:
            with atomic_output(eve_path, text=True) as f:  # owner-only; nothing half-written on failure
                write_eve(alerts, f)
        except OSError as err:
            raise click.ClickException(f"{eve_path}: cannot write: {err.strerror or err}") from None
    _print(alerts, fmt)
    if report_path:
        _write_report(report_path, report_db, report_tmp, local_nets)
    failed = False
    if expectations is not None:
        diff = compare(expectations, alerts)
        for line in diff:
            click.echo(line, err=True)
        if not diff:
            click.echo(f"{expect_path}: {len(expectations.alerts)} expectation(s) hold", err=True)
        failed = bool(diff)
    if fail_on and any(fail_on == "any" or a.severity <= int(fail_on) for a in alerts):
        failed = True
    if failed:
        raise SystemExit(3)


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


# --- --report: the owner's report of the replayed store (analysis/cli/report.py) -----------------

def _report_store(report_path: str | None, db: str | None):
    """The database to replay into: --db, or with --report a temporary one kept until the report is written."""
    if not report_path:
        return db, None
    from analysis.report.produce import check_writable

    check_writable(report_path)  # before the replay's work
    if db:
        return db, None
    tmp = tempfile.TemporaryDirectory(prefix="wiretrail-replay-report-")
    return os.path.join(tmp.name, "replay.db"), tmp


def _write_report(report_path: str, db: str, tmp, local_nets: tuple[str, ...]) -> None:
    from analysis.report.produce import write_from_store
    from recorder.core.store import Store

    try:
        with Store(db, create=False) as store:
            written = write_from_store(store, report_path, None, local_nets=local_nets)
    finally:
        if tmp is not None:
            tmp.cleanup()
    click.echo(f"report ({written}) written to {report_path}", err=True)
