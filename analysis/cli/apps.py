"""``wiretrail dns|http|tls|ssh|ftp|smtp|pop3|imap|kerberos|dce-rpc|ntlm|rdp|smb-mapping|smb-files|files|
credentials|hosts``:
protocol records.

Each listing takes the filters and formats of ``wiretrail flows``; ``--format zeek`` prints the
Zeek log (``tls`` prints ssl.log). Secrets (credentials, and the password fields of http.log and
ftp.log) are shown as ``****`` in every format unless ``--show-secrets``; secrets the recorder
wrote encrypted (``encrypt_to``) need ``--identity KEYFILE`` too.

``files --format zeek`` prints files.log as Zeek with its base scripts writes it (``zeek -r``): no
hash analyzer attached, so ``analyzers`` is empty and md5/sha1/sha256 are unset; ``--hashes`` fills
them, as Zeek does with ``frameworks/files/hash-all-files`` loaded (which gives MD5 and SHA1; we add
SHA256). Every other format always shows the hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import click

from analysis.cli.db import db_option, open_for_reading, open_listing
from analysis.cli.params import TimeType, check_host, identity_option
from analysis.output import TABLE_MAX_ROWS, Field, LogSpec, output_options, render
from recorder.core.apps.records import LOGS, ZEEK_PATH
from recorder.core.errors import WiretrailError

MASK = "****"  # the same for every secret, so its length is not shown

_ID = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")

# The narrower set of columns a terminal table shows for each log.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "dns": (*_ID, "proto", "query", "qtype_name", "rcode_name", "answers"),
    "http": (*_ID, "method", "host", "uri", "status_code", "user_agent", "response_body_len", "resp_mime_types"),
    "ssl": (*_ID, "version", "cipher", "server_name", "established"),
    "ssh": (*_ID, "version", "auth_success", "client", "server"),
    "ftp": (*_ID, "user", "command", "arg", "reply_code", "reply_msg"),
    "smtp": (*_ID, "helo", "mailfrom", "rcptto", "subject"),
    "pop3": (*_ID, "user", "command", "arg", "reply_code"),
    "imap": (*_ID, "user", "command", "arg", "reply_code"),
    "files": ("ts", "fuid", "uid", "id.orig_h", "id.resp_h", "source", "mime_type", "filename",
              "seen_bytes", "md5", "extracted"),
    "credentials": (*_ID, "protocol", "user", "secret", "success", "note", "secret_fp"),
    "smb_files": (*_ID, "action", "path", "name", "size", "prev_name"),
    "smb_mapping": (*_ID, "path", "share_type"),
    "dce_rpc": (*_ID, "rtt", "named_pipe", "endpoint", "operation"),
    "ntlm": (*_ID, "username", "hostname", "domainname", "server_nb_computer_name", "success"),
    "rdp": (*_ID, "cookie", "result", "security_protocol", "client_name", "client_build"),
}

# Fields holding a secret, per log.
SECRETS: dict[str, tuple[str, ...]] = {"credentials": ("secret",), "http": ("password",), "ftp": ("password",)}

HOSTS = LogSpec(path="hosts", fields=tuple(Field(n, t) for n, t in (
    ("addr", "addr"), ("mac", "string"), ("first_seen", "time"), ("last_seen", "time"), ("flows", "count"),
    ("bytes_out", "count"), ("bytes_in", "count"), ("services", "set[string]"), ("names", "set[string]"))))


def spec(log: str) -> LogSpec:
    return LogSpec(path=ZEEK_PATH[log], fields=tuple(Field(n, t) for n, t in LOGS[log]),
                   table_columns=TABLE_COLUMNS.get(log, ()))


def mask(rows: Iterable[dict], fields: tuple[str, ...]) -> Iterator[dict]:
    for row in rows:
        for f in fields:
            if row.get(f) is not None:
                row[f] = MASK
        yield row


def unsealed(rows: Iterable[dict], fields: tuple[str, ...], identities) -> Iterator[dict]:
    """Rows with the secrets the recorder encrypted (encrypt_to) decrypted with ``identities``;
    a WiretrailError (one line) without identities or when they do not open a secret."""
    from recorder.core.secretseal import is_sealed, unseal

    for row in rows:
        for f in fields:
            value = row.get(f)
            if not is_sealed(value):
                continue
            if not identities:
                raise WiretrailError(f"the {f} values are encrypted (the recorder's encrypt_to); give the private "
                                     "key with --identity KEYFILE")
            clear = unseal(value, identities)
            if clear is None:
                raise WiretrailError(f"cannot decrypt the {f} of record {row.get('uid') or ''}: the identity given "
                                     "is not the one the recorder encrypted to")
            row[f] = clear
        yield row


def without_hashes(rows: Iterable[dict]) -> Iterator[dict]:
    """files.log rows as Zeek's base scripts write them: no hash analyzers attached."""
    for row in rows:
        row["md5"] = row["sha1"] = row["sha256"] = None
        row["analyzers"] = [a for a in row.get("analyzers") or () if a not in ("MD5", "SHA1", "SHA256")]
        yield row


def _filters(fn: Callable) -> Callable:
    for option in reversed((
        db_option,
        click.option("--host", callback=check_host, metavar="IP|CIDR", help="Either endpoint in this address or network."),
        click.option("--port", type=click.IntRange(0, 65535), help="Either endpoint's port."),
        click.option("--since", type=TimeType(), help="Records at or after TIME (RFC 3339, date, epoch s)."),
        click.option("--until", type=TimeType(), help="Records before TIME."),
        click.option("--uid", help="One connection's uid."),
        click.option("--limit", type=click.IntRange(min=0),
                     help=f"At most N records (a table shows {TABLE_MAX_ROWS} unless given)."),
        output_options("zeek"),
    )):
        fn = option(fn)
    return fn


