"""Long flows: the flows that lasted over an hour, indexed by start (a partial index), so the
flows still going at a time are found by index ranges however long before they began
(``wiretrail extract --since``: a long attacker session).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None

LONG = "duration_ns > 3600000000000"  # store.listing.LONG_FLOW_SQL, as the schema writes it


def upgrade() -> None:
    op.create_index("ix_flows_long", "flows", ["ts_ns"], sqlite_where=sa.text(LONG), postgresql_where=sa.text(LONG))


def downgrade() -> None:
    op.drop_index("ix_flows_long", table_name="flows")
