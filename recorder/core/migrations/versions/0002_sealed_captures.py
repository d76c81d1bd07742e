"""Sealed capture files from the recorder: interface, drops, hash chain; interim records of
connections still open (open_flows).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("origin", sa.String(16)),  # "ingest" (an investigator's file) or "recorder" (sealed by the daemon)
    ("interface", sa.Text()),
    ("kernel_drops", sa.BigInteger()),  # packets the kernel dropped while this file was open
    ("iface_drops", sa.BigInteger()),  # packets the interface (driver) dropped meanwhile
    ("sealed_at", sa.BigInteger()),  # ns since the epoch when the file was fsynced and renamed
    ("repaired", sa.Boolean(create_constraint=False)),  # left unsealed by a crash, truncated and sealed
    ("prev_chain", sa.String(64)),  # chain hash of the previous sealed file of this sensor
    ("chain", sa.String(64)),  # sha256 over prev_chain, this file's sha256 and its record
    ("deleted_at", sa.BigInteger()),  # ns since the epoch when retention deleted the file
    ("deleted_reason", sa.Text()),  # which retention limit deleted it
)


def upgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index("ix_captures_first_ts_ns", "captures", ["first_ts_ns"])
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "open_flows",
        sa.Column("id", bigid, nullable=False, autoincrement=True),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("as_of_ns", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.String(24), nullable=False),
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
        sa.Column("capture_id", bigid, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_open_flows"),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_open_flows_capture_id_captures"),
    )
    for column in ("stream", "ts_ns", "uid"):
        op.create_index(f"ix_open_flows_{column}", "open_flows", [column])


def downgrade() -> None:
    for column in ("stream", "ts_ns", "uid"):
        op.drop_index(f"ix_open_flows_{column}", "open_flows")
    op.drop_table("open_flows")
    op.drop_index("ix_captures_first_ts_ns", "captures")
    with op.batch_alter_table("captures") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
