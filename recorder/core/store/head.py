"""The schema revision this version needs, and the check every read command makes against it.

Pure (no SQLAlchemy, no alembic): the SQLite listings (``sqlite_reader``) check it too.
"""

from __future__ import annotations

from recorder.core.errors import StoreError

# The newest migration in migrations/versions (a test keeps this equal to alembic's head), so the
# common case -- a database already at head -- is checked without importing alembic.
SCHEMA_HEAD = "0017"


def require_head(current: str | None, display: str) -> None:
    """Raise StoreError (naming the database ``display``) unless ``current`` is ``SCHEMA_HEAD``."""
    if current is None:
        raise StoreError("no Wiretrail tables here; run wiretrail ingest or wiretrail db migrate", path=display)
    if current != SCHEMA_HEAD:
        raise StoreError(f"schema revision {current}, this version needs {SCHEMA_HEAD}; run wiretrail db migrate",
                         path=display)
