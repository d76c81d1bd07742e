"""Which flows an ``extract`` takes: by uid, Community ID, alert, incident, or the listing
filters (host, port, protocol, time). ``store`` is a Store, or for every selection but by alert or
incident the lean ``SqliteReader`` (``lite``): SQLAlchemy is imported only for an alert or incident."""

from __future__ import annotations

from analysis.packets.selection import Selection, by_listing
from recorder.core.errors import WiretrailError
from recorder.core.store.listing import flows_with, flows_with_query


def _rows(store, stmt) -> list[dict]:
    with store.db_errors("read flows"), store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def select_flows(store, sel: Selection) -> list[dict]:
    """The flow rows chosen; raises WiretrailError (one line) for a uid, Community ID, alert or
    incident the store does not have, or when nothing matches."""
    chosen = flows_with(store, "uid", sel.uids, "uid")
    chosen.update(flows_with(store, "community_id", sel.community_ids, "Community ID"))
    if sel.alert is not None:
        chosen.update(_alert_flows(store, sel.alert))
    if sel.incident is not None:
        chosen.update((r["uid"], r) for r in _incident_flows(store, sel.incident))
    chosen = by_listing(store, sel, chosen)
    if not chosen:
        raise WiretrailError("no flow matches", path=store.display)
    return sorted(chosen.values(), key=lambda r: (r["ts_ns"], r["uid"]))


def _alert_flows(store, flow_id: int) -> dict[str, dict]:
    """The flow of the alerts with this flow_id, by uid."""
    import sqlalchemy as sa

    from recorder.core.schema import alerts

    with store.db_errors("read alerts"), store.engine.connect() as conn:
        uid = conn.execute(sa.select(alerts.c.uid).where(alerts.c.flow_id == flow_id).limit(1)).first()
    if uid is None:
        raise WiretrailError(f"no alert with flow_id {flow_id}", path=store.display)
    rows = list(store.stream_query(flows_with_query("uid", uid[0]), "read flows")) if uid[0] else []
    if not rows:
        raise WiretrailError(f"alert {flow_id} names no stored flow", path=store.display)
    return {r["uid"]: r for r in rows}


def _incident_flows(store, incident: str) -> list[dict]:
    """The flows between the incident's hosts during its time span."""
    import sqlalchemy as sa

    from analysis.story.build import build_story
    from recorder.core.schema import flows

    story = build_story(store)
    inc = next((i for i in story.incidents if i.id == incident), None)
    if inc is None:
        raise WiretrailError(f"no incident {incident} (see `wiretrail incidents`)", path=store.display)
    hosts = set(inc.hosts)
    stmt = flows.select().where(flows.c.ts_ns <= inc.last_ts_ns,
                                flows.c.ts_ns + sa.func.coalesce(flows.c.duration_ns, 0) >= inc.first_ts_ns,
                                flows.c.orig_h.in_(hosts), flows.c.resp_h.in_(hosts))
    return _rows(store, stmt)


__all__ = ["Selection", "select_flows"]
