"""One renderer for every listing: ``--format table|json|jsonl|csv`` (and ``zeek`` for Zeek logs).

Rows reach ``render`` already in Zeek's vocabulary (``flow_to_zeek``): Zeek field names
(``id.orig_h``), times as epoch seconds (float), intervals as seconds (float), sets as lists,
unset fields as None. A ``LogSpec`` lists a log's fields with their Zeek types, so DNS, HTTP and
TLS logs reuse everything here by adding a spec and a ``*_to_zeek`` converter.

Formats:
  table  a rich table; times as RFC 3339 UTC with ``Z``; unset shown as ``-``
  csv    header and rows; times as RFC 3339; unset as an empty cell; booleans true/false
  json   one JSON array; jsonl: one object per line. Zeek's JSON writer: unset fields omitted,
         times as epoch floats, sets as lists
  zeek   Zeek's ASCII (TSV) log, header and footer included
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import click

FORMATS: tuple[str, ...] = ("table", "json", "jsonl", "csv")
TABLE_MAX_ROWS = 1000


# --- log specs ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Field:
    """One column of a Zeek log: its name and Zeek type (time, interval, string, addr, port,
    count, int, double, bool, enum, set[string], vector[string])."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class LogSpec:
    """A Zeek log's fields in order; ``table_columns`` is the narrower set a terminal shows."""

    path: str
    fields: tuple[Field, ...]
    table_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def types(self) -> list[str]:
        return [f.type for f in self.fields]

    def types_for(self, columns: Sequence[str]) -> list[str]:
        by_name = {f.name: f.type for f in self.fields}
        return [by_name[c] for c in columns]

    def columns_for(self, fmt: str) -> list[str]:
        if fmt == "table" and self.table_columns:
            return list(self.table_columns)
        return self.columns


def _fields(spec: str) -> tuple[Field, ...]:
    return tuple(Field(*item.split(":")) for item in spec.split())


# Zeek's conn.log, in Zeek's order; community_id as the community-id policy script adds it.
CONN = LogSpec(
    path="conn",
    fields=_fields(
        "ts:time uid:string id.orig_h:addr id.orig_p:port id.resp_h:addr id.resp_p:port "
        "proto:enum service:string duration:interval orig_bytes:count resp_bytes:count "
        "conn_state:string local_orig:bool local_resp:bool missed_bytes:count history:string "
        "orig_pkts:count orig_ip_bytes:count resp_pkts:count resp_ip_bytes:count "
        "tunnel_parents:set[string] ip_proto:count community_id:string capture_drops:bool"
    ),
    table_columns=(
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
        "duration", "orig_bytes", "resp_bytes", "conn_state", "history", "orig_pkts", "resp_pkts",
    ),
)

LOG_SPECS: dict[str, LogSpec] = {"conn": CONN}


def _seconds(ns: int | None) -> float | None:
    # int / int is correctly rounded in Python; ns / 1e9 would round ns to a float first.
    return None if ns is None else ns / 1_000_000_000


def flow_to_zeek(row: dict) -> dict:
    """A store flow row (``recorder.core.schema.flows``) as a Zeek conn.log record."""
    parents = row.get("tunnel_parents")
    return {
        "ts": _seconds(row["ts_ns"]),
        "uid": row["uid"],
        "id.orig_h": row["orig_h"],
        "id.orig_p": row["orig_p"],
        "id.resp_h": row["resp_h"],
        "id.resp_p": row["resp_p"],
        "proto": row["proto"],
        "service": row.get("service"),
        "duration": _seconds(row.get("duration_ns")),
        "orig_bytes": row.get("orig_bytes"),
        "resp_bytes": row.get("resp_bytes"),
        "conn_state": row.get("conn_state"),
        "local_orig": row.get("local_orig"),
        "local_resp": row.get("local_resp"),
        "missed_bytes": row.get("missed_bytes"),
        "history": row.get("history"),
        "orig_pkts": row.get("orig_pkts"),
        "orig_ip_bytes": row.get("orig_ip_bytes"),
        "resp_pkts": row.get("resp_pkts"),
        "resp_ip_bytes": row.get("resp_ip_bytes"),
        "tunnel_parents": None if parents is None else [p for p in parents.split(",") if p],
        "ip_proto": row.get("ip_proto"),
        "community_id": row.get("community_id"),
        "capture_drops": None if row.get("capture_drops") is None else bool(row["capture_drops"]),
    }


