"""The timeline: alerts, notable flows and protocol records merged in time order.

Every source is aggregated in SQL: with ``collapse`` (the default) the rows of one kind between
one pair with the same key (a DNS name, an HTTP host, a TLS server name, a login...) are ONE row
with ``count`` and ``last_ts_ns`` ("N more like this"), so a busy day stays readable and a store
of millions of flows is read as groups, never row by row. Flows appear only when notable: the
first contact of a local host with an external address, transfers of a megabyte or more out,
connections of an hour or more; collapsed, a host's first contacts are one row per host and hour
("first contact with 37 external addresses within the hour").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import sqlalchemy as sa

from analysis.story.common import STAGE_TACTIC, Scope, carved_name, host_filter
from analysis.story.findings import load_findings
from analysis.story.incidents import build_incidents
from analysis.story.model import TimelineEvent
from recorder.core.errors import WiretrailError
from recorder.core.schema import APP_TABLES, alerts, flows, log_events

LARGE_OUT_BYTES = 1_000_000
LONG_NS = 3600 * 1_000_000_000
HOUR_NS = 3600 * 1_000_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class _Source:
    kind: str
    table: str
    keys: tuple[str, ...]  # grouped by orig_h, resp_h and these columns
    text: Callable[[dict], str]
    where: Callable | None = None


def _q(v) -> str:
    return "-" if v is None else str(v)


SOURCES: tuple[_Source, ...] = (
    _Source("dns", "dns", ("query", "qtype_name"), lambda r: f"DNS {_q(r['qtype_name'])} {_q(r['query'])}"),
    _Source("http", "http", ("method", "host", "status_code"),
            lambda r: f"HTTP {_q(r['method'])} {_q(r['host'])}{_q(r['uri'])} -> {_q(r['status_code'])}"),
    _Source("tls", "ssl", ("server_name", "version"), lambda r: f"TLS {_q(r['version'])} to {_q(r['server_name'])}"),
    _Source("ssh", "ssh", ("client", "auth_success"),
            lambda r: f"SSH {_q(r['client'])} login {'accepted' if r['auth_success'] else 'not seen accepted'}"),
    _Source("ftp", "ftp", ("command", "user"), lambda r: f"FTP {_q(r['command'])} {_q(r['arg'])} as {_q(r['user'])}"),
    _Source("smtp", "smtp", ("mailfrom", "subject"), lambda r: f"mail from {_q(r['mailfrom'])}: {_q(r['subject'])}"),
    _Source("pop3", "pop3", ("user", "command"), lambda r: f"POP3 {_q(r['command'])} as {_q(r['user'])}"),
    _Source("imap", "imap", ("user", "command"), lambda r: f"IMAP {_q(r['command'])} as {_q(r['user'])}"),
    _Source("smb", "smb_files", ("action", "path"), lambda r: f"SMB {_q(r['action'])} {_q(r['path'])}\\{_q(r['name'])}"),
    _Source("smb", "smb_mapping", ("path",), lambda r: f"SMB share {_q(r['path'])} mapped"),
    _Source("kerberos", "kerberos", ("client", "request_type", "success"),
            lambda r: f"Kerberos {_q(r['request_type'])} for account {_q(r['client'])}"
                      f"{'' if r['success'] else ' (failed)'}"),
    _Source("credential", "credentials", ("protocol", "user", "success"),
            lambda r: (f"{_q(r['protocol'])} account {_q(r['user'])} seen (no password on the wire)"
                       if r["protocol"] in ("NTLM", "Kerberos") else
                       f"{_q(r['protocol'])} login as {_q(r['user'])} in clear text"
                       f"{' accepted' if r['success'] else ' refused' if r['success'] is False else ''}")),
    _Source("file", "files", ("mime_type", "source"),
            lambda r: f"file {_q(r['filename'])} ({_q(r['mime_type'])}, {r['seen_bytes'] or 0:,} bytes) over "
                      f"{_q(r['source'])}"),
)


def _records(scope: Scope, conn, src: _Source, host, collapse: bool) -> list[TimelineEvent]:
    t = APP_TABLES[src.table]
    c = t.c
    cond = scope.in_range(c.ts_ns)
    hf = host_filter(host, c.orig_a, c.resp_a)
    if hf is not None:
        cond.append(hf)
    keys = [c.orig_h, c.resp_h, *(c[k] for k in src.keys)]
    if collapse:
        q = sa.select(sa.func.min(c.id).label("first_id"), sa.func.count().label("n"),
                      sa.func.max(c.ts_ns).label("last")).where(*cond).group_by(*keys)
        groups = {int(r.first_id): (int(r.n), int(r.last)) for r in conn.execute(q)}
    else:
        groups = {int(r.id): (1, int(r.ts_ns)) for r in conn.execute(sa.select(c.id, c.ts_ns).where(*cond))}
    out = []
    ids = sorted(groups)
    for i in range(0, len(ids), 500):
        for r in conn.execute(sa.select(t).where(c.id.in_(ids[i:i + 500]))).mappings():
            n, last = groups[int(r["id"])]
            if src.table == "files" and not r["filename"]:  # named from its URL, FTP or SMB path
                r = {**r, "filename": carved_name(conn, r["fuid"], None)}
            out.append(TimelineEvent(
                ts_ns=int(r["ts_ns"]), kind=src.kind, src=r["orig_h"], dst=r["resp_h"], description=src.text(r),
                count=n, last_ts_ns=last if n > 1 else None,
                evidence=scope.evidence(src.kind, r["ts_ns"], r["id"], uid=r["uid"], capture_id=r["capture_id"])))
    return out


def _log_text(r) -> str:
    who = f" for account {r['account']}" if r["account"] else ""
    where = f" on {r['host']}" if r["host"] else ""
    came = f" from {r['src_ip']}" if r["src_ip"] else ""
    outcome = f" ({r['outcome']})" if r["outcome"] else ""
    return f"{r['kind']} log: {r['action'] or 'event'}{outcome}{who}{came}{where}"


def _logs(scope: Scope, conn, host, collapse: bool) -> list[TimelineEvent]:
    """Log events (``wiretrail logs ingest``) beside the packets: kind ``log``; one linked to the
    flow that carried it names that flow's server as its destination. Raw lines are left out."""
    c = log_events.c
    cond = [c.ts_ns.is_not(None), c.kind != "raw", *scope.in_range(c.ts_ns)]
    hf = host_filter(host, c.src_a)
    if hf is not None:
        cond.append(hf)
    if collapse:
        q = sa.select(sa.func.min(c.id).label("first_id"), sa.func.count().label("n"), sa.func.max(c.ts_ns).label("last")
                      ).where(*cond).group_by(c.kind, c.action, c.outcome, c.account, c.src_ip, c.host)
        groups = {int(r.first_id): (int(r.n), int(r.last)) for r in conn.execute(q)}
    else:
        groups = {int(r.id): (1, int(r.ts_ns)) for r in conn.execute(sa.select(c.id, c.ts_ns).where(*cond))}
    out = []
    ids = sorted(groups)
    for i in range(0, len(ids), 500):
        rows = conn.execute(sa.select(c.id, c.ts_ns, c.kind, c.action, c.outcome, c.account, c.src_ip, c.host, c.uid,
                                      flows.c.resp_h, flows.c.capture_id).select_from(
            log_events.outerjoin(flows, flows.c.uid == c.uid)).where(c.id.in_(ids[i:i + 500]))).mappings()
        for r in rows:
            n, last = groups[int(r["id"])]
            out.append(TimelineEvent(
                ts_ns=int(r["ts_ns"]), kind="log", src=r["src_ip"], dst=r["resp_h"], description=_log_text(r),
                count=n, last_ts_ns=last if n > 1 else None,
                evidence=scope.evidence("log", r["ts_ns"], r["id"], uid=r["uid"], capture_id=r["capture_id"])))
    return out


