"""Shared fixtures. Keep each fixture small and documented; add yours below."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest

PG_ENV = "WIRETRAIL_TEST_PG_URL"


def _pg_schema() -> str:
    # One schema per test process, so parallel runs against the same database do not collide.
    return f"wt_test_{os.getpid()}"


def _pg_url(base: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={_pg_schema()}')}"


def _pg_reset(url: str, *, recreate: bool = True) -> None:
    """Drop every table (alembic_version included) by recreating this process's schema."""
    from recorder.core.store import Store

    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_pg_schema()} CASCADE")
            if recreate:
                conn.exec_driver_sql(f"CREATE SCHEMA {_pg_schema()}")
    finally:
        store.close()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test URL (search_path set to a schema of this process), or skip."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set; run: export {PG_ENV}=$(bash tests/pg_start.sh)")
    url = _pg_url(base)
    yield url
    _pg_reset(url, recreate=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A database for one test, on SQLite (a new file) and on PostgreSQL (emptied first)."""
    if request.param == "sqlite":
        return str(tmp_path / "wiretrail.db")
    url = request.getfixturevalue("pg_url")
    _pg_reset(url)
    return url
