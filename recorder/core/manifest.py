"""Hand-over manifest: the sealed capture files, their hashes and chain, for checking a copy of
them on another machine without the database.

``build`` turns the store's sealed-file records and a :class:`VerifyReport` made at export time
into a JSON-ready dict::

    {"format": "wiretrail-manifest-v1", "tool": "wiretrail 0.1.0", "exported_at": "...Z",
     "database": "...", "verified": true, "problems": [],
     "streams": [{"sensor": "s1", "interface": "eth1", "head": "<chain of the last file>"}],
     "files": [{"name", "path", "sensor", "interface", "size", "packets", "first_ts", "last_ts",
                "first_ts_ns", "last_ts_ns", "sha256", "prev_chain", "chain", "sealed_at",
                "deleted_at", "verification"}, ...]}

Files are listed per stream in chain order. ``check`` verifies a directory holding copies of the
files (found by name) against it: each entry's chain link and chain value (a reordered, edited or
swapped entry breaks them), each stream's head, each file's size and SHA-256 (a changed byte, a
truncated or a missing file), and no other ``*.pcap`` (or ``*.pcap.age``) file in the directory (one added
afterwards). The manifest is not signed: its own SHA-256 (printed at export) or the stream heads
are what the receiving side compares through another channel. ``export`` builds and writes one
(owner-only, atomically) and returns what to print: ``wiretrail verify --export`` calls it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recorder.core.errors import WiretrailError
from recorder.core.evidence import VerifyReport, verify

FORMAT = "wiretrail-manifest-v1"
_FILE_KEYS = ("name", "sensor", "interface", "size", "packets", "first_ts_ns", "last_ts_ns", "sha256",
              "prev_chain", "chain")


class ManifestError(WiretrailError):
    """A manifest that cannot be read or is not a Wiretrail manifest."""


def _rfc3339(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build(rows: Iterable[dict], report: VerifyReport, *, tool: str, database: str,
          now_ns: int) -> dict[str, Any]:
    """The manifest of the sealed files among ``rows`` (as ``Store.captures()`` gives them),
    with each file's result from ``report`` (``verify`` over the same rows)."""
    sealed = [r for r in rows if r.get("origin") == "recorder" and r.get("sealed_at") is not None]
    sealed.sort(key=lambda r: (str(r.get("sensor")), str(r.get("interface")), r["sealed_at"], r["id"]))
    files = [{
        "name": os.path.basename(r["path"]), "path": r["path"], "sensor": r.get("sensor"),
        "interface": r.get("interface"), "size": int(r["bytes"] or 0), "packets": int(r["packets"] or 0),
        "first_ts": _rfc3339(r["first_ts_ns"]), "last_ts": _rfc3339(r["last_ts_ns"]),
        "first_ts_ns": r["first_ts_ns"], "last_ts_ns": r["last_ts_ns"], "sha256": r["sha256"],
        "prev_chain": r["prev_chain"], "chain": r["chain"], "sealed_at": _rfc3339(r["sealed_at"]),
        "deleted_at": _rfc3339(r.get("deleted_at")), "verification": report.results.get(r["id"], "not checked"),
    } for r in sealed]
    streams = [{"sensor": s, "interface": i, "head": h} for (s, i), h in report.heads.items()]
    return {"format": FORMAT, "tool": tool, "exported_at": _rfc3339(now_ns), "database": database,
            "verified": report.ok, "problems": list(report.problems), "streams": streams, "files": files}


@dataclass(frozen=True, slots=True)
class Exported:
    """A manifest written: its content and the SHA-256 of the file's bytes."""

    manifest: dict[str, Any]
    sha256: str

    def summary(self, path: str) -> str:
        """The line that names the file, its entries, its hash and the streams' heads."""
        heads = ", ".join(f"{s['sensor']}/{s['interface']} {s['head']}" for s in self.manifest["streams"]) or "none"
        return (f"{path}: {len(self.manifest['files'])} file(s); manifest SHA-256 {self.sha256}; "
                f"chain head(s): {heads}")


def export(path: str, rows: Iterable[dict], report: VerifyReport, *, database: str, tool: str | None = None,
           now_ns: int | None = None) -> Exported:
    """Write the manifest of ``rows`` and ``report`` (see ``build``) to ``path``, owner-only and
    atomically; ``tool`` defaults to this Wiretrail, ``now_ns`` to now. ManifestError (one line)
    when the file cannot be written."""
    from recorder import __version__
    from recorder.core.secure_files import atomic_output

    manifest = build(rows, report, tool=tool or f"wiretrail {__version__}", database=database,
                     now_ns=time.time_ns() if now_ns is None else now_ns)
    text = json.dumps(manifest, indent=1) + "\n"
    try:
        with atomic_output(path, text=True) as f:
            f.write(text)
    except OSError as err:
        raise ManifestError(f"cannot write: {err.strerror or err}", path=path) from None
    return Exported(manifest, hashlib.sha256(text.encode()).hexdigest())


def load(path: str) -> dict[str, Any]:
    """Read and check the shape of a manifest; ManifestError (one line) if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise ManifestError(f"cannot read: {err.strerror or err}", path=path) from err
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"not JSON: {err}", path=path) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"not a Wiretrail manifest (no \"format\": \"{FORMAT}\")", path=path)
    files, streams = data.get("files"), data.get("streams")
    if not isinstance(files, list) or not isinstance(streams, list):
        raise ManifestError("\"files\" and \"streams\" must be lists", path=path)
    for n, entry in enumerate(files):
        missing = [k for k in _FILE_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ManifestError(f"file entry {n + 1} lacks {', '.join(missing)}", path=path)
        name = entry["name"]
        if not isinstance(name, str) or not name or os.path.basename(name) != name or name.startswith("."):
            raise ManifestError(f"file entry {n + 1}: bad file name {name!r}", path=path)
    return data


def check(manifest: dict[str, Any], directory: str) -> VerifyReport:
    """Verify the copies in ``directory`` against ``manifest`` (see the module docstring)."""
    rows = []
    for n, e in enumerate(manifest["files"]):
        rows.append({
            "id": n, "path": os.path.join(directory, e["name"]), "origin": "recorder", "sealed_at": n,
            "sensor": e["sensor"], "interface": e["interface"], "sha256": e["sha256"], "packets": e["packets"],
            "bytes": e["size"], "first_ts_ns": e["first_ts_ns"], "last_ts_ns": e["last_ts_ns"],
            "prev_chain": e["prev_chain"], "chain": e["chain"],
            "deleted_at": e.get("deleted_at"),
        })
    report = verify(rows, keep_order=True, directories=[directory])
    heads = {(s.get("sensor"), s.get("interface")): s.get("head") for s in manifest["streams"] if isinstance(s, dict)}
    for key in sorted(set(heads) | set(report.heads), key=str):
        if heads.get(key) != report.heads.get(key):
            report.problems.append(f"stream {key[0]}/{key[1]}: the chain ends at {report.heads.get(key)}, "
                                   f"the manifest's head is {heads.get(key)} (entries removed or added)")
    for e in manifest["files"]:
        result = e.get("verification")
        if result not in ("ok", "deleted by retention"):
            report.problems.append(f"{e['name']}: at export this file was not verified: {result}")
    return report