# --- click ----------------------------------------------------------------------------------

def output_options(*extra_formats: str, formats: Sequence[str] = FORMATS, default: str = "table") -> Callable:
    """Decorator adding ``--format`` (``formats``, by default table|json|jsonl|csv, plus
    ``extra_formats``) as the ``fmt`` argument."""
    choices = tuple(formats) + tuple(f for f in extra_formats if f not in formats)

    def decorator(fn: Callable) -> Callable:
        return click.option(
            "--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
            help="Output format.",
        )(fn)

    return decorator


# --- values ---------------------------------------------------------------------------------

def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC with microseconds and ``Z``."""
    if ts is None:
        return None
    us = round(ts * 1_000_000)
    secs, frac = divmod(us, 1_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:06d}Z"


def _text(value: Any, ztype: str | None, *, bools: tuple[str, str], unset: str) -> str:
    """A value as table/csv text."""
    if value is None:
        return unset
    if ztype == "time":
        return rfc3339(value) or unset
    if ztype == "interval":
        return f"{value:.6f}"
    if isinstance(value, bool):
        return bools[0] if value else bools[1]
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


_ZEEK_SEPARATOR = "\t"
_ZEEK_SET_SEPARATOR = ","
_ZEEK_EMPTY = "(empty)"
_ZEEK_UNSET = "-"


_HEX_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}")


def _zeek_escape(s: str, in_set: bool) -> str:
    """A string as Zeek's ASCII writer escapes it: separators and non-printables as \\xNN, a
    backslash doubled (current Zeek's ``util::get_escaped_string``; older versions wrote \\x5c)."""
    if s == "":
        return _ZEEK_EMPTY
    prefix = ""
    if s in (_ZEEK_UNSET, _ZEEK_EMPTY):  # would read back as unset/empty: escape the first char
        prefix, s = f"\\x{ord(s[0]):02x}", s[1:]
    out = []
    for i, ch in enumerate(s):
        o = ord(ch)
        if ch == "\\" and _HEX_ESCAPE.match(s, i):
            out.append(ch)  # a byte that was not text on the wire, already written as Zeek writes it
        elif ch == "\\":
            out.append("\\\\")
        elif ch == _ZEEK_SEPARATOR or (in_set and ch == _ZEEK_SET_SEPARATOR) \
                or o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return prefix + "".join(out)


def zeek_value(value: Any, ztype: str) -> str:
    """One field as Zeek's ASCII writer renders it."""
    if value is None:
        return _ZEEK_UNSET
    if ztype in ("time", "interval"):
        return f"{value:.6f}"
    if ztype == "bool":
        return "T" if value else "F"
    if ztype.startswith(("set[", "vector[")):
        if not value:
            return _ZEEK_EMPTY
        sub = ztype[ztype.index("[") + 1:-1]
        return _ZEEK_SET_SEPARATOR.join(
            _zeek_escape(str(v), True) if sub in ("string", "enum") else zeek_value(v, sub) for v in value)
    if ztype in ("string", "enum"):
        return _zeek_escape(str(value), False)
    if ztype == "double":
        return repr(float(value))
    return str(value)


def _json_value(value: Any, ztype: str | None) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _json_object(row: dict, columns: Sequence[str], types: Sequence[str | None]) -> str:
    obj = {c: _json_value(row[c], t) for c, t in zip(columns, types) if row.get(c) is not None}
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


# --- render ---------------------------------------------------------------------------------

def render(rows: Iterable[dict], fmt: str, columns: Sequence[str], *, zeek_path: str | None = None,
           zeek_types: Sequence[str] | None = None, table_max_rows: int | None = None,
           more_note: str | None = None, title: str | None = None, out: IO[str] | None = None) -> int:
    """Write ``rows`` (dicts keyed by ``columns``) to ``out`` (stdout) in ``fmt``; returns the count.

    ``zeek_types`` (one per column) drives how times, intervals, booleans and sets are shown in
    every format, and is required for ``zeek``. With ``table_max_rows``, a table stops there and,
    when more rows exist, prints ``more_note`` on stderr.
    """
    out = out if out is not None else sys.stdout
    types: list[str | None] = list(zeek_types) if zeek_types is not None else [None] * len(columns)
    if len(types) != len(columns):
        raise ValueError("zeek_types must have one type per column")
    if fmt == "table":
        return _render_table(rows, columns, types, table_max_rows, more_note, title, out)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        n = 0
        for row in rows:
            writer.writerow([_text(row.get(c), t, bools=("true", "false"), unset="")
                             for c, t in zip(columns, types)])
            n += 1
        return n
    if fmt == "jsonl":
        n = 0
        for row in rows:
            out.write(_json_object(row, columns, types) + "\n")
            n += 1
        return n
    if fmt == "json":
        n = 0
        for row in rows:
            out.write(("[\n" if n == 0 else ",\n") + _json_object(row, columns, types))
            n += 1
        out.write("\n]\n" if n else "[]\n")
        return n
    if fmt == "zeek":
        if zeek_path is None or zeek_types is None:
            raise ValueError("the zeek format needs zeek_path and zeek_types")
        return _render_zeek(rows, columns, list(zeek_types), zeek_path, out)
    raise ValueError(f"unknown format {fmt!r}")


def zeek_header(path: str, columns: Sequence[str], types: Sequence[str], opened: float | None = None) -> str:
    """The header lines of a Zeek ASCII log (through ``#types``)."""
    return "".join(line + "\n" for line in (
        "#separator \\x09",
        f"#set_separator{_ZEEK_SEPARATOR}{_ZEEK_SET_SEPARATOR}",
        f"#empty_field{_ZEEK_SEPARATOR}{_ZEEK_EMPTY}",
        f"#unset_field{_ZEEK_SEPARATOR}{_ZEEK_UNSET}",
        f"#path{_ZEEK_SEPARATOR}{path}",
        f"#open{_ZEEK_SEPARATOR}{zeek_timestamp(opened)}",
        _ZEEK_SEPARATOR.join(["#fields", *columns]),
        _ZEEK_SEPARATOR.join(["#types", *types]),
    ))


def zeek_timestamp(t: float | None = None) -> str:
    """``#open``/``#close`` time, ``YYYY-MM-DD-HH-MM-SS`` (UTC; Zeek itself uses local time)."""
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(time.time() if t is None else t))


