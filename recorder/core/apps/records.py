"""The logs the application layer stores: every field in Zeek's order with its Zeek type.

``LOGS``: log name -> ((field, zeek_type), ...). It drives the
store's tables (``schema``: one table per log, dots in names as underscores) and the listings
(``wiretrail dns|http|tls|...``). Zeek's logs carry Zeek's exact field names and types (Zeek 6,
as in Zeek's own test baselines); ``pop3``, ``imap``, ``credentials`` and ``names`` are ours.

Parsers emit dicts with a subset of these keys; the store drops keys a log does not list. Each
parser declares its own logs (``Parser.logs``); this module adds the framework's and checks
that no two declarations of one log disagree.
"""

from __future__ import annotations

from recorder.core.apps.base import CONN_ID, LogFields


def _f(spec: str) -> LogFields:
    """``"ts:time uid:string"`` -> (("ts", "time"), ("uid", "string"))."""
    return tuple((name, ztype) for name, ztype in (item.split(":", 1) for item in spec.split()))



# The logs the framework itself writes (every parser may feed them through its Output).
FRAMEWORK_LOGS: dict[str, LogFields] = {
    # Zeek 6 files.log (base/frameworks/files), one record per transferred body
    "files": _f("ts:time fuid:string uid:string id.orig_h:addr id.orig_p:port id.resp_h:addr "
                "id.resp_p:port source:string depth:count analyzers:set[string] mime_type:string "
                "filename:string duration:interval local_orig:bool is_orig:bool seen_bytes:count "
                "total_bytes:count missing_bytes:count overflow_bytes:count timedout:bool "
                "parent_fuid:string md5:string sha1:string sha256:string extracted:string "
                "extracted_cutoff:bool extracted_size:count"),
    # ours: every login seen in clear text (FTP, HTTP basic, POP3, IMAP, SMTP AUTH, telnet, ...)
    # (secret_fp: a keyed fingerprint of the secret, set when the recorder encrypts secrets: encrypt_to)
    "credentials": CONN_ID + _f("protocol:string user:string secret:string success:bool note:string "
                                "secret_fp:string"),
    # ours: address -> name mappings (DNS answers, TLS SNI, HTTP Host, ...)
    "names": _f("ts:time addr:addr name:string source:string"),
    # ours: local address -> MAC (Ethernet source of its packets, ``recorder.core.decode.mactable``)
    "macs": _f("ts:time addr:addr mac:string source:string last_seen:time"),
}


def _collect() -> dict[str, LogFields]:
    """Every log: the parsers' own ``logs`` (the one place a protocol's fields are declared)
    and the framework's. Two parsers writing one log (DNS over UDP and TCP) must agree."""
    from recorder.core.apps.registry import PARSERS

    logs: dict[str, LogFields] = {}
    for parser in PARSERS:
        for name, fields in parser.logs.items():
            if logs.setdefault(name, fields) != fields:
                raise RuntimeError(f"{parser.__name__} declares log {name!r} with other fields than another parser")
    for name, fields in FRAMEWORK_LOGS.items():
        if logs.setdefault(name, fields) != fields:
            raise RuntimeError(f"log {name!r} is declared by a parser and by the framework")
    return logs


LOGS: dict[str, LogFields] = _collect()

# The Zeek log path each listing writes (``wiretrail tls`` prints ssl.log).
ZEEK_PATH: dict[str, str] = {name: name for name in LOGS}

# Logs whose records belong to a connection (they carry uid and id.*).
CONN_LOGS: frozenset[str] = frozenset(n for n, fields in LOGS.items() if ("id.orig_h", "addr") in fields)


def column_name(field: str) -> str:
    """A log field's column in the store: lower case, dots as underscores (``data_channel_orig_h``)."""
    return field.replace(".", "_").lower()


def app_column_name(field: str, ztype: str) -> str:
    """The column holding a log field: ``rtt`` -> ``rtt_ns``, ``data_channel.orig_h`` -> ``data_channel_orig_h``."""
    return column_name(field) + ("_ns" if ztype in ("time", "interval") else "")
