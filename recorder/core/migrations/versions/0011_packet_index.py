"""Packet index: where each flow key's packets lie in each capture file (record byte ranges,
delta-encoded varints; recorder.core.packetindex).

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
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("capture_id", bigid, nullable=False),
        sa.Column("key_hash", sa.BigInteger(), nullable=False),
        sa.Column("first_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("ranges", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_packet_index_capture_id_captures"),
        sa.PrimaryKeyConstraint("id", name="pk_packet_index"),
    )
    op.create_index("ix_packet_index_key_hash", "packet_index", ["key_hash"])
    op.create_index("ix_packet_index_capture_id", "packet_index", ["capture_id"])


def downgrade() -> None:
    op.drop_index("ix_packet_index_capture_id", "packet_index")
    op.drop_index("ix_packet_index_key_hash", "packet_index")
    op.drop_table("packet_index")
