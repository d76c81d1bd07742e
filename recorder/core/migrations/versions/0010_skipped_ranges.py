"""Damaged captures: the byte ranges a read skipped over damage (resynchronised after a corrupt
record header), per capture.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        # "start-end start-end ...": byte offsets, end exclusive; NULL when nothing was skipped
        batch.add_column(sa.Column("skipped_ranges", sa.Text(), nullable=True))
        batch.add_column(sa.Column("skipped_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        batch.drop_column("skipped_bytes")
        batch.drop_column("skipped_ranges")
