"""Alerts: signature and behaviour alerts of ``wiretrail replay``, with their EVE JSON.

The columns are frozen here (not read from ``schema``), so this migration keeps meaning what it
meant when a later revision changes the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

INDEXED = ("ts_ns", "signature_id", "src_a", "dest_a", "uid")


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "alerts",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("capture_id", bigid, nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.String(24), nullable=True),
        sa.Column("flow_id", sa.BigInteger(), nullable=True),
        sa.Column("community_id", sa.String(64), nullable=True),
        sa.Column("src_ip", sa.String(45), nullable=False),
        sa.Column("src_port", sa.Integer(), nullable=True),
        sa.Column("dest_ip", sa.String(45), nullable=False),
        sa.Column("dest_port", sa.Integer(), nullable=True),
        sa.Column("src_a", sa.LargeBinary(16), nullable=True),
        sa.Column("dest_a", sa.LargeBinary(16), nullable=True),
        sa.Column("proto", sa.String(24), nullable=True),
        sa.Column("app_proto", sa.Text(), nullable=True),
        sa.Column("gid", sa.BigInteger(), nullable=False),
        sa.Column("signature_id", sa.BigInteger(), nullable=False),
        sa.Column("rev", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tactic", sa.Text(), nullable=True),
        sa.Column("technique", sa.Text(), nullable=True),
        sa.Column("eve", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_alerts_capture_id_captures"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    for col in INDEXED:
        op.create_index(f"ix_alerts_{col}", "alerts", [col])


def downgrade() -> None:
    for col in INDEXED:
        op.drop_index(f"ix_alerts_{col}", "alerts")
    op.drop_table("alerts")
