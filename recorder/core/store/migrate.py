"""The schema's migrations (Alembic, in ``recorder/core/migrations``) and the revision this code
needs (``SCHEMA_HEAD``): creating, checking and upgrading a database's tables.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.errors import StoreError
from recorder.core.schema import APP_TABLES, metadata
from recorder.core.store.database import Database
from recorder.core.store.head import SCHEMA_HEAD, require_head

# package data found with importlib.resources (not beside this file: it may be compiled elsewhere)
MIGRATIONS_DIR = Path(str(files("recorder.core") / "migrations"))
_MIGRATION_LOCK = int.from_bytes(b"wiretrl")  # PostgreSQL advisory lock key held while migrating



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
            self.build_app_indexes()  # a bulk load that ended without building them (deferred_app_indexes)
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
        require_head(self.revision(), self.display)  # not head(): a read command need not import alembic

    def deferred_app_indexes(self) -> bool:
        """On SQLite, when every protocol table is empty (a first ingest into the store): drop their
        secondary indexes for a bulk load; True if dropped, and ``build_app_indexes`` is then due.

        Building them once after the load takes less CPU than keeping them up to date row by row
        (measured: README, "Per-record work out of the parsers' hot path"). Never with rows already
        there (rebuilding theirs would cost more), never on PostgreSQL (not measured). A load that
        does not end (the process killed) leaves them missing until ``ensure_schema``, run by every
        command that writes, builds them again."""
        if not self.is_sqlite:
            return False
        with self.db_errors("defer protocol indexes"), self.engine.begin() as conn:
            _schema_lock(conn)  # the check and the drop in one transaction, writers in turn
            q = conn.dialect.identifier_preparer.quote
            for table in APP_TABLES.values():
                if conn.exec_driver_sql(f"SELECT 1 FROM {q(table.name)} LIMIT 1").first() is not None:
                    return False
            for ix in _app_indexes():
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q(ix.name)}")
        return True

    def build_app_indexes(self) -> None:
        """On SQLite, create the protocol tables' indexes that are missing (after a bulk load with
        ``deferred_app_indexes``, or one that was interrupted): one query when none is."""
        if not self.is_sqlite:
            return
        with self.db_errors("build protocol indexes"), self.engine.connect() as conn:
            present = {name for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        missing = [ix for ix in _app_indexes() if ix.name not in present]
        if not missing:
            return
        with self.db_errors("build protocol indexes"), self.engine.begin() as conn:
            _schema_lock(conn)
            for ix in missing:
                conn.execute(sa.schema.CreateIndex(ix, if_not_exists=True))


def _app_indexes() -> list[sa.Index]:
    """The protocol tables' secondary indexes (none unique), by name."""
    return sorted((ix for table in APP_TABLES.values() for ix in table.indexes), key=lambda ix: ix.name)
