"""Windows-protocol logs: dce_rpc (DCE-RPC calls), ntlm (NTLM logins) and rdp (remote desktop
connections), with Zeek's fields, for ``apps.dcerpc``, ``apps.ntlm`` and ``apps.rdp``.

The columns are frozen here (not read from ``apps.records``), so this migration keeps meaning
what it meant when a later revision changes the logs.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

BIG, INT, TEXT = sa.BigInteger, sa.Integer, sa.Text


def BOOL() -> sa.Boolean:  # noqa: N802 - a column type, named as the others
    return sa.Boolean(create_constraint=False)


ENDPOINTS = (("uid", lambda: sa.String(24)), ("orig_h", lambda: sa.String(45)), ("orig_p", INT),
             ("resp_h", lambda: sa.String(45)), ("resp_p", INT), ("orig_a", lambda: sa.LargeBinary(16)),
             ("resp_a", lambda: sa.LargeBinary(16)))

TABLES = {
    "dce_rpc": (("rtt_ns", BIG), ("named_pipe", TEXT), ("endpoint", TEXT), ("operation", TEXT)),
    "ntlm": (
        ("username", TEXT), ("hostname", TEXT), ("domainname", TEXT), ("server_nb_computer_name", TEXT),
        ("server_dns_computer_name", TEXT), ("server_tree_name", TEXT), ("success", BOOL),
    ),
    "rdp": (
        ("cookie", TEXT), ("result", TEXT), ("security_protocol", TEXT), ("client_channels", TEXT),
        ("keyboard_layout", TEXT), ("client_build", TEXT), ("client_name", TEXT),
        ("client_dig_product_id", TEXT), ("desktop_width", BIG), ("desktop_height", BIG),
        ("requested_color_depth", TEXT), ("cert_type", TEXT), ("cert_count", BIG), ("cert_permanent", BOOL),
        ("encryption_level", TEXT), ("encryption_method", TEXT),
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
