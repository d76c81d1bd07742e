"""The schema's migrations (Alembic, in ``recorder/core/migrations``) and the revision this code
needs (``SCHEMA_HEAD``): creating, checking and upgrading a database's tables.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.errors import StoreError
from recorder.core.schema import metadata
from recorder.core.store.database import Database

# package data found with importlib.resources (not beside this file: it may be compiled elsewhere)
MIGRATIONS_DIR = Path(str(files("recorder.core") / "migrations"))
_MIGRATION_LOCK = int.from_bytes(b"wiretrl")  # PostgreSQL advisory lock key held while migrating

# The newest migration in migrations/versions (a test keeps this equal to alembic's head), so the
# common case -- a database already at head -- is checked without importing alembic.
SCHEMA_HEAD = "0016"


def _schema_lock(conn: Connection) -> None:
    """Processes starting together change the schema in turn; on SQLite this also makes the DDL
    one transaction (pysqlite would otherwise run it outside any transaction)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Migrations(Database):
    """A database's schema: its revision, and bringing it to ``SCHEMA_HEAD``."""

    def _alembic_config(self, connection: Connection):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        return cfg

    def head(self) -> str:
        """The newest migration revision this code knows."""
        if self._head is None:
            from alembic.script import ScriptDirectory

            with self.db_errors("read migrations"):
                script = ScriptDirectory(str(MIGRATIONS_DIR))
                self._head = script.get_current_head()
        return self._head or ""

    def revision(self) -> str | None:
        """The database's migration revision, None for an empty database.

        Read with one plain query (what alembic stores in ``alembic_version``), so commands that
        only check the schema do not pay for importing alembic.
        """
        with self.db_errors("open database"), self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def migrate(self) -> str:
        """Bring the schema to the newest revision (alembic upgrade head); returns the revision."""
        from alembic import command
        from alembic.util import CommandError

        current = self.revision()
        head = self.head()
        try:
            with self.db_errors("migrate database"), self.engine.begin() as conn:
                _schema_lock(conn)
                command.upgrade(self._alembic_config(conn), "head")
        except CommandError as err:
            raise StoreError(f"cannot migrate database at revision {current} to {head}: {err}",
                             path=self.display) from err
        return head

    def ensure_schema(self) -> None:
        """Migrate only when the database is not at head (one cheap query otherwise).

        An empty database gets the current schema directly and is stamped at head, as Alembic
        recommends for new databases (a test checks that this equals running every migration);
        an older one is migrated.
        """
        current = self.revision()
        if current == SCHEMA_HEAD:
            return
        if current is None:
            with self.db_errors("create database"), self.engine.begin() as conn:
                _schema_lock(conn)
                if not sa.inspect(conn).has_table("alembic_version"):  # nobody else created it meanwhile
                    metadata.create_all(conn)
                    conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                                         "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
                    conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                                 {"v": SCHEMA_HEAD})
            if self.revision() == SCHEMA_HEAD:
                return
        self.migrate()

    def require_schema(self) -> None:
        """Raise StoreError unless the database holds the current schema (for read commands)."""
        current = self.revision()
        if current is None:
            raise StoreError("no Wiretrail tables here; run wiretrail ingest or wiretrail db migrate",
                             path=self.display)
        if current != SCHEMA_HEAD:  # not head(): a read command need not import alembic
            raise StoreError(f"schema revision {current}, this version needs {SCHEMA_HEAD}; "
                             "run wiretrail db migrate", path=self.display)
