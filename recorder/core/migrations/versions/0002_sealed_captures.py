"""Sealed capture files from the recorder: interface, drops, hash chain.

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


def downgrade() -> None:
    op.drop_index("ix_captures_first_ts_ns", "captures")
    with op.batch_alter_table("captures") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
