"""The whole story from one store: ``build_story(store) -> Story`` (the facts the CLI and the
owner's report tell).

    story = build_story(store, since_ns=..., until_ns=..., local_nets=("192.0.2.0/24",))
    story.incidents[0].patient_zero, story.accounts[0].reasons, story.data_at_risk
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import sqlalchemy as sa

from analysis.story.accounts import build_accounts
from analysis.story.common import Scope, hms
from analysis.story.data import build_data_at_risk, describe
from analysis.story.findings import load_findings
from analysis.story.incidents import build_incidents
from analysis.story.model import CaptureInfo, Incident, Sentence, Story
from recorder.core.schema import alerts, captures, flows


def recorded_span(scope: Scope) -> tuple[int | None, int | None]:
    """First and last time of the flows and alerts inside the scope's range (None, None: nothing)."""
    lo, hi = [], []
    with scope.store.db_errors("read the store"), scope.connect() as conn:
        for ts, end in ((flows.c.ts_ns, flows.c.ts_ns + sa.func.coalesce(flows.c.duration_ns, 0)),
                        (alerts.c.ts_ns, alerts.c.ts_ns)):
            r = conn.execute(sa.select(sa.func.min(ts), sa.func.max(end)).where(*scope.in_range(ts))).one()
            if r[0] is not None:
                lo.append(int(r[0]))
                hi.append(int(r[1]))
    return (min(lo), max(hi)) if lo else (None, None)


def _captures(scope: Scope, first: int | None, last: int | None) -> tuple[CaptureInfo, ...]:
    c = captures.c
    q = sa.select(c.path, c.sha256, c.first_ts_ns, c.last_ts_ns, c.packets, c.sealed_at).order_by(c.first_ts_ns, c.id)
    if first is not None and last is not None:
        q = q.where(sa.or_(c.first_ts_ns.is_(None), sa.and_(c.first_ts_ns <= last,
                                                               sa.func.coalesce(c.last_ts_ns, c.first_ts_ns) >= first)))
    with scope.store.db_errors("read captures"), scope.connect() as conn:
        return tuple(CaptureInfo(r.path, r.sha256, r.first_ts_ns, r.last_ts_ns, int(r.packets or 0),
                                 r.sealed_at is not None) for r in conn.execute(q))


def _notes(scope: Scope) -> tuple[str, ...]:
    c = captures.c
    with scope.store.db_errors("read captures"), scope.connect() as conn:
        drops = conn.execute(sa.select(sa.func.sum(sa.func.coalesce(c.kernel_drops, 0) + sa.func.coalesce(c.iface_drops, 0)))).scalar()
        malformed = conn.execute(sa.select(sa.func.sum(c.malformed))).scalar()
    out = []
    if drops:
        out.append(f"the recorder lost {int(drops):,} packets: some connections may be missing or short")
    if malformed:
        out.append(f"{int(malformed):,} packets could not be decoded")
    return tuple(out)


def build_incident_list(scope: Scope) -> list[Incident]:
    return build_incidents(scope, load_findings(scope), recorded_span(scope))


def build_story(store, *, since_ns: int | None = None, until_ns: int | None = None, local_nets=(),
                files_dir: str | None = None, on_warning: Callable[[str], None] | None = None) -> Story:
    """Incidents, accounts and data at risk found in ``store`` between ``since_ns`` (inclusive)
    and ``until_ns`` (exclusive). ``files_dir``: where ``ingest --extract-files`` put the files
    (else their captures are read again to scan them). Raises StoreError for a store that is
    not at this version's schema."""
    store.require_schema()
    scope = Scope.open(store, since_ns=since_ns, until_ns=until_ns, local_nets=tuple(local_nets))
    first, last = recorded_span(scope)
    incidents = build_incidents(scope, load_findings(scope), (first, last))
    accounts = build_accounts(scope, incidents)
    data = build_data_at_risk(scope, incidents, files_dir=files_dir, on_warning=on_warning)
    told = []
    for inc in incidents:
        attackers = {a.address for a in inc.attackers}
        names = tuple(a.name for a in accounts if inc.id in a.incidents or (set(a.used_from) & attackers))
        lines = [Sentence(f"{hms(d.first_ts_ns)}: {describe(d)}.", d.evidence) for d in data
                 if d.incident == inc.id and d.kind != "encrypted"]
        head, events = inc.story[:2], sorted(inc.story[2:] + tuple(lines),
                                             key=lambda x: x.evidence[0].ts_ns if x.evidence else 0)
        told.append(dataclasses.replace(inc, accounts=names, story=head + tuple(events)))
    notes = _notes(scope)
    if any(d.kind == "encrypted" for d in data):
        notes += ("encrypted transfers are counted in bytes only: their content is unknown",)
    return Story(first_ts_ns=first, last_ts_ns=last, incidents=tuple(told), accounts=tuple(accounts),
                 data_at_risk=tuple(data), captures=_captures(scope, first, last), local_nets=tuple(local_nets),
                 notes=notes)
