"""What every behaviour detector (detectors, chain, windows) asks of the store: rows of SQL (numbers
as Python numbers on PostgreSQL too), a flow, an ``IN`` list bound as parameters, and an alert
built from a rule and the flow it is about."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from analysis.alerts import Alert
from analysis.behaviour.model import BehaviourRule

NS = 1_000_000_000
def make_alert(rule: BehaviourRule, flow: dict | None, text: str, *, ts_ns: int | None = None, src: str | None = None,
           dest: str | None = None, app_proto: str | None = None) -> Alert:
    flow = flow or {}
    return Alert(
        ts_ns=int(ts_ns if ts_ns is not None else flow["ts_ns"]), signature_id=rule.id,
        signature=f"{rule.name}: {text}", severity=rule.severity,
        src_ip=src or flow["orig_h"], dest_ip=dest or flow["resp_h"],
        src_port=flow.get("orig_p"), dest_port=flow.get("resp_p"),
        proto=flow.get("proto"), app_proto=app_proto or flow.get("service") or None, uid=flow.get("uid"),
        community_id=flow.get("community_id"), category=rule.category, rev=rule.rev, tactic=rule.tactic,
        technique=rule.technique, rule_kind=rule.kind)


def _number(v):
    """PostgreSQL's SUM and AVG are numeric (Decimal): as int when whole, else float."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def sql_rows(conn, sql: str, **params) -> list[dict]:
    return [{k: _number(v) for k, v in r.items()} for r in conn.execute(sa.text(sql), params).mappings()]


def first_flow(conn, where: str, **params) -> dict | None:
    rows = sql_rows(conn, f"SELECT * FROM flows WHERE {where} ORDER BY ts_ns, id LIMIT 1", **params)
    return rows[0] if rows else None


def sql_in(column: str, values, params: dict, name: str | None = None) -> str:
    """``column IN (:name_0, ...)`` with the values bound into ``params`` (``1 = 0`` when empty)."""
    values = list(values)
    name = name or column
    if not values:
        return "1 = 0"
    for i, v in enumerate(values):
        params[f"{name}_{i}"] = v
    return f"{column} IN ({', '.join(f':{name}_{i}' for i in range(len(values)))})"
