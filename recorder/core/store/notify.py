"""The ``notify_queue`` table: alerts waiting for a notification channel, and what was sent.

A row is one alert for one channel. The notifier reads a channel's unsent rows, sends them as
one message and marks them with the same ``sent_ns``; a failed send leaves them unsent with a
later ``next_try_ns``. Nothing is deleted: the rows are the record of what the owner was told.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlalchemy as sa

from recorder.core.schema import notify_queue
from recorder.core.store.database import Database


class NotifyQueue(Database):
    """The store's methods for the notification queue."""

    def queue_notifications(self, items: Iterable[tuple[str, dict]], now_ns: int) -> int:
        """Queue ``(channel, alert)`` pairs (``alert`` a JSON-able dict); returns how many."""
        rows = [{"channel": ch, "queued_ns": now_ns, "alert": json.dumps(a, sort_keys=True, default=str),
                 "attempts": 0, "next_try_ns": 0} for ch, a in items]
        if rows:
            with self.db_errors("queue notifications"), self.engine.begin() as conn:
                conn.execute(notify_queue.insert(), rows)
        return len(rows)

    def record_sent(self, channel: str, item: dict, now_ns: int) -> None:
        """A message sent outside the queue (the daily digest), recorded as sent."""
        with self.db_errors("queue notifications"), self.engine.begin() as conn:
            conn.execute(notify_queue.insert(), [{"channel": channel, "queued_ns": now_ns, "sent_ns": now_ns,
                                                  "alert": json.dumps(item, sort_keys=True), "attempts": 1,
                                                  "next_try_ns": 0}])

    def pending_notifications(self, channel: str, limit: int = 1000) -> list[dict]:
        """The channel's unsent rows, oldest first: id, queued_ns, attempts, next_try_ns, error,
        alert (the dict)."""
        q = notify_queue.c
        stmt = (sa.select(q.id, q.queued_ns, q.attempts, q.next_try_ns, q.error, q.alert)
                .where(q.channel == channel, q.sent_ns.is_(None)).order_by(q.id).limit(limit))
        with self.db_errors("read the notification queue"), self.engine.connect() as conn:
            return [{**r._asdict(), "alert": json.loads(r.alert)} for r in conn.execute(stmt)]

    def mark_notified(self, ids: list[int], sent_ns: int) -> None:
        with self.db_errors("update the notification queue"), self.engine.begin() as conn:
            for i in range(0, len(ids), 500):
                conn.execute(notify_queue.update().where(notify_queue.c.id.in_(ids[i:i + 500]))
                             .values(sent_ns=sent_ns, error=None))

    def mark_notify_failed(self, ids: list[int], next_try_ns: int, error: str) -> None:
        q = notify_queue.c
        with self.db_errors("update the notification queue"), self.engine.begin() as conn:
            for i in range(0, len(ids), 500):
                conn.execute(notify_queue.update().where(q.id.in_(ids[i:i + 500]))
                             .values(attempts=q.attempts + 1, next_try_ns=next_try_ns, error=error[:500]))

    def messages_sent(self, channel: str, since_ns: int) -> int:
        """How many messages the channel sent at or after ``since_ns`` (for its rate limit)."""
        q = notify_queue.c
        stmt = sa.select(sa.func.count(sa.distinct(q.sent_ns))).where(q.channel == channel, q.sent_ns >= since_ns)
        with self.db_errors("read the notification queue"), self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
