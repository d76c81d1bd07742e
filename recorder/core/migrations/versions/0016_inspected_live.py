"""Live signatures: how many of a recorder file's packets the signature engine in the parsers'
process inspected as they passed (the rest are inspected from the sealed file: catch-up).

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        # packets the live engine inspected; NULL: not known (not inspected live, or not yet)
        batch.add_column(sa.Column("inspected_live", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        batch.drop_column("inspected_live")
