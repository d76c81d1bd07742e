"""The ``captures`` table: the capture files read or written, their hashes and chain of custody."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from recorder.core.errors import StoreError
from recorder.core.schema import CAPTURE_FIELDS, captures
from recorder.core.store.database import Database, check_fields
from recorder.core.store.listing import captures_query


class CaptureTable(Database):
    """The store's methods for capture files."""

    def add_capture(self, **fields: Any) -> int:
        """Record a capture file; returns its id. ``ingested_at`` defaults to now (ns, UTC)."""
        check_fields(fields, CAPTURE_FIELDS, "capture")
        fields.setdefault("ingested_at", time.time_ns())
        with self.db_errors("record capture"), self.engine.begin() as conn:
            result = conn.execute(captures.insert().values(**fields))
            return int(result.inserted_primary_key[0])

    def capture_by_sha256(self, sha256: str) -> dict | None:
        with self.db_errors("read captures"), self.engine.connect() as conn:
            row = conn.execute(captures.select().where(captures.c.sha256 == sha256)).mappings().first()
            return dict(row) if row is not None else None

    def update_capture(self, capture_id: int, **fields: Any) -> None:
        check_fields(fields, CAPTURE_FIELDS, "capture")
        if not fields:
            return
        with self.db_errors("update capture"), self.engine.begin() as conn:
            result = conn.execute(captures.update().where(captures.c.id == capture_id).values(**fields))
            if result.rowcount == 0:
                raise StoreError(f"no capture with id {capture_id}", path=self.display)

    def captures(self, *, size: int | None = None) -> list[dict]:
        """Captures in the store, oldest first; with ``size``, only files of that many bytes."""
        return list(self.stream_query(captures_query(size=size), "read captures"))

    def last_chain(self, sensor: str | None, interface: str | None) -> str | None:
        """The chain value of the newest sealed capture of one recorder stream, or None."""
        query = (sa.select(captures.c.chain).where(
            captures.c.origin == "recorder", captures.c.sealed_at.is_not(None),
            captures.c.sensor == sensor, captures.c.interface == interface)
            .order_by(captures.c.sealed_at.desc(), captures.c.id.desc()).limit(1))
        with self.db_errors("read captures"), self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def capture_by_path(self, path: str) -> dict | None:
        """The newest capture row recorded for ``path``."""
        query = captures.select().where(captures.c.path == path).order_by(captures.c.id.desc()).limit(1)
        with self.db_errors("read captures"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            return dict(row) if row is not None else None
