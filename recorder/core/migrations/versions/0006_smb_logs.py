"""SMB logs: smb_mapping (shares mapped) and smb_files (files opened, deleted, renamed), with
Zeek's fields, for ``apps.smb``.

The columns are frozen here (not read from ``apps.records``), so this migration keeps meaning
what it meant when a later revision changes the logs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

BIG, INT, TEXT = sa.BigInteger, sa.Integer, sa.Text

ENDPOINTS = (("uid", lambda: sa.String(24)), ("orig_h", lambda: sa.String(45)), ("orig_p", INT),
             ("resp_h", lambda: sa.String(45)), ("resp_p", INT), ("orig_a", lambda: sa.LargeBinary(16)),
             ("resp_a", lambda: sa.LargeBinary(16)))

TABLES = {
    "smb_files": (
        ("fuid", TEXT), ("action", TEXT), ("path", TEXT), ("name", TEXT), ("size", BIG), ("prev_name", TEXT),
        ("times_modified_ns", BIG), ("times_accessed_ns", BIG), ("times_created_ns", BIG),
        ("times_changed_ns", BIG),
    ),
    "smb_mapping": (
        ("path", TEXT), ("service", TEXT), ("native_file_system", TEXT), ("share_type", TEXT),
    ),
}
INDEXED = ("ts_ns", "uid", "orig_a", "resp_a")


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    for name, own in TABLES.items():
        columns = [
            sa.Column("id", bigid, primary_key=True, autoincrement=True),
            sa.Column("capture_id", bigid, nullable=True),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        ]
        columns += [sa.Column(col, type_(), nullable=True) for col, type_ in ENDPOINTS + own]
        op.create_table(
            name, *columns,
            sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name=f"fk_{name}_capture_id_captures"),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        )
        for col in INDEXED:
            op.create_index(f"ix_{name}_{col}", name, [col])


def downgrade() -> None:
    for name in reversed(TABLES):
        for col in INDEXED:
            op.drop_index(f"ix_{name}_{col}", name)
        op.drop_table(name)
