"""The breach story's commands: ``timeline``, ``incidents``, ``incident ID``, ``accounts``,
``data-at-risk``. Each parses, calls one ``analysis.story`` function and renders; an empty store
or a range with nothing in it is one line ("nothing recorded between X and Y") and exit 1."""

from __future__ import annotations

import json
import sys

import click

from analysis.cli.db import db_option, open_for_reading
from analysis.cli.params import TimeType, check_cidr, check_host
from analysis.output import output_options, render
from recorder.core.errors import WiretrailError

_TIMELINE = {"ts": "time", "kind": "string", "severity": "count", "src": "addr", "dst": "addr",
             "description": "string", "count": "count", "last_ts": "time", "tactic": "string",
             "technique": "string", "incident": "string", "uid": "string", "community_id": "string",
             "capture": "string", "capture_sha256": "string"}
_TIMELINE_TABLE = ("ts", "kind", "severity", "src", "dst", "description", "count", "incident", "uid")


def _since_until(fn):
    fn = click.option("--until", type=TimeType(), help="Only before TIME (RFC 3339, date, epoch s).")(fn)
    return click.option("--since", type=TimeType(), help="Only at or after TIME (RFC 3339, date, epoch s).")(fn)


def _local_net(fn):

    return click.option("--local-net", "local_nets", multiple=True, metavar="CIDR", callback=check_cidr,
                        help="A local network besides the private ranges (repeatable).")(fn)


def _nothing(store, since, until, scope_nets=()) -> None:
    """A domain error (one line, exit 1) when the store holds nothing in the range."""
    from analysis.story.build import recorded_span
    from analysis.story.common import Scope
    from analysis.story.model import rfc3339

    first, _ = recorded_span(Scope.open(store, since_ns=since, until_ns=until, local_nets=tuple(scope_nets)))
    if first is None:
        lo = rfc3339(since) if since is not None else "the beginning"
        hi = rfc3339(until) if until is not None else "the end"
        raise WiretrailError(f"nothing recorded between {lo} and {hi}")


def _event_row(e) -> dict:
    ev = e.evidence
    return {"ts": e.ts_ns / 1e9, "kind": e.kind, "severity": e.severity, "src": e.src, "dst": e.dst,
            "description": e.description, "count": e.count,
            "last_ts": e.last_ts_ns / 1e9 if e.last_ts_ns else None, "tactic": e.tactic, "technique": e.technique,
            "incident": e.incident, "uid": ev.uid if ev else None, "community_id": ev.community_id if ev else None,
            "capture": ev.capture if ev else None, "capture_sha256": ev.capture_sha256 if ev else None}


@click.command()
@db_option
@click.option("--host", callback=check_host, metavar="IP|CIDR", help="Either side in this address or network.")
@_since_until
@click.option("--incident", metavar="ID", help="Only the events of one incident (see `wiretrail incidents`).")
@click.option("--min-severity", type=click.IntRange(1, 3), metavar="N",
              help="Only alerts of severity N or higher (1 is the highest).")
