"""The protocol parsers the application layer runs: one explicit tuple, in detection order.

A parser joins by a line here; its module declares its logs (``Parser.logs``).
"""

from __future__ import annotations

import importlib

from recorder.core.apps.base import Parser

# (module under recorder.core.apps, class names), in the order detection tries them
_PARSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dns", ("DNS", "DNSTCP")),
    ("http", ("HTTP",)),
    ("tls", ("TLS",)),
    ("ssh", ("SSH",)),
    ("ftp", ("FTP",)),
    ("smtp", ("SMTP",)),
    ("pop3", ("POP3",)),
    ("imap", ("IMAP",)),
    ("telnet", ("Telnet",)),
    ("kerberos", ("Kerberos", "KerberosTCP")),
    ("smb", ("SMB",)),
    ("dcerpc", ("DCERPC",)),
    ("rdp", ("RDP",)),
    ("xmpp", ("XMPP",)),
    ("mysql", ("MySQL",)),
    ("quic", ("QUIC",)),
    ("dhcp", ("DHCP",)),
)


def _load() -> tuple[type[Parser], ...]:
    found: list[type[Parser]] = []
    for module, names in _PARSERS:
        mod = importlib.import_module(f"recorder.core.apps.{module}")
        found.extend(getattr(mod, name) for name in names)
    return tuple(found)


PARSERS: tuple[type[Parser], ...] = _load()
