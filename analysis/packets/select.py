"""Which flows an ``extract`` takes: by uid, Community ID, alert, incident, or the listing
filters (host, port, protocol, time)."""

from __future__ import annotations

import sqlalchemy as sa

from analysis.packets.selection import LOOKBACK_NS, Selection, by_listing
from recorder.core.errors import WiretrailError
from recorder.core.schema import alerts, flows


def _rows(store, stmt) -> list[dict]:
    with store.db_errors("read flows"), store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def select_flows(store, sel: Selection) -> list[dict]:
    """The flow rows chosen; raises WiretrailError (one line) for a uid, Community ID, alert or
    incident the store does not have, or when nothing matches."""
    chosen: dict[str, dict] = {}
    for uid in sel.uids:
        rows = _rows(store, flows.select().where(flows.c.uid == uid))
        if not rows:
            raise WiretrailError(f"no flow with uid {uid}", path=store.display)
        chosen.update((r["uid"], r) for r in rows)
    for cid in sel.community_ids:
        rows = _rows(store, flows.select().where(flows.c.community_id == cid))
        if not rows:
            raise WiretrailError(f"no flow with Community ID {cid}", path=store.display)
        chosen.update((r["uid"], r) for r in rows)
    if sel.alert is not None:
        with store.db_errors("read alerts"), store.engine.connect() as conn:
            uid = conn.execute(sa.select(alerts.c.uid).where(alerts.c.flow_id == sel.alert).limit(1)).first()
        if uid is None:
            raise WiretrailError(f"no alert with flow_id {sel.alert}", path=store.display)
        rows = _rows(store, flows.select().where(flows.c.uid == uid[0])) if uid[0] else []
        if not rows:
            raise WiretrailError(f"alert {sel.alert} names no stored flow", path=store.display)
        chosen.update((r["uid"], r) for r in rows)
    if sel.incident is not None:
        chosen.update((r["uid"], r) for r in _incident_flows(store, sel.incident))
    chosen = by_listing(store, sel, chosen)
    if not chosen:
        raise WiretrailError("no flow matches", path=store.display)
    return sorted(chosen.values(), key=lambda r: (r["ts_ns"], r["uid"]))


def _incident_flows(store, incident: str) -> list[dict]:
    """The flows between the incident's hosts during its time span."""
    from analysis.story.build import build_story

    story = build_story(store)
    inc = next((i for i in story.incidents if i.id == incident), None)
    if inc is None:
        raise WiretrailError(f"no incident {incident} (see `wiretrail incidents`)", path=store.display)
    hosts = set(inc.hosts)
    stmt = flows.select().where(flows.c.ts_ns <= inc.last_ts_ns,
                                flows.c.ts_ns + sa.func.coalesce(flows.c.duration_ns, 0) >= inc.first_ts_ns,
                                flows.c.orig_h.in_(hosts), flows.c.resp_h.in_(hosts))
    return _rows(store, stmt)


__all__ = ["LOOKBACK_NS", "Selection", "select_flows"]
