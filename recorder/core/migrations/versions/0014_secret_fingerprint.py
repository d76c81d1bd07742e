"""Encrypted credential secrets: the keyed fingerprint that keeps a reused password visible.

With the recorder's ``encrypt_to``, ``credentials.secret`` holds the secret encrypted (armored
age) and ``secret_fp`` an HMAC of it under a key kept on the sensor (``recorder.core.secretseal``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("secret_fp", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("secret_fp")
