"""Web server access logs: Apache/nginx common and combined formats, or a custom Apache
``LogFormat`` (``--log-format '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'``).

Fields carry the names of Sigma's ``webserver`` taxonomy (``c-ip``, ``cs-method``, ``cs-uri-stem``,
``cs-uri-query``, ``c-uri``, ``sc-status``, ``cs-referer``, ``cs-user-agent``, ...)."""

from __future__ import annotations

import operator
import re
from datetime import datetime
from urllib.parse import unquote

from analysis.logs.model import LogEvent, address

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
COMMON = '%h %l %u %t "%r" %>s %b'

# Apache format directive -> (field, regex)
_DIRECTIVES: dict[str, tuple[str, str]] = {
    "%h": ("c-ip", r"\S+"), "%a": ("c-ip", r"\S+"), "%l": ("ident", r"\S+"), "%u": ("cs-username", r"\S+"),
    "%t": ("time", r"\[[^\]]+\]"), "%r": ("request", r".*?"), "%>s": ("sc-status", r"\d{3}|-"),
    "%s": ("sc-status", r"\d{3}|-"), "%b": ("sc-bytes", r"\d+|-"), "%B": ("sc-bytes", r"\d+"),
    "%{Referer}i": ("cs-referer", r".*?"), "%{User-agent}i": ("cs-user-agent", r".*?"),
    "%{User-Agent}i": ("cs-user-agent", r".*?"), "%v": ("cs-host", r"\S+"), "%V": ("cs-host", r"\S+"),
    "%D": ("time-taken-us", r"\d+|-"), "%T": ("time-taken", r"[\d.]+|-"), "%p": ("s-port", r"\d+"),
    "%{Host}i": ("cs-host", r".*?"), "%U": ("cs-uri-stem", r"\S+"), "%q": ("cs-uri-query", r"\S*"),
    "%m": ("cs-method", r"\S+"), "%H": ("cs-version", r"\S+"), "%I": ("cs-bytes", r"\d+|-"),
    "%O": ("sc-bytes", r"\d+|-"),
}
_DIRECTIVE = re.compile(r"%(?:>|<)?(?:\{[^}]*\})?[a-zA-Z]")
_REQUEST = re.compile(r"^(?P<method>[A-Za-z]+) (?P<uri>\S+)(?: (?P<version>HTTP/[\d.]+))?$")


class LogFormatError(ValueError):
    pass


def compile_format(fmt: str) -> tuple[re.Pattern, dict[str, str]]:
    """An Apache LogFormat as a regex with one named group per known directive, and the map of
    group name -> field."""
    out, pos, names = [], 0, {}
    for m in _DIRECTIVE.finditer(fmt):
        out.append(re.escape(fmt[pos:m.start()]))
        field, rx = _DIRECTIVES.get(m.group(0), (None, r"\S*"))
        if field is None or field in names:
            out.append(f"(?:{rx})")
        else:
            group = f"g{len(names)}"
            names[field] = group
            out.append(f"(?P<{group}>{rx})")
        pos = m.end()
    out.append(re.escape(fmt[pos:]))
    if not names:
        raise LogFormatError(f"no known directive in log format {fmt!r}")
    return re.compile("^" + "".join(out) + "$"), {g: f for f, g in names.items()}