def _render_zeek(rows: Iterable[dict], columns: Sequence[str], types: list[str], path: str,
                 out: IO[str]) -> int:
    out.write(zeek_header(path, columns, types))
    n = 0
    for row in rows:
        out.write(_ZEEK_SEPARATOR.join(zeek_value(row.get(c), t) for c, t in zip(columns, types)) + "\n")
        n += 1
    out.write(f"#close{_ZEEK_SEPARATOR}{zeek_timestamp()}\n")
    return n


def _capped(rows: Iterable[dict], cap: int | None, state: dict) -> Iterator[dict]:
    for i, row in enumerate(rows):
        if cap is not None and i >= cap:
            state["more"] = True
            return
        yield row


def _render_table(rows: Iterable[dict], columns: Sequence[str], types: Sequence[str | None],
                  cap: int | None, more_note: str | None, title: str | None, out: IO[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
    numeric = {"count", "port", "int", "double", "interval"}
    for c, t in zip(columns, types):
        table.add_column(c, justify="right" if t in numeric else "left", no_wrap=t in ("time", "addr"))
    state: dict[str, bool] = {}
    n = 0
    for row in _capped(rows, cap, state):
        table.add_row(*(_text(row.get(c), t, bools=("T", "F"), unset="-") for c, t in zip(columns, types)))
        n += 1
    terminal = out.isatty()
    # Off a terminal there is no width to fit: let the table be as wide as its content.
    console = Console(file=out, width=None if terminal else 100_000, soft_wrap=not terminal,
                      highlight=False, color_system="auto" if terminal else None)
    console.print(table)
    if state.get("more") and more_note:
        click.echo(more_note, err=True)
    return n
