"""Detections that need both the logs and the network: a successful login (sshd's Accepted,
Windows 4624) from an address that a signature or behaviour alert named as its source in the day
before (a network brute force, a scan, an exploit attempt), so the login is likely the attack
succeeding. Run by ``logs detect`` with Wiretrail's own rules."""

from __future__ import annotations

import sqlalchemy as sa

from analysis.alerts import Alert
from recorder.core.schema import alerts, log_events, log_sources
from recorder.core.store import Store

SID = 2_100_000_001
TITLE = "Successful login from an address an earlier network alert named"
WINDOW_NS = 86_400 * 1_000_000_000


def login_after_alert(store: Store) -> list[tuple[Alert, dict]]:
    """One alert per successful login whose source address was an alert's source before it."""
    e, a = log_events.c, alerts.c
    first = (sa.select(sa.func.max(a.ts_ns))
             .where(a.src_a == e.src_a, a.kind.in_(("signature", "behaviour")), a.ts_ns <= e.ts_ns,
                    a.ts_ns >= e.ts_ns - WINDOW_NS).scalar_subquery())
    stmt = (sa.select(e.id, e.ts_ns, e.host, e.kind, e.src_ip, e.src_port, e.account, e.action, e.line, e.uid,
                      log_sources.c.path, first.label("alert_ts"))
            .select_from(log_events.outerjoin(log_sources, log_sources.c.id == e.source_id))
            .where(e.outcome == "success", e.action.in_(("login", "logon")), e.src_a.is_not(None),
                   e.ts_ns.is_not(None))
            .order_by(e.ts_ns, e.id))
    out = []
    with store.db_errors("read log events"), store.engine.connect() as conn:
        rows = [r for r in conn.execute(stmt) if r.alert_ts is not None]
        for r in rows:
            named = conn.execute(sa.select(a.signature_id, a.signature).where(
                a.ts_ns == r.alert_ts, a.src_ip == r.src_ip, a.kind.in_(("signature", "behaviour"))).limit(1)).first()
            alert = Alert(ts_ns=r.ts_ns, signature_id=SID, signature=TITLE, severity=1, src_ip=r.src_ip, dest_ip="",
                          src_port=r.src_port, uid=r.uid, category="Log and network", tactic="initial-access",
                          technique="T1078", metadata=(("wiretrail_joined", "login_after_alert"),))
            extra = {"host": r.host, "account": r.account,
                     "log": {"event_ids": [r.id], "kind": r.kind, "action": r.action, "file": r.path, "line": r.line,
                             "after_alert": {"signature_id": named.signature_id if named else None,
                                             "signature": named.signature if named else None,
                                             "ts_ns": r.alert_ts}}}
            out.append((alert, extra))
    return out
