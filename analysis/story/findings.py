"""Alerts as findings: every alert of one rule between one pair of addresses is ONE finding with a
count, its first and last time, and the first alert as evidence (grouped in SQL, so ten thousand
alerts are read as a few hundred rows).

A finding also knows its stage of the breach (from its ATT&CK tactic, its category or its
behaviour kind) and whether it is an *exposure* (a clear-text login: a weakness to fix, not by
itself an attack).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from analysis.story.common import Scope, stage_of
from analysis.story.model import Evidence
from recorder.core.schema import alerts

# Behaviour kinds whose alerts describe a weakness seen, not an attacker's act.
EXPOSURE_KINDS = frozenset({"cleartext_credentials", "cleartext_admin"})
# Kinds that say a host is in the attacker's hands (it acts for them), whatever their tactic.
COMPROMISE_KINDS = frozenset({"callback", "executable_download", "beaconing", "dns_tunnelling", "remote_service"})
# Behaviour kinds -> stage, where the rule's tactic alone would say otherwise.
KIND_STAGE = {"port_scan": "reconnaissance", "host_sweep": "discovery", "executable_download": "command-and-control",
              "callback": "command-and-control", "lateral_movement": "lateral-movement",
              "remote_service": "lateral-movement"}


@dataclass(frozen=True, slots=True)
class Finding:
    """All alerts of one rule from ``src`` to ``dst``."""

    sid: int
    kind: str | None  # behaviour kind, None for a signature
    name: str  # the rule's name (signature text before ":")
    text: str  # the first alert's signature text
    src: str
    dst: str
    count: int
    first_ts_ns: int
    last_ts_ns: int
    severity: int
    stage: str | None
    technique: str | None
    evidence: Evidence
    alert_id: int

    @property
    def exposure(self) -> bool:
        return self.kind in EXPOSURE_KINDS

    @property
    def detail(self) -> str:
        """The signature text after the rule's name (behaviour rules: what was seen)."""
        head, _, rest = self.text.partition(": ")
        return rest if rest and self.kind else self.text


def _meta(eve: str) -> dict:
    try:
        return (json.loads(eve).get("alert") or {}).get("metadata") or {}
    except (ValueError, AttributeError):
        return {}


def _first(meta: dict, *keys: str) -> str | None:
    values = [str(v) for k in keys for v in (meta.get(k) or [])]
    return " ".join(values) or None


def _log_dests(scope: Scope, firsts: list) -> dict[int, str]:
    """alert id -> the server's address, for log-based alerts (no destination of their own): the
    flow their log event was linked to (an sshd login -> the SSH connection it came in on)."""
    from recorder.core.schema import flows, log_events

    want: dict[int, int] = {}
    for f in firsts:
        try:
            ids = (json.loads(f.eve).get("log") or {}).get("event_ids") or []
        except (ValueError, AttributeError):
            continue
        if ids:
            want[int(f.id)] = int(ids[-1])
    if not want:
        return {}
    out = {}
    with scope.connect() as conn:
        for alert_id, event_id in want.items():
            uid = conn.execute(sa.select(log_events.c.uid).where(log_events.c.id == event_id)).scalar()
            if uid:
                resp = conn.execute(sa.select(flows.c.resp_h).where(flows.c.uid == uid).limit(1)).scalar()
                if resp:
                    out[alert_id] = resp
    return out


def load_findings(scope: Scope, *, host_cond=None) -> list[Finding]:
    """Every finding in the scope's time range, in time order."""
    a = alerts.c
    where = scope.in_range(a.ts_ns) + ([host_cond] if host_cond is not None else [])
    groups = (sa.select(a.signature_id, a.src_ip, a.dest_ip, sa.func.count().label("n"),
                        sa.func.min(a.ts_ns).label("first"), sa.func.max(a.ts_ns).label("last"),
                        sa.func.min(a.id).label("first_id"), sa.func.min(a.severity).label("sev"))
              .where(*where).group_by(a.signature_id, a.src_ip, a.dest_ip))
    out: list[Finding] = []
    with scope.store.db_errors("read alerts"), scope.connect() as conn:
        rows = conn.execute(groups).all()
        firsts: dict[int, sa.Row] = {}
        ids = [int(r.first_id) for r in rows]
        for i in range(0, len(ids), 500):
            for r in conn.execute(sa.select(a.id, a.ts_ns, a.uid, a.community_id, a.capture_id, a.signature,
                                            a.category, a.tactic, a.technique, a.eve)
                                  .where(a.id.in_(ids[i:i + 500]))):
                firsts[int(r.id)] = r
    dests = _log_dests(scope, [firsts[int(g.first_id)] for g in rows if not g.dest_ip])
    for g in rows:
        f = firsts[int(g.first_id)]
        meta = _meta(f.eve)
        dest = g.dest_ip or dests.get(int(f.id)) or ""
        kind = _first(meta, "wiretrail_behaviour")
        tactic = f.tactic or _first(meta, "mitre_tactic", "mitre_tactic_id")
        technique = f.technique or _first(meta, "mitre_technique", "mitre_technique_id")
        # an attack on a web application is how attackers get in, whatever it fetched
        stage = KIND_STAGE.get(kind or "") or ("initial-access" if f.category == "Web Application Attack"
                                               else stage_of(tactic, f.category))
        if kind == "executable_download" and scope.is_local(g.src_ip) and scope.is_local(g.dest_ip):
            stage, technique = "lateral-movement", "T1570 Lateral Tool Transfer"  # copied host to host
        out.append(Finding(
            sid=int(g.signature_id), kind=kind, name=f.signature.split(":")[0], text=f.signature, src=g.src_ip,
            dst=dest, count=int(g.n), first_ts_ns=int(g.first), last_ts_ns=int(g.last), severity=int(g.sev),
            stage=stage, technique=technique,
            evidence=scope.evidence("alert", f.ts_ns, f.id, uid=f.uid, community_id=f.community_id,
                                    capture_id=f.capture_id),
            alert_id=int(f.id)))
    out.sort(key=lambda x: (x.first_ts_ns, x.sid, x.src, x.dst))
    return out
