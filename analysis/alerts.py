"""Alerts, and their Suricata EVE JSON form (``event_type: alert``), one object per line.

    {"timestamp": "2024-05-01T10:00:00.123456+0000", "flow_id": 1234..., "event_type": "alert",
     "src_ip": ..., "src_port": ..., "dest_ip": ..., "dest_port": ..., "proto": "TCP",
     "community_id": "1:...", "app_proto": "ssh",
     "alert": {"action": "allowed", "gid": 1, "signature_id": 9000003, "rev": 1, "signature": "...",
               "category": "...", "severity": 2,
               "metadata": {"mitre_tactic": ["TA0006 Credential Access"], "mitre_technique": [...]}}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

# Suricata's proto names: IANA keywords in upper case.
_PROTO = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP", "icmp6": "IPv6-ICMP", "ipv6-icmp": "IPv6-ICMP",
          "sctp": "SCTP"}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: what fired (sid, rev, signature, ...) on which flow (the endpoints as the
    offending side -> its target, as Suricata attributes a to-server match)."""

    ts_ns: int
    signature_id: int
    signature: str
    severity: int
    src_ip: str
    dest_ip: str
    src_port: int | None = None
    dest_port: int | None = None
    proto: str | None = None  # store spelling (tcp, udp, icmp)
    app_proto: str | None = None
    uid: str | None = None
    community_id: str | None = None
    category: str = ""
    rev: int = 1
    gid: int = 1
    action: str = "allowed"
    tactic: str | None = None
    technique: str | None = None
    rule_kind: str | None = None
    tx_id: int | None = None  # the application-layer transaction that matched (signatures)
    direction: str | None = None  # to_server | to_client: the packet or message that completed the match
    pcap_cnt: int | None = None  # the packet's number in the replayed input (1-based)
    metadata: tuple[tuple[str, str], ...] = ()  # a signature's metadata keyword, as pairs

    @property
    def flow_id(self) -> int | None:
        return flow_id(self.uid) if self.uid else None

    def to_eve(self) -> dict[str, Any]:
        eve: dict[str, Any] = {"timestamp": eve_timestamp(self.ts_ns)}
        if self.uid:
            eve["flow_id"] = flow_id(self.uid)
        eve["event_type"] = "alert"
        eve["src_ip"] = self.src_ip
        if self.src_port is not None:
            eve["src_port"] = self.src_port
        eve["dest_ip"] = self.dest_ip
        if self.dest_port is not None:
            eve["dest_port"] = self.dest_port
        if self.proto:
            eve["proto"] = eve_proto(self.proto)
        if self.community_id:
            eve["community_id"] = self.community_id
        if self.pcap_cnt is not None:
            eve["pcap_cnt"] = self.pcap_cnt
        if self.tx_id is not None:
            eve["tx_id"] = self.tx_id
        if self.app_proto:
            eve["app_proto"] = self.app_proto
        if self.direction:
            eve["direction"] = self.direction
        metadata: dict[str, list[str]] = {}
        for key, value in self.metadata:
            metadata.setdefault(key, []).append(value)
        if self.tactic:
            metadata["mitre_tactic"] = [self.tactic]
        if self.technique:
            metadata["mitre_technique"] = [self.technique]
        if self.rule_kind:
            metadata["wiretrail_behaviour"] = [self.rule_kind]
        eve["alert"] = {"action": self.action, "gid": self.gid, "signature_id": self.signature_id, "rev": self.rev,
                        "signature": self.signature, "category": self.category, "severity": self.severity}
        if metadata:
            eve["alert"]["metadata"] = metadata
        return eve


def eve_timestamp(ts_ns: int) -> str:
    """Suricata's EVE timestamp: ``2024-05-01T10:00:00.123456+0000`` (UTC, microseconds)."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}+0000"


def eve_proto(proto: str) -> str:
    return _PROTO.get(proto.lower(), proto.upper())


def flow_id(uid: str) -> int:
    """A stable flow_id for a uid: 64 bits of its BLAKE2b hash, positive as Suricata's (int64 > 0)."""
    v = int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8).digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF
    return v or 1


def write_eve(alerts: Iterable[Alert], out: IO[str]) -> int:
    """Alerts as EVE JSON lines; returns the count."""
    n = 0
    for a in alerts:
        out.write(json.dumps(a.to_eve(), separators=(",", ":"), ensure_ascii=False) + "\n")
        n += 1
    return n


class RepeatFold:
    """Repeats of one finding shown as a count, not a flood (``wiretrail alerts --follow``): the
    first alert of a finding (same rule, text, source and destination, as a notification groups
    them) is shown at once; its repeats in the next ``window`` seconds are counted, and shown as
    one entry when the window closes: ``(first repeat, how many, last repeat)``. A repeat after
    that starts over. ``window`` 0 shows every alert."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.groups: dict[tuple, list] = {}  # key -> [deadline, first repeat, count, last repeat]

    @staticmethod
    def key(row: dict) -> tuple:
        return (row["signature_id"], row["signature"], row["src_ip"], row["dest_ip"])

    def add(self, row: dict, now: float) -> tuple[dict, int, dict] | None:
        """The entry to show now for this alert, or None when it is a repeat being counted (call
        ``due(now)`` first, so a closed window's count is shown before the alert that follows it)."""
        if self.window <= 0:
            return (row, 1, row)
        group = self.groups.get(self.key(row))
        if group is None or now >= group[0]:
            self.groups[self.key(row)] = [now + self.window, None, 0, None]
            return (row, 1, row)
        if group[2] == 0:
            group[1] = row
        group[2] += 1
        group[3] = row
        return None

    def due(self, now: float | None = None) -> list[tuple[dict, int, dict]]:
        """The counted repeats of the windows closed by ``now`` (all of them when None), oldest first."""
        out = []
        for key, (deadline, first, count, last) in list(self.groups.items()):
            if now is None or now >= deadline:
                del self.groups[key]
                if count:
                    out.append((first, count, last))
        return sorted(out, key=lambda e: e[0]["id"] if "id" in e[0] else e[0]["ts_ns"])