def _flows(scope: Scope, conn, host, collapse: bool = True) -> list[TimelineEvent]:
    f = flows.c
    cond = scope.in_range(f.ts_ns)
    hf = host_filter(host, f.orig_a, f.resp_a)
    if hf is not None:
        cond.append(hf)
    picks: dict[int, tuple[str, int, int | None]] = {}  # flow id -> (why, count, last)
    outward = sa.and_(f.local_orig.is_(True), sa.or_(f.local_resp.is_(False), f.local_resp.is_(None)))
    pairs = (sa.select(f.orig_h, sa.func.min(f.ts_ns).label("first"), sa.func.min(f.id).label("fid"),
                       sa.func.count().label("n")).where(outward, *cond).group_by(f.orig_h, f.resp_h).subquery())
    if collapse:  # a host's first contacts with new external addresses, one row per host and hour
        hour = pairs.c.first // HOUR_NS
        q = sa.select(sa.func.min(pairs.c.fid), sa.func.count(), sa.func.max(pairs.c.first)).group_by(pairs.c.orig_h, hour)
        for r in conn.execute(q):
            n = int(r[1])
            picks[int(r[0])] = (f"first contact with {n} external address(es) within the hour" if n > 1 else
                                "first contact with an external address", n, int(r[2]))
    else:
        for r in conn.execute(sa.select(pairs.c.fid, pairs.c.n)):
            picks[int(r[0])] = (f"first contact with an external address ({int(r[1])} connection(s))", 1, None)
    for r in conn.execute(sa.select(f.id).where(outward, f.orig_bytes >= LARGE_OUT_BYTES, *cond)):
        picks.setdefault(int(r[0]), ("large outbound transfer", 1, None))
    for r in conn.execute(sa.select(f.id).where(f.duration_ns >= LONG_NS, *cond)):
        picks.setdefault(int(r[0]), ("long connection", 1, None))
    out = []
    ids = sorted(picks)
    for i in range(0, len(ids), 500):
        for r in conn.execute(sa.select(flows).where(f.id.in_(ids[i:i + 500]))).mappings():
            why, n, last = picks[int(r["id"])]
            svc = r["service"] or f"{r['proto']}/{r['resp_p']}"
            out.append(TimelineEvent(
                ts_ns=int(r["ts_ns"]), kind="flow", src=r["orig_h"], dst=r["resp_h"],
                description=f"{svc}: {why}; this one {r['orig_bytes'] or 0:,} bytes out, {r['resp_bytes'] or 0:,} in",
                count=n, last_ts_ns=last if n > 1 else None,
                evidence=scope.evidence("flow", r["ts_ns"], r["uid"], uid=r["uid"], community_id=r["community_id"],
                                        capture_id=r["capture_id"])))
    return out


