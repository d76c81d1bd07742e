"""A lean read of a SQLite store for ``extract --uid``/``--community-id``: the standard
library's sqlite3 (``SqliteReader``) rather than SQLAlchemy and the schema module (whose import,
with every parser's log tables, was most of extract's start-up: ``python -X importtime``).

The reader runs the store's own queries (``recorder.core.store.listing``), so both paths choose
the same flows and read the same index rows. It is tried only for a plain SQLite file; when the
file is not a store it can read (no such table or column, not a database), ``open_lite`` returns
None and the command takes the usual path, which says what is wrong.
"""

from __future__ import annotations

import os

from recorder.core.errors import StoreError
from recorder.core.store.sqlite_reader import SqliteReader

# what extract reads: a file without these is left to the Store, which says what is wrong
_NEEDED = {
    "alembic_version": "version_num",
    "flows": "uid, community_id, ip_proto, orig_a, resp_a, orig_p, resp_p, ts_ns, capture_id",
    "packet_index": "capture_id, bucket, first_ts_ns, last_ts_ns, directory, ranges",
    "captures": "id, path, format, bytes, deleted_at, deleted_reason",
}


def open_lite(db: str) -> SqliteReader | None:
    """The store file ``db`` opened read-only with sqlite3, or None when it is a database URL,
    not an existing file, or not a store this reader knows."""
    if "://" in db or not os.path.isfile(db):
        return None
    try:
        reader = SqliteReader(db, read_only=True)
    except StoreError:
        return None
    if not reader.has_columns(_NEEDED):
        reader.close()
        return None
    return reader
