"""Initial schema: captures and flows.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# A 64-bit autoincrement key; on SQLite only INTEGER PRIMARY KEY is the rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "captures",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("link_types", sa.Text(), nullable=False),
        sa.Column("first_ts_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_ts_ns", sa.BigInteger(), nullable=True),
        sa.Column("packets", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("malformed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("ingested_at", sa.BigInteger(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_captures"),
        sa.UniqueConstraint("sha256", name="uq_captures_sha256"),
    )
    op.create_table(
        "flows",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("uid", sa.String(24), nullable=False),
        sa.Column("capture_id", BigId, nullable=True),
        sa.Column("file_offset", sa.BigInteger(), nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration_ns", sa.BigInteger(), nullable=True),
        sa.Column("orig_h", sa.String(45), nullable=False),
        sa.Column("orig_p", sa.Integer(), nullable=False),
        sa.Column("resp_h", sa.String(45), nullable=False),
        sa.Column("resp_p", sa.Integer(), nullable=False),
        sa.Column("orig_a", sa.LargeBinary(16), nullable=False),
        sa.Column("resp_a", sa.LargeBinary(16), nullable=False),
        sa.Column("proto", sa.String(24), nullable=False),
        sa.Column("ip_proto", sa.Integer(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("orig_bytes", sa.BigInteger(), nullable=True),
        sa.Column("resp_bytes", sa.BigInteger(), nullable=True),
        sa.Column("conn_state", sa.String(8), nullable=True),
        sa.Column("local_orig", sa.Boolean(create_constraint=False), nullable=True),
        sa.Column("local_resp", sa.Boolean(create_constraint=False), nullable=True),
        sa.Column("missed_bytes", sa.BigInteger(), nullable=True),
        sa.Column("history", sa.Text(), nullable=True),
        sa.Column("orig_pkts", sa.BigInteger(), nullable=True),
        sa.Column("orig_ip_bytes", sa.BigInteger(), nullable=True),
        sa.Column("resp_pkts", sa.BigInteger(), nullable=True),
        sa.Column("resp_ip_bytes", sa.BigInteger(), nullable=True),
        sa.Column("tunnel_parents", sa.Text(), nullable=True),
        sa.Column("community_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flows"),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_flows_capture_id_captures"),
    )
    for column in ("ts_ns", "orig_a", "resp_a", "orig_p", "resp_p", "uid", "conn_state"):
        op.create_index(f"ix_flows_{column}", "flows", [column])


def downgrade() -> None:
    op.drop_table("flows")
    op.drop_table("captures")
