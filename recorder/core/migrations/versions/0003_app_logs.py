"""Application-layer logs: one table per log (dns, http, ssl, ssh, ftp, smtp, pop3, imap,
kerberos, files, credentials, names) and parser failures per capture.

The column lists are frozen here (not read from ``apps.records``), so this migration keeps
meaning what it meant when a later revision changes the logs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

BIG, INT, TEXT = sa.BigInteger, sa.Integer, sa.Text


def BOOL() -> sa.Boolean:  # noqa: N802 - a type constructor like the others
    return sa.Boolean(create_constraint=False)


def S24() -> sa.String:  # noqa: N802
    return sa.String(24)


def S45() -> sa.String:  # noqa: N802
    return sa.String(45)


def A16() -> sa.LargeBinary:  # noqa: N802
    return sa.LargeBinary(16)


# uid and the endpoints, after id, capture_id and ts_ns, in every connection's log
ENDPOINTS = (("uid", S24), ("orig_h", S45), ("orig_p", INT), ("resp_h", S45), ("resp_p", INT),
             ("orig_a", A16), ("resp_a", A16))

# each table's own columns (Zeek field names, dots as underscores, times as <name>_ns)
TABLES = {
    "dns": (
        ("proto", TEXT), ("trans_id", BIG), ("rtt_ns", BIG), ("query", TEXT), ("qclass", BIG),
        ("qclass_name", TEXT), ("qtype", BIG), ("qtype_name", TEXT), ("rcode", BIG), ("rcode_name", TEXT),
        ("aa", BOOL), ("tc", BOOL), ("rd", BOOL), ("ra", BOOL), ("z", BIG), ("answers", TEXT),
        ("ttls", TEXT), ("rejected", BOOL), ("opcode", BIG), ("opcode_name", TEXT), ("auth", TEXT),
        ("addl", TEXT),
    ),
    "http": (
        ("trans_depth", BIG), ("method", TEXT), ("host", TEXT), ("uri", TEXT), ("referrer", TEXT),
        ("version", TEXT), ("user_agent", TEXT), ("origin", TEXT), ("request_body_len", BIG),
        ("response_body_len", BIG), ("status_code", BIG), ("status_msg", TEXT), ("info_code", BIG),
        ("info_msg", TEXT), ("tags", TEXT), ("username", TEXT), ("password", TEXT), ("proxied", TEXT),
        ("orig_fuids", TEXT), ("orig_filenames", TEXT), ("orig_mime_types", TEXT), ("resp_fuids", TEXT),
        ("resp_filenames", TEXT), ("resp_mime_types", TEXT),
    ),
    "ssl": (
        ("version", TEXT), ("cipher", TEXT), ("curve", TEXT), ("server_name", TEXT), ("resumed", BOOL),
        ("last_alert", TEXT), ("next_protocol", TEXT), ("established", BOOL), ("ssl_history", TEXT),
        ("cert_chain_fps", TEXT), ("client_cert_chain_fps", TEXT), ("sni_matches_cert", BOOL),
        ("subject", TEXT), ("issuer", TEXT), ("client_subject", TEXT), ("client_issuer", TEXT),
        ("validation_status", TEXT), ("ja3", TEXT), ("ja3s", TEXT), ("ja4", TEXT), ("alpn", TEXT),
        ("cert_not_before_ns", BIG), ("cert_not_after_ns", BIG),
    ),
    "ssh": (
        ("version", BIG), ("auth_success", BOOL), ("auth_attempts", BIG), ("direction", TEXT),
        ("client", TEXT), ("server", TEXT), ("cipher_alg", TEXT), ("mac_alg", TEXT),
        ("compression_alg", TEXT), ("kex_alg", TEXT), ("host_key_alg", TEXT),
        ("host_key_fingerprint", TEXT), ("hassh", TEXT), ("hasshserver", TEXT),
    ),
    "ftp": (
        ("user", TEXT), ("password", TEXT), ("command", TEXT), ("arg", TEXT), ("mime_type", TEXT),
        ("file_size", BIG), ("reply_code", BIG), ("reply_msg", TEXT), ("data_channel_passive", BOOL),
        ("data_channel_orig_h", TEXT), ("data_channel_resp_h", TEXT), ("data_channel_resp_p", INT),
        ("fuid", TEXT),
    ),
    "smtp": (
        ("trans_depth", BIG), ("helo", TEXT), ("mailfrom", TEXT), ("rcptto", TEXT), ("date", TEXT),
        ("from", TEXT), ("to", TEXT), ("cc", TEXT), ("reply_to", TEXT), ("msg_id", TEXT),
        ("in_reply_to", TEXT), ("subject", TEXT), ("x_originating_ip", TEXT), ("first_received", TEXT),
        ("second_received", TEXT), ("last_reply", TEXT), ("path", TEXT), ("user_agent", TEXT),
        ("tls", BOOL), ("fuids", TEXT), ("is_webmail", BOOL),
    ),
    "pop3": (
        ("user", TEXT), ("command", TEXT), ("arg", TEXT), ("reply", TEXT),
    ),
    "imap": (
        ("user", TEXT), ("command", TEXT), ("arg", TEXT), ("reply", TEXT),
    ),
    "kerberos": (
        ("request_type", TEXT), ("client", TEXT), ("service", TEXT), ("success", BOOL), ("error_msg", TEXT),
    ),
    "files": (
        ("fuid", TEXT), ("source", TEXT), ("depth", BIG), ("analyzers", TEXT), ("mime_type", TEXT),
        ("filename", TEXT), ("duration_ns", BIG), ("local_orig", BOOL), ("is_orig", BOOL),
        ("seen_bytes", BIG), ("total_bytes", BIG), ("missing_bytes", BIG), ("overflow_bytes", BIG),
        ("timedout", BOOL), ("parent_fuid", TEXT), ("md5", TEXT), ("sha1", TEXT), ("sha256", TEXT),
        ("extracted", TEXT), ("extracted_cutoff", BOOL), ("extracted_size", BIG),
    ),
    "credentials": (
        ("protocol", TEXT), ("user", TEXT), ("secret", TEXT), ("success", BOOL), ("note", TEXT),
    ),
    "names": (
        ("addr", TEXT), ("addr_a", A16), ("name", TEXT), ("source", TEXT),
    ),
}
NOT_CONN = {"names"}  # tables without uid and endpoints
EXTRA_INDEXES = {"names": ["addr_a"], "files": ["fuid"]}


def _indexed(name: str) -> list[str]:
    cols = ["ts_ns"] if name in NOT_CONN else ["ts_ns", "uid", "orig_a", "resp_a"]
    return cols + EXTRA_INDEXES.get(name, [])


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    for name, own in TABLES.items():
        columns = [
            sa.Column("id", bigid, primary_key=True, autoincrement=True),
            sa.Column("capture_id", bigid, nullable=True),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        ]
        for col, type_ in (own if name in NOT_CONN else ENDPOINTS + own):
            columns.append(sa.Column(col, type_(), nullable=True))
        op.create_table(
            name, *columns,
            sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name=f"fk_{name}_capture_id_captures"),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        )
        for col in _indexed(name):
            op.create_index(f"ix_{name}_{col}", name, [col])
    op.create_table(
        "parser_failures",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("capture_id", bigid, nullable=True),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["capture_id"], ["captures.id"], name="fk_parser_failures_capture_id_captures"),
        sa.PrimaryKeyConstraint("id", name="pk_parser_failures"),
    )
    op.create_index("ix_parser_failures_capture_id", "parser_failures", ["capture_id"])


def downgrade() -> None:
    op.drop_index("ix_parser_failures_capture_id", "parser_failures")
    op.drop_table("parser_failures")
    for name in reversed(list(TABLES)):
        for col in _indexed(name):
            op.drop_index(f"ix_{name}_{col}", name)
        op.drop_table(name)
