"""Packet index: where each flow key's packets lie in each capture file (record byte ranges,
delta-encoded varints; recorder.core.flow.packetindex).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "packet_index",
        sa.Column("bucket", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("capture_id", bigid, nullable=False, autoincrement=False),
        sa.Column("first_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.Integer(), nullable=False),
        sa.Column("directory", sa.LargeBinary(), nullable=False),
        sa.Column("ranges", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_packet_index_capture_id_captures"),
        sa.PrimaryKeyConstraint("bucket", "capture_id", name="pk_packet_index"),
        sqlite_with_rowid=False,  # clustered on (bucket, capture): a lookup is one search per file
    )


def downgrade() -> None:
    op.drop_table("packet_index")
