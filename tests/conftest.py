"""Shared fixtures. Keep each fixture small and documented; add yours below. Helpers a test
imports live in tests/helpers (no test module imports a conftest)."""

from __future__ import annotations

import os

import pytest

from tests.helpers.postgres import PG_ENV, pg_reset
from tests.helpers.postgres import pg_url as schema_url


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test URL (search_path set to a schema of this process), or skip."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set; run: export {PG_ENV}=$(bash tests/pg_start.sh)")
    url = schema_url(base)
    yield url
    pg_reset(url, recreate=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A database for one test, on SQLite (a new file) and on PostgreSQL (emptied first)."""
    if request.param == "sqlite":
        return str(tmp_path / "wiretrail.db")
    url = request.getfixturevalue("pg_url")
    pg_reset(url)
    return url