def _time_ns(text: str, days: dict[str, int | None] | None = None) -> int | None:
    """``[10/Oct/2000:13:55:36 -0700]`` as UTC ns. With ``days`` (a parser's cache of date and
    zone -> epoch seconds of that midnight) only the time of day is read per line, as strptime
    would read it; any other shape goes through strptime."""
    s = text.strip("[]")
    if days is not None and len(s) == 26 and s[11] == ":" and s[14] == ":" and s[17] == ":" and s[20] == " ":
        hh, mm, ss = s[12:14], s[15:17], s[18:20]
        digits = hh + mm + ss
        if digits.isascii() and digits.isdigit() and hh < "24" and mm < "60" and ss < "60":
            key = s[:11] + s[20:]
            if key not in days:
                midnight = _time_ns(s[:11] + ":00:00:00" + s[20:])
                days[key] = None if midnight is None else midnight // 1_000_000_000
            day = days[key]
            if day is not None:
                return (day + int(hh) * 3600 + int(mm) * 60 + int(ss)) * 1_000_000_000
    try:
        dt = datetime.strptime(s, "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return None
    return int(dt.timestamp()) * 1_000_000_000


class WebParser:
    """Combined, then common format; or only ``log_format`` when given."""

    def __init__(self, log_format: str | None = None) -> None:
        formats = [log_format] if log_format else [COMBINED, COMMON]
        self.patterns = [compile_format(f) for f in formats]
        # per pattern, how its groups are read by position (``m.groups()``, not a dict of group
        # names renamed per line): the fields kept as they are (not time, ident), in group order,
        # and where time, c-ip and request are (-1: not in the format)
        self._layouts = [_layout(tuple(groups[f"g{i}"] for i in range(len(groups))))
                         for _rx, groups in self.patterns]
        self._days: dict[str, int | None] = {}  # date and zone -> epoch s of its midnight
        self._stamp: str | None = None  # the last line's time field and its UTC ns
        self._ts: int | None = None

    def matches(self, text: str) -> bool:
        return any(rx.match(text) for rx, _ in self.patterns)

    def parse(self, number: int, text: str) -> LogEvent | None:
        for (rx, _groups), layout in zip(self.patterns, self._layouts):
            m = rx.match(text)
            if m:
                groups = (*m.groups(), None)  # position -1: a field the format does not have
                stamp = groups[layout[2]]
                if stamp is not None and stamp == self._stamp:  # lines of one second share their time
                    return _event(number, text, groups, layout, self._ts)
                ts = _time_ns(stamp, self._days) if stamp is not None else None
                if stamp is not None and ts is None:
                    return None
                self._stamp, self._ts = stamp, ts
                return _event(number, text, groups, layout, ts)
        return None


_Layout = tuple[tuple[str, ...], "operator.itemgetter", int, int, int]


def _layout(names: tuple[str, ...]) -> _Layout:
    kept = [i for i, name in enumerate(names) if name not in ("time", "ident")]
    where = [names.index(n) if n in names else -1 for n in ("time", "c-ip", "request")]
    getter = operator.itemgetter(*kept, -1) if kept else operator.itemgetter(-1, -1)
    return (tuple(names[i] for i in kept), getter, *where)


def _event(number: int, raw: str, groups: tuple, layout: _Layout, ts: int | None) -> LogEvent:
    names, kept, _time, c_ip, request = layout
    fields: dict = {k: v for k, v in zip(names, kept(groups)) if v is not None and v != "-"}
    request = groups[request]
    method = None
    if request is not None:
        fields["request"] = request
        m = _REQUEST.match(request)
        if m:
            method, uri, version = m.groups()
            fields["cs-method"] = method
            if version:
                fields["cs-version"] = version
            fields["cs-uri"] = fields["c-uri"] = uri
            stem, _, query = uri.partition("?")
            fields["cs-uri-stem"] = stem
            if query:
                fields["cs-uri-query"] = query
            fields["c-uri-decoded"] = unquote(uri) if "%" in uri else uri
    for key in _NUMBERS:
        value = fields.get(key)
        if value is not None and value.isdigit():
            fields[key] = int(value)
    c_ip = groups[c_ip]
    found = address(c_ip) if c_ip else None
    status = fields.get("sc-status")
    outcome = None
    if type(status) is int:
        outcome = "success" if status < 400 else "failure"
    return LogEvent(number, "web", ts, None, found[0] if found else None, None, fields.get("cs-username"),
                    f"http {method.lower()}" if method else "http request", outcome, raw, fields)


_NUMBERS = ("sc-status", "sc-bytes", "cs-bytes")
