"""Linux authentication logs: syslog lines (RFC 3164 with a year-less timestamp, RFC 5424, and
rsyslog's RFC 3339 file format) and ``journalctl -o json`` lines, with the messages of sshd, sudo,
su, useradd/usermod/groupadd/passwd/chpasswd and systemd-logind read into account, source
address, action and outcome (``messages``).

A year-less timestamp takes its year from the file's modification time; a date after that time
(by more than a day) belongs to the year before, so a file written across New Year and modified
in January keeps December in the old year."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, tzinfo

from analysis.logs.messages import parse_message
from analysis.logs.model import LogEvent

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}
# <PRI>? Mon dd HH:MM:SS host prog[pid]: msg
RFC3164 = re.compile(r"^(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? (\S+) "
                     r"([^\s:\[]+)(?:\[(\d+)\])?:? ?(.*)$")
# <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG   (RFC 5424)
RFC5424 = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\](?:\[.*?\])*) ?(.*)$")
# TIMESTAMP host prog[pid]: msg   (rsyslog's RFC 3339 file format)
ISO = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (\S+) "
                 r"([^\s:\[]+)(?:\[(\d+)\])?:? ?(.*)$")


def is_syslog_line(text: str) -> bool:
    return bool(RFC3164.match(text) or RFC5424.match(text) or ISO.match(text))


def is_journal_line(text: str) -> bool:
    return text.startswith("{") and ('"__REALTIME_TIMESTAMP"' in text or '"MESSAGE"' in text)


def _iso_ns(text: str, tz: tzinfo) -> int | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


class SyslogParser:
    """Parses one file's lines; ``mtime`` (epoch seconds) anchors year-less timestamps, ``tz`` is
    the zone of timestamps written without one (default UTC)."""

    def __init__(self, *, mtime: float, tz: tzinfo | None = None) -> None:
        self.tz = tz or UTC
        self.anchor = datetime.fromtimestamp(mtime, self.tz) + timedelta(days=1)
        self._hours: dict[tuple[int, int, int], int | None] = {}  # (month, day, hour) -> epoch s
        self._stamp: str | None = None  # the last year-less time read, and its UTC ns
        self._ts: int | None = None

    def _hour(self, month: int, day: int, hh: int) -> int | None:
        year = self.anchor.year
        try:
            dt = datetime(year, month, day, hh, tzinfo=self.tz)
            if dt > self.anchor:
                dt = datetime(year - 1, month, day, hh, tzinfo=self.tz)
        except ValueError:  # Feb 29 in a year without it, hour 24
            return None
        return int(dt.timestamp())

    def _year_less(self, month: int, day: int, hh: int, mm: int, ss: int) -> int | None:
        key = (month, day, hh)
        if key not in self._hours:
            self._hours[key] = self._hour(month, day, hh)
        hour = self._hours[key]
        if hour is None or mm > 59 or ss > 60:
            return None
        return (hour + mm * 60 + ss) * 1_000_000_000

    def parse(self, number: int, text: str) -> LogEvent | None:
        m = RFC3164.match(text)
        if m is not None:
            _pri, month, day, hh, mm, ss, host, program, pid, message = m.groups()
            if month in _MONTHS:
                stamp = text[m.start(2):m.end(6)]  # month to seconds: the lines of one second share it
                if stamp == self._stamp:
                    ts = self._ts
                else:
                    ts = self._year_less(_MONTHS[month], int(day), int(hh), int(mm), int(ss))
                    self._stamp, self._ts = stamp, ts
                if ts is None:
                    return None
                return _event(number, text, ts, host, program, pid, message)
        m = RFC5424.match(text)
        if m:
            ts = _iso_ns(m.group(2), self.tz)
            if ts is None:
                return None
            nil = lambda v: None if v == "-" else v  # noqa: E731
            return _event(number, text, ts, nil(m.group(3)), nil(m.group(4)) or "", nil(m.group(5)),
                          m.group(8).lstrip("\ufeff"))
        m = ISO.match(text)
        if m:
            ts = _iso_ns(m.group(1), self.tz)
            if ts is None:
                return None
            return _event(number, text, ts, m.group(2), m.group(3), m.group(4), m.group(5))
        return None


def _event(number: int, raw: str, ts_ns: int, host: str | None, program: str, pid: str | None,
           message: str) -> LogEvent:
    fields: dict = {"program": program, "message": message}
    if pid and pid.isdigit():
        fields["pid"] = int(pid)
    kind, action, outcome, account, src_ip, src_port, parsed = parse_message(program, message)
    if parsed:
        fields.update(parsed)
    return LogEvent(number, kind, ts_ns, host, src_ip, src_port, account, action, outcome, raw, fields)


def _journal_text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):  # journald's binary form
        return bytes(b & 0xFF for b in value).decode("utf-8", "replace")
    return None


def parse_journal_line(number: int, text: str) -> LogEvent | None:
    """One ``journalctl -o json`` object (times in µs since the epoch, UTC)."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    try:
        ts_ns = int(obj.get("__REALTIME_TIMESTAMP") or obj.get("_SOURCE_REALTIME_TIMESTAMP")) * 1000
    except (TypeError, ValueError):
        return None
    message = _journal_text(obj.get("MESSAGE"))
    if message is None:
        return None
    program = obj.get("SYSLOG_IDENTIFIER") or obj.get("_COMM") or ""
    pid = obj.get("SYSLOG_PID") or obj.get("_PID")
    host = obj.get("_HOSTNAME")
    return _event(number, text, ts_ns, host if isinstance(host, str) else None, str(program),
                  str(pid) if pid is not None else None, message)
