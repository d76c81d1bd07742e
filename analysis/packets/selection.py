"""What an ``extract`` is asked for (``Selection``), and the part of finding its flows that
needs no database library (``by_listing``): a selection by uid, Community ID, host, port,
protocol or time on a SQLite file is served without SQLAlchemy (``lite``); by alert or incident
it takes ``select``."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.core.errors import WiretrailError


@dataclass(frozen=True, slots=True)
class Selection:
    uids: tuple[str, ...] = ()
    community_ids: tuple[str, ...] = ()
    alert: int | None = None
    incident: str | None = None
    host: str | None = None
    port: int | None = None
    proto: str | None = None
    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise WiretrailError("empty time range: --until is not after --since")

    @property
    def by_flow(self) -> bool:
        return bool(self.uids or self.community_ids or self.alert is not None or self.incident is not None)


def by_listing(store, sel: Selection, chosen: dict[str, dict]) -> dict[str, dict]:
    """``chosen`` (uid -> flows row) with the listing filters applied: without a flow named
    (uid, Community ID, alert, incident), the flows of the host, port and protocol active in
    [since, until) (started before until and still going at since, however long before it they
    began); with one, those named narrowed to the host, port and protocol. ``store`` is anything
    with the listings' ``query_flows``."""
    if not sel.by_flow:
        rows = store.query_flows(host=sel.host, port=sel.port, proto=sel.proto, until=sel.until,
                                 active_since=sel.since)
        chosen.update((r["uid"], r) for r in rows)
    elif sel.host or sel.port is not None or sel.proto:
        keep = {r["uid"] for r in store.query_flows(host=sel.host, port=sel.port, proto=sel.proto)}
        chosen = {u: r for u, r in chosen.items() if u in keep}
    return chosen
