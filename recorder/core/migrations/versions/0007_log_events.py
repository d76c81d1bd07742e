"""Log events: log_sources (one row per log file read) and log_events (one row per event or
unparsed line), for ``wiretrail logs``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "log_sources",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("ingested_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_sources"),
    )
    op.create_index("ix_log_sources_sha256", "log_sources", ["sha256"])
    op.create_table(
        "log_events",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("source_id", bigid, nullable=True),
        sa.Column("line", sa.BigInteger(), nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("src_ip", sa.String(45), nullable=True),
        sa.Column("src_a", sa.LargeBinary(16), nullable=True),
        sa.Column("src_port", sa.Integer(), nullable=True),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("fields", sa.Text(), nullable=True),
        sa.Column("uid", sa.String(24), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["log_sources.id"], name="fk_log_events_source_id_log_sources"),
        sa.PrimaryKeyConstraint("id", name="pk_log_events"),
    )
    for col in ("ts_ns", "src_a", "account", "source_id", "uid"):
        op.create_index(f"ix_log_events_{col}", "log_events", [col])


def downgrade() -> None:
    for col in ("ts_ns", "src_a", "account", "source_id", "uid"):
        op.drop_index(f"ix_log_events_{col}", "log_events")
    op.drop_table("log_events")
    op.drop_index("ix_log_sources_sha256", "log_sources")
    op.drop_table("log_sources")
