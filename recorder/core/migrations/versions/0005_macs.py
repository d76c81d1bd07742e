"""Hardware addresses: the MACs seen for local addresses (``recorder.core.decode.mactable``), for hosts.

The columns are frozen here (not read from ``schema``), so this migration keeps meaning what it
meant when a later revision changes the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "macs",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("capture_id", bigid, nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("addr", sa.Text(), nullable=True),
        sa.Column("addr_a", sa.LargeBinary(16), nullable=True),
        sa.Column("mac", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_macs_capture_id_captures"),
        sa.PrimaryKeyConstraint("id", name="pk_macs"),
    )
    op.create_index("ix_macs_ts_ns", "macs", ["ts_ns"])
    op.create_index("ix_macs_addr_a", "macs", ["addr_a"])


def downgrade() -> None:
    op.drop_index("ix_macs_addr_a", "macs")
    op.drop_index("ix_macs_ts_ns", "macs")
    op.drop_table("macs")
