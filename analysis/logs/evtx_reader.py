"""Windows event logs (.evtx) through the Rust-backed ``evtx`` package: each record's System and
EventData (or UserData) fields flattened under the names Sigma's Windows rules use (``EventID``,
``Channel``, ``Provider_Name``, ``Computer``, ``Image``, ``TargetUserName``, ...), plus the common
columns (account, source address, action, outcome) for the Security and Sysmon events listed in
``ACTIONS``. A record that does not parse is counted and skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from analysis.logs.model import LogEvent, address

EVTX_MAGIC = b"ElfFile\x00"

# (channel kind, EventID) -> action; channel kind "security", "system" or "sysmon"
ACTIONS: dict[tuple[str, int], str] = {
    ("security", 4624): "logon", ("security", 4625): "logon",
    ("security", 4634): "logoff", ("security", 4647): "logoff",
    ("security", 4648): "explicit credentials logon", ("security", 4672): "special privileges logon",
    ("security", 4688): "process created", ("security", 4720): "account created",
    ("security", 4722): "account enabled", ("security", 4724): "password reset",
    ("security", 4728): "added to global group", ("security", 4732): "added to local group",
    ("security", 4756): "added to universal group", ("security", 4768): "kerberos TGT requested",
    ("security", 4769): "kerberos service ticket requested",
    ("security", 4771): "kerberos pre-authentication", ("security", 4776): "NTLM credential validation",
    ("security", 1102): "audit log cleared", ("system", 7045): "service installed",
    ("sysmon", 1): "process created", ("sysmon", 3): "network connection",
}
_FAILED = {4625, 4771}
_SUCCESS = {4624, 4648, 4672, 4720, 4722, 4724, 4728, 4732, 4756}
_NO_ADDR = {"", "-", "::1", "127.0.0.1", "localhost"}


def is_evtx(head: bytes) -> bool:
    return head.startswith(EVTX_MAGIC)


def _scalar(v: Any) -> Any:
    if isinstance(v, dict):
        if "#text" in v:
            return _scalar(v["#text"])
        return None
    if isinstance(v, list):
        return ", ".join(str(_scalar(x)) for x in v)
    return v


def _flatten_system(node: dict, prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        if key == "#attributes":
            for akey, avalue in value.items():
                out[f"{prefix}_{akey}" if prefix else akey] = avalue
        elif key == "#text":
            out[prefix] = _scalar(value)
        elif isinstance(value, dict):
            _flatten_system(value, f"{prefix}_{key}" if prefix else key, out)
            if "#text" in value:
                out[f"{prefix}_{key}" if prefix else key] = _scalar(value["#text"])
        else:
            out[f"{prefix}_{key}" if prefix else key] = _scalar(value)


def _flatten_data(node: Any, out: dict[str, Any]) -> None:
    """EventData/UserData: each leaf under its own name (the first of a name wins), with spaces
    taken out, as Sigma's rules name them (Defender's ``Source Name`` is ``SourceName``)."""
    if not isinstance(node, dict):
        if node is not None:
            out.setdefault("Data", _scalar(node))
        return
    for key, value in node.items():
        if key == "#attributes":
            for akey, avalue in value.items():
                out.setdefault(akey.replace(" ", ""), avalue)
        elif isinstance(value, dict) and "#text" not in value:
            _flatten_data(value, out)
        else:
            out.setdefault("Data" if key == "#text" else key.replace(" ", ""), _scalar(value))


def flatten(record: dict) -> dict[str, Any]:
    """An evtx-package JSON record as one flat dict of Sigma's Windows field names."""
    event = record.get("Event", record)
    out: dict[str, Any] = {}
    system = event.get("System") or {}
    if isinstance(system, dict):
        _flatten_system(system, "", out)
        # System/EventID may carry Qualifiers: {"#attributes": {...}, "#text": 7045}
        eid = system.get("EventID")
        if isinstance(eid, dict):
            out["EventID"] = _scalar(eid)
    for part in ("EventData", "UserData"):
        if part in event:
            _flatten_data(event[part], out)
    return out


def _channel_kind(channel: str) -> str:
    low = channel.lower()
    if low == "security":
        return "security"
    if low == "system":
        return "system"
    if "sysmon" in low:
        return "sysmon"
    return low


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def to_event(number: int, fields: dict[str, Any]) -> LogEvent:
    """The common columns of a flattened record."""
    eid = _int(fields.get("EventID"))
    channel = str(fields.get("Channel") or "")
    ckind = _channel_kind(channel)
    ts_ns = None
    when = fields.get("TimeCreated_SystemTime")
    if isinstance(when, str):
        try:
            dt = datetime.fromisoformat(when.replace("Z", "+00:00"))
            ts_ns = int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
        except ValueError:
            ts_ns = None
    names = ("SubjectUserName", "TargetUserName") if eid == 4648 else \
        ("TargetUserName", "SubjectUserName", "User", "AccountName")
    account = next((fields[n] for n in names if fields.get(n) not in (None, "", "-")), None)
    src = fields.get("IpAddress") or fields.get("SourceIp") or fields.get("Workstation")
    src_ip = None
    if isinstance(src, str):
        src = src.strip()
        if src.startswith("::ffff:"):
            src = src[7:]
        found = address(src) if src not in _NO_ADDR else None
        src_ip = found[0] if found else None
    port = _int(fields.get("IpPort") if "IpPort" in fields else fields.get("SourcePort"))
    outcome = None
    if eid in _FAILED:
        outcome = "failure"
    elif eid in _SUCCESS:
        outcome = "success"
    elif eid == 4776:
        outcome = "success" if str(fields.get("Status", "")).lower() in ("0x0", "0") else "failure"
    return LogEvent(line=number, kind="windows", ts_ns=ts_ns, host=fields.get("Computer"), src_ip=src_ip,
                    src_port=port or None, account=str(account) if account not in (None, "-") else None,
                    action=ACTIONS.get((ckind, eid or -1)), outcome=outcome, raw=None, fields=fields)


HEADER_SIZE = 4096
CHUNK_SIZE = 65536


def missing_chunks(path: str) -> int:
    """Chunks the file header counts that the file does not hold whole (a file cut short): the
    evtx package reads the whole chunks and passes over the rest without a word."""
    import os
    import struct

    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
    if len(head) < 44 or not is_evtx(head):
        return 0
    (declared,) = struct.unpack_from("<H", head, 42)
    whole = max(0, os.path.getsize(path) - HEADER_SIZE) // CHUNK_SIZE
    return max(0, declared - whole)


def read_evtx(path: str, counts: dict[str, int]) -> Iterator[LogEvent]:
    """Events of one .evtx file; ``counts['skipped']`` grows for each record that does not
    parse, and for each chunk a file cut short lacks. Raises OSError/RuntimeError when the file
    cannot be opened as evtx."""
    import evtx

    counts["skipped"] += missing_chunks(path)
    parser = evtx.PyEvtxParser(path)
    for rec in parser.records_json():
        if isinstance(rec, Exception):  # evtx yields errors for broken records in place
            counts["skipped"] += 1
            continue
        try:
            data = json.loads(rec["data"])
        except (ValueError, KeyError, TypeError):
            counts["skipped"] += 1
            continue
        yield to_event(int(rec.get("event_record_id") or 0), flatten(data))
