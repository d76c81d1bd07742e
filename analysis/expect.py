"""Expected alerts for CI: a YAML file of what a replay must (and must not) raise, and the diff.

    # expect.yaml
    only: true                  # optional: no sid outside this list may fire
    alerts:
      - sid: 2001219            # every key optional except sid
        count: 1                # exact count (0: must not fire); default: at least one
        src_ip: 10.0.0.1        # an address or a CIDR (10.0.0.0/24)
        dest_port: 22
      - sid: 9000001
        signature: port scan    # a case-insensitive substring of the alert's text
      - 9000003                 # a bare sid: at least one alert of it

Keys of an entry: sid, count, gid, src_ip, dest_ip, src_port, dest_port, proto (tcp, udp, icmp,
as in the store or in EVE), app_proto, severity, signature. An entry counts the alerts of its
sid whose every other given key matches.

``load_expectations(path)`` raises ``ExpectFileError`` carrying every problem of the file as
path:line: reason. ``compare(expectations, alerts)`` takes EVE objects (``event_type: alert``,
other events are ignored) or ``Alert`` objects and returns one line per expectation that does
not hold, and with ``only`` one line per other sid that fired: an empty list when all hold.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from analysis.yamlfile import YAMLSyntaxError, load_yaml
from recorder.core.errors import WiretrailError

# key -> what its value must be; the order is the order a diff line names them in
_FILTERS = ("gid", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto", "severity", "signature")
_ENTRY_KEYS = ("sid", "count", *_FILTERS)
_TOP_KEYS = ("alerts", "only")


class ExpectError(WiretrailError):
    """One problem in an expectations file, with its path and line."""


class ExpectFileError(WiretrailError):
    """An expectations file that cannot be used: every problem found, one ``path:line: reason`` each."""

    def __init__(self, errors: list[ExpectError]) -> None:
        first = errors[0]
        super().__init__(first.message, path=first.path, line=first.line)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@dataclass(frozen=True, slots=True)
class Expectation:
    """Alerts of ``sid`` matching every ``where`` (key, value): exactly ``count`` of them, or at
    least one when ``count`` is None. ``line`` is where the entry starts in its file."""

    sid: int
    count: int | None = None
    where: tuple[tuple[str, Any], ...] = ()
    line: int = 0

    def describe(self) -> str:
        parts = [f"sid {self.sid}"]
        for key, value in self.where:
            parts.append(f"{key}={value!r}" if key == "signature" else f"{key}={value}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Expectations:
    path: str
    alerts: tuple[Expectation, ...] = ()
    only: bool = False
    only_line: int = 0

    @property
    def sids(self) -> frozenset[int]:
        return frozenset(e.sid for e in self.alerts)


# --- loading -----------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(key: str, value: Any) -> tuple[Any, str | None]:
    """The value as compared, or an error text."""
    if key in ("sid", "gid", "severity"):
        if not _is_int(value) or value < 1:
            return None, f"{key} must be a whole number >= 1, not {value!r}"
        return value, None
    if key == "count":
        if not _is_int(value) or value < 0:
            return None, f"count must be a whole number >= 0, not {value!r}"
        return value, None
    if key in ("src_port", "dest_port"):
        if not _is_int(value) or not 0 <= value <= 65535:
            return None, f"{key} must be a port 0-65535, not {value!r}"
        return value, None
    if key in ("src_ip", "dest_ip"):
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            return None, f"{key} must be an IP address or CIDR, not {value!r}"
        return str(net) if net.num_addresses > 1 else str(net.network_address), None
    if not isinstance(value, str) or not value.strip():
        return None, f"{key} must be text, not {value!r}"
    return value.strip(), None


def parse_expectations(text: str, path: str) -> Expectations:
    """An expectations file's text -> Expectations; raises ExpectFileError with every problem."""
    errors: list[ExpectError] = []

    def err(msg: str, line: int | None) -> None:
        errors.append(ExpectError(msg, path=path, line=line or 1))

    try:
        data, lines = load_yaml(text)
    except YAMLSyntaxError as e:
        raise ExpectFileError([ExpectError(str(e), path=path, line=e.line)]) from None
    if not isinstance(data, dict):
        raise ExpectFileError([ExpectError("an expectations file is a YAML mapping with an `alerts:` list",
                                           path=path, line=1)])
    for key in data:
        if str(key) not in _TOP_KEYS:
            err(f"unknown key {key!r} (one of {', '.join(_TOP_KEYS)})", lines.get((str(key),)))
    only = data.get("only", False)
    if not isinstance(only, bool):
        err(f"only must be true or false, not {only!r}", lines.get(("only",)))
        only = False
    entries = data.get("alerts", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        err("alerts must be a list of entries (- sid: N ...)", lines.get(("alerts",)))
        entries = []
    out: list[Expectation] = []
    for i, entry in enumerate(entries):
        line = lines.get(("alerts", i), lines.get(("alerts",)))
        if _is_int(entry):
            entry = {"sid": entry}
        if not isinstance(entry, dict):
            err(f"an alerts entry is a mapping with a sid (or a bare sid), not {entry!r}", line)
            continue
        if "sid" not in entry:
            err("this entry has no sid", line)
        values: dict[str, Any] = {}
        for key, value in entry.items():
            key_line = lines.get(("alerts", i, str(key)), line)
            if key not in _ENTRY_KEYS:
                err(f"unknown key {key!r} (one of {', '.join(_ENTRY_KEYS)})", key_line)
                continue
            checked, problem = _check_value(key, value)
            if problem:
                err(problem, key_line)
            else:
                values[key] = checked
        if "sid" in values and len(values) == len(entry):
            where = tuple((k, values[k]) for k in _FILTERS if k in values)
            out.append(Expectation(values["sid"], values.get("count"), where, line or 1))
    if errors:
        raise ExpectFileError(sorted(errors, key=lambda e: e.line or 0))
    return Expectations(path, tuple(out), only, lines.get(("only",), 1))


def load_expectations(path: str) -> Expectations:
    """Read and check an expectations file; raises ExpectFileError (path:line: reason, each problem)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ExpectFileError([ExpectError(f"cannot read: {getattr(e, 'strerror', None) or e}", path=str(path))]) \
            from None
    return parse_expectations(text, str(path))


# --- comparing ---------------------------------------------------------------------------------

def _eve(alert: Any) -> dict | None:
    if hasattr(alert, "to_eve"):
        alert = alert.to_eve()
    if not isinstance(alert, dict) or not isinstance(alert.get("alert"), dict) \
            or alert["alert"].get("signature_id") is None:
        return None
    if alert.get("event_type", "alert") != "alert":
        return None
    return alert


def _proto(value: Any) -> str:
    from analysis.alerts import eve_proto

    return eve_proto(str(value)) if value is not None else ""


def _matches(eve: dict, key: str, want: Any) -> bool:
    body = eve["alert"]
    if key in ("gid", "severity"):
        return body.get(key, 1 if key == "gid" else None) == want
    if key == "signature":
        return want.lower() in str(body.get("signature", "")).lower()
    if key in ("src_ip", "dest_ip"):
        try:
            return ipaddress.ip_address(str(eve.get(key, ""))) in ipaddress.ip_network(want, strict=False)
        except ValueError:
            return False
    if key == "proto":
        return _proto(eve.get("proto")) == _proto(want)
    if key == "app_proto":
        return str(eve.get("app_proto", "")).lower() == want.lower()
    return eve.get(key) == want


def _sid(eve: dict) -> Any:
    return eve["alert"].get("signature_id")


def _sid_order(sid: Any) -> tuple:
    return (0, sid, "") if _is_int(sid) else (1, 0, str(sid))


def compare(expectations: Expectations, alerts: Iterable[Any]) -> list[str]:
    """Every way ``alerts`` (EVE dicts or Alert objects) differ from ``expectations``, one line
    each (``path:line: sid N ...: expected X, got Y``); empty when every expectation holds."""
    eves = [e for e in map(_eve, alerts) if e is not None]
    by_sid = Counter(_sid(e) for e in eves)
    diff: list[str] = []
    for exp in expectations.alerts:
        got = sum(1 for e in eves if _sid(e) == exp.sid and all(_matches(e, k, v) for k, v in exp.where))
        if exp.count is None:
            ok, wanted = got >= 1, "at least 1"
        else:
            ok, wanted = got == exp.count, ("none" if exp.count == 0 else f"exactly {exp.count}")
        if not ok:
            note = f" (of {by_sid[exp.sid]} alerts with this sid)" if exp.where and by_sid[exp.sid] != got else ""
            diff.append(f"{expectations.path}:{exp.line}: {exp.describe()}: expected {wanted}, got {got}{note}")
    if expectations.only:
        named = expectations.sids
        texts: dict[Any, str] = {}
        for e in eves:
            texts.setdefault(_sid(e), str(e["alert"].get("signature", "")))
        for sid in sorted((s for s in by_sid if s not in named), key=_sid_order):
            diff.append(f"{expectations.path}:{expectations.only_line}: sid {sid} {texts[sid]!r}: "
                        f"expected none (only: true), got {by_sid[sid]}")
    return diff
