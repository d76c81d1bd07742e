"""Live detection's notification queue: alerts waiting for (or delivered to) a channel.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "notify_queue",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("queued_ns", sa.BigInteger(), nullable=False),
        sa.Column("alert", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_try_ns", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_ns", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_notify_queue_channel_sent_ns", "notify_queue", ["channel", "sent_ns"])


def downgrade() -> None:
    op.drop_index("ix_notify_queue_channel_sent_ns", "notify_queue")
    op.drop_table("notify_queue")