def build_timeline(store, *, host: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
                   incident: str | None = None, min_severity: int | None = None, collapse: bool = True,
                   local_nets=()) -> list[TimelineEvent]:
    """Time-ordered events. ``host`` an IP or CIDR on either side; ``incident`` only the events of
    that incident (its hosts, within its time span); ``min_severity`` N: only alerts of severity N
    or higher (1 is the highest). Raises StoreError for an old schema, WiretrailError for an unknown incident."""
    store.require_schema()
    scope = Scope.open(store, since_ns=since_ns, until_ns=until_ns, local_nets=tuple(local_nets))
    found = load_findings(scope)
    incidents = build_incidents(scope, found)
    member: dict[tuple[int, str, str], str] = {}
    for inc in incidents:
        for s in inc.stages:
            for ev in s.evidence:
                member.setdefault((ev.ts_ns, ev.kind, ev.ref), inc.id)
    chosen = None
    if incident is not None:
        chosen = next((i for i in incidents if i.id == incident), None)
        if chosen is None:
            raise WiretrailError(f"no incident {incident} (see wiretrail incidents)")
    events: list[TimelineEvent] = []
    a = alerts.c
    hf = host_filter(host, a.src_a, a.dest_a)
    shown = load_findings(scope, host_cond=hf) if hf is not None else found
    inc_of = {f.alert_id: member.get((f.evidence.ts_ns, "alert", f.evidence.ref)) for f in shown}
    if collapse:
        for f in shown:
            events.append(TimelineEvent(
                ts_ns=f.first_ts_ns, kind="alert", src=f.src, dst=f.dst, description=f.text, severity=f.severity,
                tactic=STAGE_TACTIC.get(f.stage or ""), technique=f.technique, incident=inc_of.get(f.alert_id), count=f.count,
                last_ts_ns=f.last_ts_ns if f.count > 1 else None, evidence=f.evidence))
    else:
        for r in store.query_alerts(host=host, since=since_ns, until=until_ns):
            events.append(TimelineEvent(
                ts_ns=r["ts_ns"], kind="alert", src=r["src_ip"], dst=r["dest_ip"], description=r["signature"],
                severity=r["severity"], tactic=r["tactic"], technique=r["technique"],
                evidence=scope.evidence("alert", r["ts_ns"], r["id"], uid=r["uid"], community_id=r["community_id"],
                                        capture_id=r["capture_id"])))
    if min_severity is None:
        with store.db_errors("read the store"), scope.connect() as conn:
            events += _flows(scope, conn, host, collapse)
            for src in SOURCES:
                events += _records(scope, conn, src, host, collapse)
            events += _logs(scope, conn, host, collapse)
    else:
        events = [e for e in events if e.severity is not None and e.severity <= min_severity]
    spans = [(i.first_ts_ns, i.last_ts_ns, set(i.hosts), i.id) for i in incidents if i.patient_zero]
    if spans:  # records between an incident's hosts during it are part of it
        events = [e if e.incident or e.src is None else dataclasses.replace(e, incident=next(
            (ident for lo, hi, hosts, ident in spans if lo <= e.ts_ns <= hi and e.src in hosts and e.dst in hosts),
            None)) for e in events]
    if chosen is not None:
        hosts = set(chosen.hosts)
        events = [dataclasses.replace(e, incident=chosen.id) for e in events
                  if (e.src in hosts and e.dst in hosts or e.incident == chosen.id)
                  and chosen.first_ts_ns <= e.ts_ns <= chosen.last_ts_ns]
    events.sort(key=lambda e: (e.ts_ns, e.kind != "alert", e.kind, e.src or "", e.dst or "", e.description))
    return events
