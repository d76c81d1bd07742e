"""The value objects every log parser produces: one ``LogEvent`` per event (or per line kept raw),
and the ``SourceSummary`` of a file read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event of a log file. ``ts_ns`` is UTC nanoseconds (None for a raw line without a time);
    ``kind`` names the program or log (sshd, sudo, su, useradd, ..., web, windows, raw);
    ``fields`` holds every field the parser found (for Sigma), JSON-serialisable values only."""

    line: int  # line number (text logs) or record number (evtx)
    kind: str
    ts_ns: int | None = None
    host: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    account: str | None = None
    action: str | None = None
    outcome: str | None = None  # success | failure | None
    raw: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What reading one file gave: its format, hash, how many events were read and how many
    lines or records were skipped (unparsed lines are kept raw and counted as skipped too)."""

    path: str
    kind: str  # syslog, journal, web, evtx, unknown
    sha256: str
    events: int
    skipped: int
    source_id: int | None = None
    problem: str | None = None  # why nothing could be read, when nothing could
