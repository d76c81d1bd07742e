"""The PostgreSQL test database: one schema per test process (so parallel runs against the same
server do not collide), and emptying it. The fixtures ``pg_url`` and ``db_url`` (tests/conftest.py)
use these; a test that needs a fresh store on PostgreSQL calls ``pg_reset`` itself."""

from __future__ import annotations

import os
from urllib.parse import quote

PG_ENV = "WIRETRAIL_TEST_PG_URL"


def pg_schema() -> str:
    """This process's schema."""
    return f"wt_test_{os.getpid()}"


def pg_url(base: str) -> str:
    """``base`` with its search_path set to this process's schema."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={pg_schema()}')}"


def pg_reset(url: str, *, recreate: bool = True) -> None:
    """Drop every table (alembic_version included) by recreating this process's schema."""
    from recorder.core.store import Store

    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {pg_schema()} CASCADE")
            if recreate:
                conn.exec_driver_sql(f"CREATE SCHEMA {pg_schema()}")
    finally:
        store.close()
