"""A lean read of a SQLite store for ``extract`` (every selection but ``--alert`` and
``--incident``): the standard
library's sqlite3 (``SqliteReader``) rather than SQLAlchemy and the schema module (whose import,
with every parser's log tables, was most of extract's start-up: ``python -X importtime``).

The reader runs the store's own queries (``recorder.core.store.listing``), so both paths choose
the same flows and read the same index rows. It is tried only for a plain SQLite file; when the
file is not a store it can read (no such table or column, not a database), ``open_lite`` returns
None and the command takes the usual path, which says what is wrong.
Its reads of the file are declared random to the kernel (``random_reads``): a lookup touches a
few pages here and there, and the kernel's read-ahead (8 MB on a virtual disk) would otherwise
read most of the file for them.
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
    random_reads(os.path.realpath(db))
    return reader


def random_reads(path: str) -> None:
    """Tell the kernel that this process's open descriptors of ``path`` (sqlite3's, found in
    /proc/self/fd) are read at random places: no read-ahead (``posix_fadvise``, per descriptor).
    Nothing where that is not available."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                advise(int(fd), 0, 0, os.POSIX_FADV_RANDOM)
        except OSError:
            continue
