"""What every part of the story shares: which addresses are local, the time range, evidence refs,
and ATT&CK tactic -> stage names.

``Scope`` is built once per story from the store (the captures table is small: read whole) and
handed to the finders; it holds no rows of flows or alerts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa

from analysis.story.model import Evidence
from recorder.core.schema import captures as captures_table
from recorder.core.store import host_range

NS = 1_000_000_000

# Always local, whatever --local-net says (RFC 1918, loopback, link-local, CGNAT, ULA).
PRIVATE_NETS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                                 "169.254.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10", "::1/128")

TACTIC_STAGE: dict[str, str] = {
    "TA0043": "reconnaissance", "TA0042": "reconnaissance", "TA0001": "initial-access", "TA0002": "execution",
    "TA0003": "persistence", "TA0004": "privilege-escalation", "TA0005": "execution",
    "TA0006": "credential-access", "TA0007": "discovery", "TA0008": "lateral-movement", "TA0009": "collection",
    "TA0011": "command-and-control", "TA0010": "exfiltration", "TA0040": "impact",
}
STAGE_TACTIC: dict[str, str] = {
    "reconnaissance": "TA0043 Reconnaissance", "initial-access": "TA0001 Initial Access",
    "execution": "TA0002 Execution", "persistence": "TA0003 Persistence",
    "privilege-escalation": "TA0004 Privilege Escalation", "credential-access": "TA0006 Credential Access",
    "discovery": "TA0007 Discovery", "lateral-movement": "TA0008 Lateral Movement",
    "collection": "TA0009 Collection", "command-and-control": "TA0011 Command and Control",
    "exfiltration": "TA0010 Exfiltration", "impact": "TA0040 Impact",
}
# Signature classtypes (their category text) that say how far an attack went, when a signature
# names no ATT&CK tactic.
CATEGORY_STAGE: dict[str, str] = {
    "Web Application Attack": "initial-access", "Attempted Administrator Privilege Gain": "initial-access",
    "Attempted User Privilege Gain": "initial-access", "Successful Administrator Privilege Gain": "execution",
    "Successful User Privilege Gain": "execution", "A Network Trojan was Detected": "command-and-control",
    "Malware Command and Control Activity Detected": "command-and-control",
    "Detection of a Network Scan": "reconnaissance", "Attempted Information Leak": "reconnaissance",
    "Executable code was detected": "execution", "Exploit Kit Activity Detected": "initial-access",
}


def stage_of(tactic: str | None, category: str | None = None) -> str | None:
    """``"TA0006 Credential Access"`` -> ``"credential-access"``; else from the category; else None."""
    if tactic:
        code = tactic.split()[0].upper()
        if code in TACTIC_STAGE:
            return TACTIC_STAGE[code]
        name = tactic.strip().lower().replace("_", "-").replace(" ", "-")  # Sigma's "credential_access"
        if name in STAGE_TACTIC:
            return name
    return CATEGORY_STAGE.get(category or "")


@lru_cache(maxsize=8)
def _nets(local_nets: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in (*PRIVATE_NETS, *local_nets))


@dataclass(frozen=True, slots=True)
class Scope:
    """The store, the time range (``since`` inclusive, ``until`` exclusive, ns) and the local networks."""

    store: object  # recorder.core.store.Store
    since_ns: int | None = None
    until_ns: int | None = None
    local_nets: tuple[str, ...] = ()
    captures: dict = field(default_factory=dict, hash=False, compare=False)  # id -> (path, sha256)

    @classmethod
    def open(cls, store, *, since_ns=None, until_ns=None, local_nets=()) -> Scope:
        with store.db_errors("read captures"), store.engine.connect() as conn:
            caps = {int(r.id): (r.path, r.sha256) for r in
                    conn.execute(sa.select(captures_table.c.id, captures_table.c.path, captures_table.c.sha256))}
        for net in local_nets:
            ipaddress.ip_network(net, strict=False)  # ValueError for a bad one, before any work
        return cls(store, since_ns, until_ns, tuple(local_nets), caps)

    def is_local(self, addr: str | None) -> bool:
        if not addr:
            return False
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in _nets(self.local_nets) if n.version == ip.version)

    def in_range(self, col) -> list:
        """SQL conditions keeping ``col`` (a ts_ns column) inside the range."""
        out = []
        if self.since_ns is not None:
            out.append(col >= self.since_ns)
        if self.until_ns is not None:
            out.append(col < self.until_ns)
        return out

    def evidence(self, kind: str, ts_ns: int, ref, *, uid: str | None = None, community_id: str | None = None,
                 capture_id: int | None = None) -> Evidence:
        path, sha = self.captures.get(int(capture_id), (None, None)) if capture_id is not None else (None, None)
        return Evidence(kind=kind, ts_ns=int(ts_ns), ref=str(ref), uid=uid, community_id=community_id,
                        capture=path, capture_sha256=sha)

    def connect(self):
        return self.store.engine.connect()


def host_filter(host: str | None, *cols):
    """``host`` (IP or CIDR) on any of ``cols`` (16-byte address columns), as one SQL condition."""
    if host is None:
        return None
    lo, hi = host_range(host)
    return sa.or_(*((c == lo) if lo == hi else c.between(lo, hi) for c in cols))


def hms(ts_ns: int) -> str:
    """A time for a sentence: ``2024-05-01 10:02:00Z``."""
    from analysis.story.model import rfc3339

    text = rfc3339(ts_ns) or ""
    return text[:10] + " " + text[11:19] + "Z"


def _last_part(path: str | None) -> str | None:
    """``/upload/cards.csv?x=1`` -> ``cards.csv``; ``share\\dir\\a.txt`` -> ``a.txt``; None for nothing."""
    if not path:
        return None
    name = path.split("?")[0].rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return name or None


def carved_name(conn, fuid: str, filename: str | None) -> str:
    """A carved file's name: the protocol's own (``files.filename``), else the last part of the
    HTTP URL that carried it, else the FTP command's argument or the SMB path, else its fuid."""
    from recorder.core.schema import APP_TABLES

    if filename:
        return filename
    http = APP_TABLES["http"].c
    uri = conn.execute(sa.select(http.uri).where(sa.or_(http.orig_fuids.contains(fuid), http.resp_fuids.contains(fuid)))
                       .limit(1)).scalar()
    ftp, smb = APP_TABLES["ftp"].c, APP_TABLES["smb_files"].c
    return (_last_part(uri)
            or _last_part(conn.execute(sa.select(ftp.arg).where(ftp.fuid == fuid).limit(1)).scalar())
            or _last_part(conn.execute(sa.select(sa.func.coalesce(smb.name, smb.path)).where(smb.fuid == fuid)
                                       .limit(1)).scalar())
            or fuid)
