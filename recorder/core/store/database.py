"""The database itself: the engine (SQLite in WAL mode, or PostgreSQL), and every driver failure
turned into one ``StoreError`` line naming the database.

    db = Database("case.db")                    # or "postgresql://user:pw@host/db"
    with db.db_errors("read flows"), db.engine.connect() as conn:
        ...

``Store`` (``recorder.core.store``) builds on this class with the schema and each table's methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from recorder.core.errors import StoreError
from recorder.core.secure_files import PRIVATE, ensure_private
from recorder.core.store.listing import Query

DEFAULT_DB = "./wiretrail.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def engine_url(db: str) -> tuple[sa.URL, str]:
    """SQLAlchemy URL and the name shown to users (the path, or the URL with password masked)."""
    if "://" not in db:
        return sa.URL.create("sqlite", database=db), db
    if db.startswith("postgres://"):  # the libpq/Heroku spelling
        db = "postgresql://" + db[len("postgres://"):]
    url = make_url(db)
    shown = url.render_as_string(hide_password=True)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url, shown


def first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -65536")  # 64 MiB: index inserts of a large ingest stay in memory
    finally:
        cur.close()


class Database:
    """One Wiretrail database. ``db`` is a file path (SQLite) or a SQLAlchemy URL.

    ``create=False`` refuses to create a missing SQLite file (for read-only commands).
    The object is safe to share between threads; ``close()`` disposes of the connection pool.
    """

    def __init__(self, db: str = DEFAULT_DB, *, create: bool = True, file_mode: int = PRIVATE,
                 secrets=None) -> None:
        self.db = db
        self.secrets = secrets  # a secretseal.SecretSealer: protocol records' secrets written encrypted
        url, self.display = engine_url(db)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        path = (url.database or "") if self.is_sqlite else ""
        if self.is_sqlite and not create:
            if path in ("", ":memory:") or not Path(path).exists():
                raise StoreError(f"no database at {path or db}; run wiretrail ingest first")
        if path not in ("", ":memory:") and not path.startswith("file:"):
            # a new SQLite file is private (secure_files): created before the engine connects,
            # and SQLite gives its -wal and -shm files the same mode. If it cannot be made here,
            # SQLite reports why when it connects.
            try:
                ensure_private(path, file_mode)
            except OSError:
                pass
        self._head: str | None = None
        with self.db_errors("open database"):
            self.engine: Engine = sa.create_engine(url)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)

    @contextmanager
    def db_errors(self, action: str) -> Iterator[None]:
        """Turn any driver/SQLAlchemy/OS error inside the block into a one-line StoreError
        (``cannot ACTION: reason``, naming the database)."""
        try:
            yield
        except StoreError:
            raise
        except (sa.exc.SQLAlchemyError, OSError, ImportError) as err:
            raise StoreError(f"cannot {action}: {first_line(err)}", path=self.display) from err
        except Exception as err:
            if self._is_dbapi_error(err):
                raise StoreError(f"cannot {action}: {first_line(err)}", path=self.display) from err
            raise


    def _is_dbapi_error(self, err: BaseException) -> bool:
        dbapi = getattr(getattr(self, "engine", None), "dialect", None)
        dbapi = getattr(dbapi, "loaded_dbapi", None)
        return dbapi is not None and isinstance(err, dbapi.Error)

    def stream_query(self, query: Query, action: str, batch: int = 1000) -> Iterator[dict]:
        """The rows of a listing's ``query`` (SQL text, ``listing``) as dicts, ``batch`` at a time."""
        with self.db_errors(action), self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(sa.text(query.sql), query.params)
            for part in result.mappings().partitions():
                for row in part:
                    yield query.row(dict(row))

    def stream(self, stmt: sa.Select, batch: int, action: str = "read flows") -> Iterator[dict]:
        """The rows of ``stmt`` as dicts, fetched ``batch`` at a time."""
        with self.db_errors(action), self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            for part in result.mappings().partitions():
                for row in part:
                    yield dict(row)


    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_fields(fields: dict, allowed: tuple[str, ...], what: str) -> None:
    """Raise TypeError naming the keys of ``fields`` not in ``allowed``."""
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


def to_int(v: Any) -> int | None:
    return None if v is None else int(v)
