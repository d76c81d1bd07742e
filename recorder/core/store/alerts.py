"""The ``alerts`` table: signature and behaviour alerts, stored once each, and their query."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from recorder.core.schema import ALERT_FIELDS, alerts, flows
from recorder.core.store.database import Database, check_fields
from recorder.core.store.listing import alerts_query, last_alert_id
from recorder.core.store.rows import clean_text
from recorder.core.store.sql import addr16_or_none, insert_tuples


class AlertTable(Database):
    """The store's methods for alerts."""

    def add_alerts(self, rows: Iterable[dict], *, new_rows: list | None = None) -> int:
        """Store alerts in one transaction; returns how many were new.

        A row is a dict with the ``schema.ALERT_FIELDS`` keys (the nullable ones may be absent);
        ``eve`` is the EVE object (a dict, stored as JSON text) or its JSON text. An alert already
        stored -- same time, gid, sid, endpoints, flow and text -- is skipped, so replaying the same
        captures into one store again keeps one copy. Text that is not UTF-8 (or holds NUL) is
        escaped as ``\\xNN`` rather than refused. ``new_rows``: a list the rows that were new are
        appended to (the live recorder notifies only those).
        """
        values, given = [], []
        addrs: dict[Any, bytes | None] = {}  # alerts repeat their addresses: parse each once
        for row in rows:
            check_fields(row, ALERT_FIELDS, "alert")
            v = {f: row.get(f) for f in ALERT_FIELDS}
            for f in _ALERT_TEXT:
                if isinstance(v[f], str):
                    v[f] = clean_text(v[f])
            eve = v["eve"]
            v["eve"] = clean_text(eve) if isinstance(eve, str) else _eve_text(eve if eve is not None else {})
            for f in ("src_ip", "dest_ip"):
                if v[f] not in addrs:
                    addrs[v[f]] = addr16_or_none(v[f])
            values.append(v)
            given.append(row)
        if not values:
            return 0
        key = itemgetter(*_ALERT_KEY)
        with self.db_errors("write alerts"), self.engine.connect() as conn, conn.begin():
            lo, hi = min(v["ts_ns"] for v in values), max(v["ts_ns"] for v in values)
            existing = {tuple(r) for r in conn.execute(
                sa.select(*(alerts.c[k] for k in _ALERT_KEY)).where(alerts.c.ts_ns.between(lo, hi)))}
            fresh = [i for i, v in enumerate(values) if key(v) not in existing]
            new = [(*(values[i][f] for f in ALERT_FIELDS), addrs[values[i]["src_ip"]], addrs[values[i]["dest_ip"]])
                   for i in fresh]
            if new:  # tuples, as flows are written: no per-row work in SQLAlchemy
                insert_tuples(conn, "alerts", (*ALERT_FIELDS, "src_a", "dest_a"), new)
        if new_rows is not None:
            new_rows.extend(given[i] for i in fresh)
        return len(new)

    def replace_alerts(self, capture_id: int, kind: str, rows: list[dict], *, new_rows: list | None = None) -> int:
        """The ``kind`` alerts tagged with ``capture_id`` become ``rows``: those stored that are not
        among them (same key as ``add_alerts``) are deleted, the rest added as ``add_alerts`` does.
        Returns how many were deleted (the live recorder's catch-up: a file inspected again)."""
        key = itemgetter(*_ALERT_KEY)
        keep = {key({f: r.get(f) for f in _ALERT_KEY}) for r in rows}
        with self.db_errors("write alerts"), self.engine.connect() as conn, conn.begin():
            stored = conn.execute(sa.select(alerts.c.id, *(alerts.c[k] for k in _ALERT_KEY))
                                  .where(alerts.c.capture_id == capture_id, alerts.c.kind == kind)).all()
            gone = [r[0] for r in stored if tuple(r[1:]) not in keep]
            for i in range(0, len(gone), 500):
                conn.execute(alerts.delete().where(alerts.c.id.in_(gone[i:i + 500])))
        self.add_alerts(rows, new_rows=new_rows)
        return len(gone)

    def flow_captures(self, uids: Iterable[str]) -> dict[str, int]:
        """uid -> capture_id of the stored flows with these uids (the newest such flow's), for
        tagging alerts with the capture they came from."""
        wanted = sorted({u for u in uids if u})
        out: dict[str, int] = {}
        with self.db_errors("read flows"), self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                stmt = (sa.select(flows.c.uid, flows.c.capture_id)
                        .where(flows.c.uid.in_(wanted[i:i + 500]), flows.c.capture_id.is_not(None))
                        .order_by(flows.c.id))
                out.update((uid, int(cid)) for uid, cid in conn.execute(stmt))
        return out

    def query_alerts(self, *, host: str | None = None, port: int | None = None, proto: str | None = None,
                     since: int | None = None, until: int | None = None, uid: str | None = None,
                     sids: Iterable[int] | None = None, max_severity: int | None = None,
                     signature: str | None = None, kind: str | None = None, capture_id: int | None = None,
                     limit: int | None = None, after_id: int | None = None, batch: int = 1000) -> Iterator[dict]:
        """Alert rows matching every given filter, ordered by (ts_ns, id), streamed as dicts.

        ``host`` an IP or CIDR on either side, ``port`` either side, ``since`` inclusive and
        ``until`` exclusive (ns on ``ts_ns``), ``sids`` any of these signature ids, ``max_severity``
        this severity or a higher one (1 is the highest), ``signature`` a case-insensitive
        substring of the signature text, ``kind`` signature or behaviour, ``after_id`` only rows
        stored after the one with this id (``alerts --follow``; then ordered by id). Raises ValueError for a
        bad host or limit, before touching the database.
        """
        query = alerts_query(host=host, port=port, proto=proto, since=since, until=until, uid=uid, sids=sids,
                             max_severity=max_severity, signature=signature, kind=kind, capture_id=capture_id,
                             limit=limit, after_id=after_id)
        return self.stream_query(query, "read alerts", batch)

    def last_alert_id(self) -> int:
        """The id of the newest stored alert (0 when there is none)."""
        return last_alert_id(self)


# What makes two alerts the same alert (add_alerts skips one already stored).
_ALERT_KEY = ("ts_ns", "gid", "signature_id", "src_ip", "src_port", "dest_ip", "dest_port", "uid", "signature")
_ALERT_TEXT = ("uid", "community_id", "src_ip", "dest_ip", "proto", "app_proto", "signature", "category",
               "action", "kind", "tactic", "technique")


def _eve_text(eve: dict) -> str:
    """An EVE object as compact JSON text; with \\u escapes only when the text is not UTF-8."""
    text = json.dumps(eve, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(eve, separators=(",", ":"), default=str)
    return text