@click.option("--no-collapse", is_flag=True, help="One row per record instead of one per repeated kind and pair.")
@_local_net
@output_options("md", "timesketch")
def timeline(db, host, since, until, incident, min_severity, no_collapse, local_nets, fmt) -> None:
    """One time-ordered account of alerts, notable flows and protocol records; repeats between
    one pair collapsed into one row with a count. --format timesketch writes JSON lines that
    Timesketch imports as they are."""
    from analysis.story.model import rfc3339
    from analysis.story.timeline import build_timeline

    store = open_for_reading(db)
    _nothing(store, since, until, local_nets)
    events = build_timeline(store, host=host, since_ns=since, until_ns=until, incident=incident,
                            min_severity=min_severity, collapse=not no_collapse, local_nets=local_nets)
    if fmt == "timesketch":
        for e in events:
            d = {k: v for k, v in _event_row(e).items() if v is not None and k not in ("ts", "last_ts")}
            d.update(message=f"{e.src or '-'} -> {e.dst or '-'}: {e.description}", datetime=rfc3339(e.ts_ns),
                     timestamp=e.ts_ns // 1000, timestamp_desc=f"{e.kind} time")
            sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
        return
    columns = list(_TIMELINE_TABLE) if fmt in ("table", "md") else list(_TIMELINE)
    rows = [_event_row(e) for e in events]
    if fmt == "md":
        from analysis.story.markdown import markdown_table

        sys.stdout.write(markdown_table(rows, columns, times=("ts", "last_ts")))
        return
    render(rows, fmt, columns, zeek_types=[_TIMELINE[c] for c in columns])


_INCIDENTS = {"id": "string", "severity": "count", "confidence": "string", "insider": "bool", "first_ts": "time",
              "last_ts": "time", "title": "string", "attackers": "set[string]", "patient_zero": "addr",
              "stages": "vector[string]", "alerts": "count", "bytes_out": "count"}


@click.command()
@db_option
@_since_until
@_local_net
@output_options("md")
def incidents(db, since, until, local_nets, fmt) -> None:
    """List incidents: alerts grouped by attacker and target over time, the worst first (see
    `wiretrail incident ID` for one told as a story)."""
    from analysis.story.build import build_incident_list
    from analysis.story.common import Scope

    store = open_for_reading(db)
    _nothing(store, since, until, local_nets)
    found = build_incident_list(Scope.open(store, since_ns=since, until_ns=until, local_nets=tuple(local_nets)))
    if fmt == "json":
        from analysis.story.model import Story

        sys.stdout.write(json.dumps(Story(None, None, tuple(found), (), (), (), ()).to_dict()["incidents"],
                                    indent=1, ensure_ascii=False) + "\n")
        return
    rows = [{"id": i.id, "severity": i.severity, "confidence": i.confidence, "insider": i.insider,
             "first_ts": i.first_ts_ns / 1e9, "last_ts": i.last_ts_ns / 1e9, "title": i.title,
             "attackers": [a.address for a in i.attackers], "patient_zero": i.patient_zero,
             "stages": [s.name for s in i.stages], "alerts": i.alert_count,
             "bytes_out": sum(e.bytes for e in i.exfiltration)} for i in found]
    if fmt == "md":
        from analysis.story.markdown import markdown_table

        sys.stdout.write(markdown_table(rows, list(_INCIDENTS), times=("first_ts", "last_ts")))
        return
    render(rows, fmt, list(_INCIDENTS), zeek_types=list(_INCIDENTS.values()))


@click.command()
@click.argument("incident_id", metavar="ID")
@db_option
@_local_net
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
def incident(incident_id, db, local_nets, fmt) -> None:
    """Tell one incident as a story: plain sentences, each with its evidence (alert id, flow uid,
    capture and its SHA-256)."""
    from analysis.story.build import build_story
    from analysis.story.model import Story

    store = open_for_reading(db)
    _nothing(store, None, None, local_nets)
    story = build_story(store, local_nets=local_nets, on_warning=lambda w: click.echo(f"warning: {w}", err=True))
    inc = next((i for i in story.incidents if i.id == incident_id), None)
    if inc is None:
        raise click.ClickException(f"no incident {incident_id} (see wiretrail incidents)")
    if fmt == "json":
        sys.stdout.write(json.dumps(Story(None, None, (inc,), (), (), (), ()).to_dict()["incidents"][0],
                                    indent=1, ensure_ascii=False) + "\n")
        return
    out = [f"{inc.id}: {inc.title}", f"severity {inc.severity}, confidence {inc.confidence} "
           f"({'; '.join(inc.confidence_reasons)})", ""]
    for s in inc.story:
        refs = ", ".join(f"{e.kind} {e.ref}" + (f" in {e.capture}" if e.capture else "") for e in s.evidence)
        out.append(f"- {s.text}" + (f"  [{refs}]" if refs else ""))
    if inc.accounts:
        out += ["", f"Accounts involved: {', '.join(inc.accounts)} (see wiretrail accounts --reset-list)"]
    sys.stdout.write("\n".join(out) + "\n")


_ACCOUNTS = {"name": "string", "admin": "bool", "exposed": "bool", "brute_forced": "bool",
             "used_by_attacker": "bool", "protocols": "set[string]", "used_from": "set[string]",
             "used_on": "set[string]", "successes": "count", "failures": "count", "first_ts": "time",
             "last_ts": "time", "incidents": "set[string]", "reasons": "vector[string]"}


@click.command()
@db_option
@_since_until
@click.option("--reset-list", is_flag=True, help="Only the accounts whose password to change, administrators first.")
@_local_net
@output_options("md")
def accounts(db, since, until, reset_list, local_nets, fmt) -> None:
    """List every account seen (clear-text logins, NTLM and Kerberos names) with where it was used
    and why it may need a new password. Secrets are never shown."""
    from analysis.story.accounts import build_accounts
    from analysis.story.build import build_incident_list
    from analysis.story.common import Scope

    store = open_for_reading(db)
    _nothing(store, since, until, local_nets)
    scope = Scope.open(store, since_ns=since, until_ns=until, local_nets=tuple(local_nets))
    found = build_accounts(scope, build_incident_list(scope))
    if reset_list:
        found = [a for a in found if a.reset]
        if fmt == "table":
            for n, a in enumerate(found, 1):
                click.echo(f"{n}. {a.name}: " + "; ".join(a.reasons))
            if not found:
                click.echo("no account needs a new password from what the network showed")
            return
    rows = [{"name": a.name, "admin": a.admin, "exposed": a.exposed, "brute_forced": a.brute_forced,
             "used_by_attacker": a.used_by_attacker, "protocols": list(a.protocols), "used_from": list(a.used_from),
             "used_on": list(a.used_on), "successes": a.successes, "failures": a.failures,
             "first_ts": a.first_ts_ns / 1e9, "last_ts": a.last_ts_ns / 1e9, "incidents": list(a.incidents),
             "reasons": list(a.reasons)} for a in found]
    columns = list(_ACCOUNTS)
    if fmt == "md":
        from analysis.story.markdown import markdown_table

        sys.stdout.write(markdown_table(rows, columns, times=("first_ts", "last_ts")))
        return
    render(rows, fmt, columns, zeek_types=list(_ACCOUNTS.values()))


_DATA = {"first_ts": "time", "kind": "string", "count": "count", "src": "addr", "dst": "addr", "channel": "string",
         "file": "string", "left_network": "bool", "after_compromise": "bool", "incident": "string",
         "samples": "vector[string]", "description": "string"}


@click.command("data-at-risk")
@db_option
@_since_until
@_local_net
@click.option("--files-dir", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="Where `wiretrail ingest --extract-files DIR` put the files (else their captures are read again).")
@output_options("md")
def data_at_risk(db, since, until, local_nets, files_dir, fmt) -> None:
    """List customer-like data (card numbers, e-mails, IBANs, SSN-like numbers, dumps, password
    hashes) in what left the network or crossed it in clear text: counts and masked samples only."""
    from analysis.story.build import build_incident_list
    from analysis.story.common import Scope
    from analysis.story.data import build_data_at_risk, describe

    store = open_for_reading(db)
    _nothing(store, since, until, local_nets)
    scope = Scope.open(store, since_ns=since, until_ns=until, local_nets=tuple(local_nets))
    found = build_data_at_risk(scope, build_incident_list(scope), files_dir=files_dir,
                               on_warning=lambda w: click.echo(f"warning: {w}", err=True))
    rows = [{"first_ts": d.first_ts_ns / 1e9, "kind": d.kind, "count": d.count, "src": d.src, "dst": d.dst,
             "channel": d.channel, "file": d.file, "left_network": d.left_network,
             "after_compromise": d.after_compromise, "incident": d.incident, "samples": list(d.samples),
             "description": describe(d)} for d in found]
    if fmt == "md":
        from analysis.story.markdown import markdown_table

        sys.stdout.write(markdown_table(rows, list(_DATA), times=("first_ts",)))
        return
    render(rows, fmt, list(_DATA), zeek_types=list(_DATA.values()))


COMMANDS = (timeline, incidents, incident, accounts, data_at_risk)
