"""Log events joined to the flows that carried them: an event with a source address and port
(sshd's ``Accepted password for root from 198.51.100.7 port 41000``, Windows 4624's IpAddress and
IpPort) takes the uid of the flow from that address and port that was open at its time; a web
request (address, no port) the flow from that address to a web port open at its time. Clocks of
the log's host and the sensor may differ a little: ``SLACK_NS`` either side."""

from __future__ import annotations

import sqlalchemy as sa

from recorder.core.schema import flows, log_events
from recorder.core.store import Store

SLACK_NS = 5 * 1_000_000_000
WEB_PORTS = (80, 443, 8000, 8080, 8443)


def link_flows(store: Store) -> int:
    """Set ``uid`` on the events not linked yet; returns how many were linked now."""
    e, f = log_events.c, flows.c
    end = f.ts_ns + sa.func.coalesce(f.duration_ns, 0)
    in_time = sa.and_(f.ts_ns <= e.ts_ns + SLACK_NS, end >= e.ts_ns - SLACK_NS)
    with_port = (sa.select(f.uid).where(f.orig_a == e.src_a, f.orig_p == e.src_port, in_time)
                 .order_by(f.ts_ns.desc()).limit(1).scalar_subquery())
    web = (sa.select(f.uid).where(f.orig_a == e.src_a, f.resp_p.in_(WEB_PORTS), in_time)
           .order_by(f.ts_ns.desc()).limit(1).scalar_subquery())
    base = sa.and_(e.uid.is_(None), e.src_a.is_not(None), e.ts_ns.is_not(None))
    count = sa.select(sa.func.count()).select_from(log_events).where(e.uid.is_not(None))
    with store.db_errors("link log events to flows"), store.engine.begin() as conn:
        before = conn.execute(count).scalar() or 0
        conn.execute(log_events.update().where(base, e.src_port.is_not(None)).values(uid=with_port))
        conn.execute(log_events.update().where(base, e.src_port.is_(None), e.kind == "web").values(uid=web))
        after = conn.execute(count).scalar() or 0
    return int(after - before)
