"""What a database holds, in one look (``wiretrail db info``): revision, counts, time span, the
captures, protocol records per log and parser failures."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.schema import APP_TABLES, captures, flows, parser_failures
from recorder.core.store.database import to_int
from recorder.core.store.migrate import SCHEMA_HEAD, Migrations


class Summary(Migrations):
    """The store's ``info``."""

    def info(self) -> dict:
        """Database name (password masked), revision, counts, time span and the captures."""
        revision = self.revision()
        out: dict[str, Any] = {
            "database": self.display, "backend": self.engine.dialect.name,
            "revision": revision, "head": SCHEMA_HEAD,  # equal to alembic's head (a test keeps it so)
            "capture_count": 0, "flow_count": 0, "first_ts_ns": None, "last_ts_ns": None,
            "packets": 0, "malformed": 0, "captures": [], "app_records": {}, "parser_failures": [],
        }
        if revision is None:
            return out
        with self.db_errors("read database"), self.engine.connect() as conn:
            f = conn.execute(sa.select(
                sa.func.count(), sa.func.min(flows.c.ts_ns),
                sa.func.max(flows.c.ts_ns + sa.func.coalesce(flows.c.duration_ns, 0)),
            )).one()
            c = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(captures.c.packets), 0),
                sa.func.coalesce(sa.func.sum(captures.c.malformed), 0),
            )).one()
            caps = [dict(r) for r in conn.execute(captures.select().order_by(captures.c.id)).mappings()]
            out.update(app_summary(conn))
        out.update(flow_count=int(f[0]), first_ts_ns=to_int(f[1]), last_ts_ns=to_int(f[2]),
                   capture_count=int(c[0]), packets=int(c[1]), malformed=int(c[2]), captures=caps)
        return out


def app_summary(conn: Connection) -> dict:
    """Counts per application log and parser failures per capture and service (``Store.info``)."""
    counts = {name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
              for name, t in APP_TABLES.items()}
    fails = conn.execute(
        sa.select(parser_failures.c.capture_id, parser_failures.c.service, sa.func.sum(parser_failures.c.count))
        .group_by(parser_failures.c.capture_id, parser_failures.c.service)
        .order_by(parser_failures.c.capture_id, parser_failures.c.service)).all()
    return {"app_records": counts,
            "parser_failures": [{"capture_id": c, "service": s, "count": int(n)} for c, s, n in fails]}
