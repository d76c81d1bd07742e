"""Every address seen in the flows with what is known of it (``hosts``). (A log's records as Zeek
records are ``listing.query_log``.)

    for h in hosts(store):                               # every address seen in flows
        ...
"""

from __future__ import annotations

import sqlalchemy as sa

from recorder.core.schema import APP_TABLES, flows
from recorder.core.store.database import Database
from recorder.core.store.sql import between


def hosts(store: Database, *, host: str | None = None, since: int | None = None, until: int | None = None,
          limit: int | None = None) -> list[dict]:
    """Every address in the flows (matching the filters): first and last seen, flows, bytes it sent
    (``bytes_out``: as originator its orig_bytes, as responder its resp_bytes) and received, the
    services it offered (as responder), the names seen for it and (``mac``) the MACs kept for it
    in ``macs``, comma-joined."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    f = flows.c
    end = f.ts_ns + sa.func.coalesce(f.duration_ns, 0)

    def side(h, a, out_bytes, in_bytes):
        stmt = sa.select(h.label("addr"), a.label("a"), f.ts_ns.label("first"), end.label("last"),
                         sa.func.coalesce(out_bytes, 0).label("out_b"), sa.func.coalesce(in_bytes, 0).label("in_b"))
        if host is not None:
            stmt = stmt.where(between(a, host))
        if since is not None:
            stmt = stmt.where(f.ts_ns >= since)
        if until is not None:
            stmt = stmt.where(f.ts_ns < until)
        return stmt

    both = sa.union_all(side(f.orig_h, f.orig_a, f.orig_bytes, f.resp_bytes),
                        side(f.resp_h, f.resp_a, f.resp_bytes, f.orig_bytes)).subquery()
    stmt = (sa.select(both.c.addr, sa.func.min(both.c.first), sa.func.max(both.c.last), sa.func.count(),
                      sa.func.sum(both.c.out_b), sa.func.sum(both.c.in_b))
            .group_by(both.c.addr).order_by(sa.func.min(both.c.first), both.c.addr))
    if limit is not None:
        stmt = stmt.limit(limit)
    svc = sa.select(f.resp_h, f.service).where(f.service.is_not(None), f.service != "").distinct()
    if host is not None:
        svc = svc.where(between(f.resp_a, host))
    if since is not None:
        svc = svc.where(f.ts_ns >= since)
    if until is not None:
        svc = svc.where(f.ts_ns < until)
    names_t = APP_TABLES["names"]
    nm = sa.select(names_t.c.addr, names_t.c.name).distinct()
    if host is not None:
        nm = nm.where(between(names_t.c.addr_a, host))
    macs_t = APP_TABLES["macs"]
    mc = sa.select(macs_t.c.addr, macs_t.c.mac).distinct()
    if host is not None:
        mc = mc.where(between(macs_t.c.addr_a, host))
    with store.db_errors("read hosts"), store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        services: dict[str, set[str]] = {}
        for addr, service in conn.execute(svc):
            services.setdefault(addr, set()).update(s for s in service.split(",") if s)
        names: dict[str, set[str]] = {}
        for addr, name in conn.execute(nm):
            names.setdefault(addr, set()).add(name)
        macs: dict[str, set[str]] = {}
        for addr, mac in conn.execute(mc):
            macs.setdefault(addr, set()).add(mac)
    return [{"addr": addr, "mac": ",".join(sorted(macs[addr])) if addr in macs else None,
             "first_seen": first / 1_000_000_000, "last_seen": last / 1_000_000_000,
             "flows": int(n), "bytes_out": int(out_b or 0), "bytes_in": int(in_b or 0),
             "services": sorted(services.get(addr, ())), "names": sorted(names.get(addr, ()))}
            for addr, first, last, n, out_b, in_b in rows]
