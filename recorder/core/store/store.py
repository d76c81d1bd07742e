"""``Store``: one Wiretrail database with every table's methods (the package's seams, combined)."""

from __future__ import annotations

from recorder.core.store.alerts import AlertTable
from recorder.core.store.captures import CaptureTable
from recorder.core.store.flows import FlowTable
from recorder.core.store.notify import NotifyQueue
from recorder.core.store.packets import PacketIndexTable
from recorder.core.store.summary import Summary


class Store(CaptureTable, FlowTable, AlertTable, NotifyQueue, PacketIndexTable, Summary):
    """One Wiretrail database. ``db`` is a file path (SQLite) or a SQLAlchemy URL.

    ``create=False`` refuses to create a missing SQLite file (for read-only commands).
    The object is safe to share between threads; ``close()`` disposes of the connection pool.
    """
