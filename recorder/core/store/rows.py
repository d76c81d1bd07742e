"""Protocol records as table rows and back: each Zeek field's value as its column's (``to_row``,
``RowMaker``), a stored row as the Zeek record (``from_row``), and the one function that makes any
text storable (``clean_text``), which the alerts use too.

Values of the wrong type become unset, text that is not UTF-8 (or holds NUL, which PostgreSQL
refuses) is escaped as Zeek escapes it (``\\xNN``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from recorder.core.apps.records import CONN_LOGS, LOGS, app_column_name
from recorder.core.store.addresses import addr16

_INT64 = (-(1 << 63), (1 << 63) - 1)
_FIXED = {"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"}
_NO_CONN = (None,) * 6  # ``RowMaker``'s ident for a record without a connection


def clean_text(value: Any) -> str | None:
    """Text any database stores: not-UTF-8 bytes and NUL as ``\\xNN`` (Zeek's escaping)."""
    if value is None:
        return None
    if type(value) is str and value.isascii() and "\x00" not in value:  # the common case, cheaply
        return value
    if isinstance(value, bytes):
        s = value.decode("utf-8", "backslashreplace")
    else:
        s = value if isinstance(value, str) else str(value)
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            try:  # bytes decoded with surrogateescape: back to the bytes, then escaped
                s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in s:
        s = s.replace("\x00", "\\x00")
    return s


def seconds_to_ns(value: Any) -> int | None:
    """Epoch seconds or an interval (float) as integer ns, at Zeek's microsecond precision."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    scaled = value * 1_000_000
    if isinstance(scaled, float) and not math.isfinite(scaled):  # inf, nan, or a float that overflows here
        return None
    ns = round(scaled) * 1000
    return ns if _INT64[0] <= ns <= _INT64[1] else None


def to_count(value: Any) -> int | None:
    if type(value) is int:  # the common case
        return value if _INT64[0] <= value <= _INT64[1] else None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


def _port(value: Any) -> int | None:
    v = to_count(value)
    return v if v is not None and 0 <= v <= 65535 else None


def _bool(value: Any) -> bool | None:
    return bool(value) if isinstance(value, (bool, int)) else None


def _double(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


_json_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(x, ensure_ascii=False), built once


def _collection(value: Any, ztype: str) -> str | None:
    if value is None:
        return None
    if type(value) is list and not value:
        return "[]"
    items = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else list(value)
    sub = ztype[ztype.index("[") + 1:-1]
    if sub in ("interval", "double"):
        out: list = [_double(v) for v in items]
    elif sub in ("count", "int", "port"):
        out = [to_count(v) for v in items]
    else:
        out = [clean_text(v) for v in items]
    return _json_text(out)


def to_column(value: Any, ztype: str) -> Any:
    """One record value as its column's value (see ``schema.app_column_name`` for the column)."""
    if value is None:
        return None
    if ztype in ("time", "interval"):
        return seconds_to_ns(value)
    if ztype in ("count", "int"):
        return to_count(value)
    if ztype == "port":
        return _port(value)
    if ztype == "bool":
        return _bool(value)
    if ztype == "double":
        return _double(value)
    if ztype.startswith(("set[", "vector[")):
        return _collection(value, ztype)
    return clean_text(value)


def _addr16(text: Any) -> bytes | None:
    return _addr16_of(str(text)) if text is not None else None


@functools.lru_cache(maxsize=1 << 16)
def _addr16_of(text: str) -> bytes | None:
    try:
        return addr16(text)
    except ValueError:
        return None


def _converter(ztype: str) -> Callable[[Any], Any]:
    """``to_column`` for one Zeek type, chosen once (every converter maps None to None)."""
    if ztype in ("time", "interval"):
        return seconds_to_ns
    if ztype in ("count", "int"):
        return to_count
    if ztype == "port":
        return _port
    if ztype == "bool":
        return _bool
    if ztype == "double":
        return _double
    if ztype.startswith(("set[", "vector[")):
        return functools.partial(_collection, ztype=ztype)
    return clean_text


class RowMaker:
    """The rows of one log's table as tuples in ``columns`` order (``to_row`` without the per-field
    decisions: the converters are chosen once per log)."""

    def __init__(self, name: str) -> None:
        self.conn_log = name in CONN_LOGS
        self.has_proto = any(field == "proto" for field, _ in LOGS[name])
        columns = ["capture_id", "ts_ns"]
        if self.conn_log:
            columns += ["uid", "orig_h", "orig_p", "resp_h", "resp_p", "orig_a", "resp_a"]
        self.fields: list[tuple[str, Callable[[Any], Any], bool]] = []
        for field, ztype in LOGS[name]:
            if field in _FIXED:
                continue
            col = app_column_name(field, ztype)
            with_a = ztype == "addr" and not self.conn_log
            columns.append(col)
            if with_a:
                columns.append(col + "_a")
            self.fields.append((field, _converter(ztype), with_a))
        self.columns = tuple(columns)

    def __call__(self, record: dict, capture_id: int | None, fallback_ts: float = 0.0,
                 ident: tuple | None = None) -> tuple:
        """``ident``: the record's connection (uid, orig_h, orig_p, resp_h, resp_p, proto), for the
        fields the record does not set itself (a uid it leaves unset included)."""
        get = record.get
        ts_ns = seconds_to_ns(get("ts"))
        vals: list[Any] = [capture_id, ts_ns if ts_ns is not None else seconds_to_ns(fallback_ts) or 0]
        if ident is None:
            ident = _NO_CONN
        elif self.has_proto and "proto" not in record:
            get = {**record, "proto": ident[5]}.get
        if self.conn_log:
            uid = get("uid")
            uid = clean_text(uid if uid is not None else ident[0])
            orig_h = clean_text(get("id.orig_h", ident[1]))
            resp_h = clean_text(get("id.resp_h", ident[3]))
            orig_h = orig_h[:45] if orig_h else None
            resp_h = resp_h[:45] if resp_h else None
            vals += (uid[:24] if uid else None, orig_h, _port(get("id.orig_p", ident[2])), resp_h,
                     _port(get("id.resp_p", ident[4])), _addr16(orig_h), _addr16(resp_h))
        append = vals.append
        for field, conv, with_a in self.fields:
            value = get(field)
            if value is not None:  # every converter maps None to None
                value = conv(value)
            append(value)
            if with_a:
                append(_addr16(value))
        return tuple(vals)


ROW_MAKERS: dict[str, RowMaker] = {name: RowMaker(name) for name in LOGS}
KNOWN_FIELDS: dict[str, frozenset[str]] = {name: frozenset(f for f, _ in fields) for name, fields in LOGS.items()}


def to_row(name: str, record: dict, capture_id: int | None, fallback_ts: float = 0.0) -> dict:
    """A record of log ``name`` (Zeek field names) as a row of its table."""
    maker = ROW_MAKERS[name]
    return dict(zip(maker.columns, maker(record, capture_id, fallback_ts)))


# --- values: column -> record -----------------------------------------------------------------

def _from_column(value: Any, ztype: str) -> Any:
    if value is None:
        return None
    if ztype in ("time", "interval"):
        return int(value) / 1_000_000_000
    if ztype.startswith(("set[", "vector[")):
        try:
            return json.loads(value)
        except ValueError:
            return None
    if ztype == "bool":
        return bool(value)
    return value


def from_row(name: str, row: dict) -> dict:
    """A stored row as a Zeek record of log ``name`` (every field, unset as None)."""
    rec: dict[str, Any] = {}
    for field, ztype in LOGS[name]:
        if field == "ts":
            rec["ts"] = row["ts_ns"] / 1_000_000_000
        elif field == "uid" and name in CONN_LOGS:
            rec["uid"] = row["uid"]
        elif field.startswith("id.") and name in CONN_LOGS:
            rec[field] = row[field[3:]]
        else:
            rec[field] = _from_column(row.get(app_column_name(field, ztype)), ztype)
    return rec
