"""Zeek's expected logs: reading them, and comparing with them the way the shared scorer does
(compare_app.py's norm(), reimplemented: the scorer itself is not imported into the project).
One reader, ``parse_zeek``; the agreement counts run a parser over the reference traces;
``assert_scorer_floors`` runs the scorer itself over a reference folder and holds it to floors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from recorder.core.apps.base import ListOutput, Parser
from tests.helpers import REFERENCE, need, wiretrail_cli
from tests.helpers.streams import run_on_trace, run_parser, tcp_streams

ZEEK_APP = REFERENCE / "zeek-app"
SSL_KEYS = ["id.orig_h", "id.resp_h", "id.resp_p", "version", "cipher", "server_name"]  # compare_app.KEYS


def parse_zeek(text: str) -> list[dict]:
    """Rows of a Zeek ASCII log, as dicts of field name -> text."""
    fields, rows = None, []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("#") or not line.strip():
            continue
        elif fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def norm(v: object) -> str | None:
    """Unset and empty alike; booleans as Zeek writes them; sets compared sorted."""
    if v is None or v in ("-", "(empty)", ""):
        return None
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, list):
        return ",".join(sorted(str(x) for x in v)) or None
    if isinstance(v, str) and "," in v:
        return ",".join(sorted(v.split(",")))
    return str(v)


def unset_as_none(row: dict) -> dict:
    """A row with Zeek's unset ("-") and empty ("(empty)") fields as None."""
    return {k: (None if v in ("-", "(empty)") else v) for k, v in row.items()}


def zeek_rows(path: Path) -> list[dict]:
    """Rows of a Zeek log file (undecodable bytes replaced), as ``parse_zeek`` gives them."""
    return parse_zeek(path.read_text(encoding="utf-8", errors="replace"))


def stream_agreement(log: str, keys: list[str], parsers: dict[str, type[Parser]]) -> tuple[int, int, list]:
    """Baseline rows of ``log`` (over the manifest's traces) matched by our records on ``keys``."""
    manifest = json.loads(need(ZEEK_APP / "manifest.json", "the Zeek app reference").read_text())
    hit = total = 0
    misses: list = []
    for m in manifest:
        if log not in m["logs"]:
            continue
        ours: dict[tuple, int] = {}
        for conn, events in tcp_streams(ZEEK_APP / m["trace"]):
            head = [e for e in events if e[0] == "data"]
            cls = next((p for p in parsers.values() if any(
                p.detect(e[2], e[1], conn) for e in head[:2])), None)
            if cls is None:
                continue
            out = ListOutput()
            run_parser(cls, conn, events, out)
            for rec in out.logs(log.split(".")[0]):
                k = tuple(norm(rec.get(f)) for f in keys)
                ours[k] = ours.get(k, 0) + 1
        for row in zeek_rows(ZEEK_APP / m["logs"][log]):
            k = tuple(norm(row.get(f)) for f in keys)
            total += 1
            if ours.get(k, 0) > 0:
                ours[k] -= 1
                hit += 1
            else:
                misses.append((m["trace"], dict(zip(keys, k))))
    return hit, total, misses


def zeek_header(path: Path) -> list[tuple[str, str]]:
    """A Zeek log's (#fields, #types) pairs."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    names = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
    types = next(ln for ln in lines if ln.startswith("#types")).split("\t")[1:]
    return list(zip(names, types))


def trace_agreement(log: str, keys: list[str], parser_cls, prefixes: tuple[str, ...]) -> tuple[int, int, list]:
    """(rows matched, baseline rows, misses) over every manifest trace whose name has a prefix."""
    manifest = json.loads(need(ZEEK_APP / "manifest.json", "Zeek app reference").read_text())
    hit = total = 0
    misses = []
    for m in manifest:
        if log not in m["logs"] or not m["trace"].startswith(prefixes):
            continue
        base = parse_zeek((ZEEK_APP / m["logs"][log]).read_text(errors="replace"))
        ours = Counter(tuple(norm(r.get(k)) for k in keys)
                       for r in run_on_trace(parser_cls, ZEEK_APP / m["trace"]).logs(log.split(".")[0]))
        for b in base:
            k = tuple(norm(b.get(k)) for k in keys)
            total += 1
            if ours[k] > 0:
                ours[k] -= 1
                hit += 1
            else:
                misses.append((m["trace"], k, sorted(ours)))
    return hit, total, misses


def zeek_ssl_rows(trace: str) -> list[dict]:
    """The rows of the ssl.log Zeek's test suite expects for ``trace`` (a name in manifest.json)."""
    manifest = json.loads(need(ZEEK_APP / "manifest.json", "the Zeek app reference").read_text())
    (entry,) = [m for m in manifest if m["trace"] == trace]
    return [unset_as_none(r) for r in parse_zeek((ZEEK_APP / entry["logs"]["ssl.log"]).read_text())]


def our_ssl_rows(trace: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """``wiretrail ingest`` the trace, then (``wiretrail tls --format zeek`` rows, flow rows)."""
    cli = wiretrail_cli()
    db = tmp_path / "w.db"
    subprocess.run([cli, "ingest", "--db", str(db), str(need(ZEEK_APP / trace, "the Zeek app reference"))],
                   check=True, capture_output=True, timeout=300)
    tls = subprocess.run([cli, "tls", "--db", str(db), "--format", "zeek"], check=True, capture_output=True,
                         text=True, timeout=300).stdout
    flows = subprocess.run([cli, "flows", "--db", str(db), "--format", "zeek"], check=True, capture_output=True,
                           text=True, timeout=300).stdout
    return [unset_as_none(r) for r in parse_zeek(tls)], [unset_as_none(r) for r in parse_zeek(flows)]


def assert_scorer_floors(folder: Path, what: str, floors: dict[str, int], overall_floor: float) -> None:
    """Run the shared scorer (compare_app.py, through the CLI) over ``folder`` and fail when the
    overall agreement is below ``overall_floor`` percent or a log type matches fewer rows than its
    floor (or is missing from the scorer's table); skip when the scorer or the folder is absent."""
    scorer = need(ZEEK_APP / "compare_app.py", "Zeek protocol-log scorer")
    folder = need(folder, what)
    r = subprocess.run([sys.executable, str(scorer), str(folder), "--cli", wiretrail_cli()],
                       capture_output=True, text=True, timeout=1800, check=False)
    out = r.stdout
    m = re.search(r"app agreement: ([\d.]+)% of (\d+) rows", out)
    assert m, out[-2000:] + r.stderr[-2000:]
    per = {log: int(hit) for log, hit in re.findall(r"^(\w+\.log)\s+(\d+)/\d+", out, re.M)}
    assert set(floors) <= set(per), out[-2000:]
    low = {log: (per[log], floor) for log, floor in floors.items() if per[log] < floor}
    assert not low, f"below floor: {low}\n{out[-3000:]}"
    assert float(m.group(1)) >= overall_floor, out[-3000:]