def _log_command(command: str, log: str, doc: str) -> click.Command:
    secret_fields = SECRETS.get(log, ())

    def run(db, host, port, since, until, uid, limit, fmt, show_secrets=False, hashes=True, identities=None) -> None:
        from recorder.core.store.listing import query_log

        store = open_listing(db)
        capped = fmt == "table" and limit is None
        rows = query_log(store, log, host=host, port=port, since=since, until=until, uid=uid,
                         limit=TABLE_MAX_ROWS + 1 if capped else limit)
        if secret_fields and not show_secrets:
            rows = mask(rows, secret_fields)
        elif secret_fields:
            rows = list(unsealed(rows, secret_fields, identities))  # all or nothing: no half-printed table
        if log == "files" and fmt == "zeek" and not hashes:
            rows = without_hashes(rows)
        s = spec(log)
        columns = s.columns_for(fmt)
        render(rows, fmt, columns, zeek_path=s.path, zeek_types=s.types_for(columns),
               table_max_rows=TABLE_MAX_ROWS if capped else None,
               more_note=f"showing the first {TABLE_MAX_ROWS} records; use --limit N, or --format "
                         "jsonl|csv|zeek for all of them")

    run.__doc__ = doc
    fn = _filters(run)
    if secret_fields:
        fn = click.option("--show-secrets", is_flag=True,
                          help=f"Show {', '.join(secret_fields)} in clear (masked as {MASK} otherwise).")(fn)
        fn = identity_option(fn)
    if log == "files":
        fn = click.option("--hashes", is_flag=True,
                          help="With --format zeek: fill md5, sha1, sha256 (Zeek's base scripts leave them "
                               "unset; other formats always show them).")(fn)
    return click.command(name=command, help=doc)(fn)


COMMANDS: dict[str, tuple[str, str]] = {  # command -> (log, help)
    "dns": ("dns", "List DNS queries and answers as Zeek dns.log records, oldest first."),
    "http": ("http", "List HTTP requests and replies as Zeek http.log records, oldest first."),
    "tls": ("ssl", "List TLS (and DTLS/QUIC) handshakes as Zeek ssl.log records, oldest first."),
    "ssh": ("ssh", "List SSH sessions as Zeek ssh.log records, oldest first."),
    "ftp": ("ftp", "List FTP commands and replies as Zeek ftp.log records, oldest first."),
    "smtp": ("smtp", "List SMTP mail transactions as Zeek smtp.log records, oldest first."),
    "pop3": ("pop3", "List POP3 commands and replies, oldest first."),
    "imap": ("imap", "List IMAP commands and replies, oldest first."),
    "kerberos": ("kerberos", "List Kerberos AS, TGS and AP exchanges (client, service, outcome) as Zeek kerberos.log "
                             "records."),
    "dce-rpc": ("dce_rpc", "List DCE-RPC calls (interface and operation: svcctl CreateServiceW, drsuapi "
                           "DRSGetNCChanges, ...) over SMB named pipes and TCP as Zeek dce_rpc.log records."),
    "ntlm": ("ntlm", "List NTLM logins (client user, workstation, domain; server names; outcome) as Zeek "
                     "ntlm.log records."),
    "rdp": ("rdp", "List remote desktop connections (cookie user name, security protocol, client name and "
                   "build, result) as Zeek rdp.log records."),
    "smb-mapping": ("smb_mapping", "List SMB shares mapped (tree connects) as Zeek smb_mapping.log records."),
    "smb-files": ("smb_files", "List SMB files opened, deleted and renamed on disk shares as Zeek smb_files.log "
                               "records (what was read or written is in `wiretrail files`)."),
    "files": ("files", "List transferred files (hashes, mime type, extracted name) as Zeek files.log records."),
    "credentials": ("credentials", "List logins seen in clear text (FTP, HTTP, POP3, IMAP, SMTP, telnet) and the "
                                   "accounts of NTLM and Kerberos logins (HTTP, SMB, DCE-RPC, mail) and RDP "
                                   "cookies. "
                                   "Secrets are masked unless --show-secrets."),
}

LOG_COMMANDS: dict[str, click.Command] = {name: _log_command(name, log, doc) for name, (log, doc) in COMMANDS.items()}


@click.command()
@db_option
@click.option("--host", callback=check_host, metavar="IP|CIDR", help="Addresses in this network.")
@click.option("--since", type=TimeType(), help="Flows starting at or after TIME.")
@click.option("--until", type=TimeType(), help="Flows starting before TIME.")
@click.option("--limit", type=click.IntRange(min=0), help=f"At most N hosts (a table shows {TABLE_MAX_ROWS}).")
@output_options("zeek")
def hosts(db, host, since, until, limit, fmt) -> None:
    """List every address in the flows: first/last seen, flows, bytes sent and received, services
    it offered, names seen for it (DNS, DHCP, NetBIOS, TLS SNI, HTTP Host) and, for a local
    address, its MACs (Ethernet source of its packets, DHCP lease)."""
    from recorder.core.store.logs import hosts as query_hosts

    store = open_for_reading(db)
    capped = fmt == "table" and limit is None
    rows = query_hosts(store, host=host, since=since, until=until, limit=TABLE_MAX_ROWS + 1 if capped else limit)
    render(rows, fmt, HOSTS.columns, zeek_path=HOSTS.path, zeek_types=HOSTS.types,
           table_max_rows=TABLE_MAX_ROWS if capped else None,
           more_note=f"showing the first {TABLE_MAX_ROWS} hosts; use --limit N, or --format jsonl|csv for all")
