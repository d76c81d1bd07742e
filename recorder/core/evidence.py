"""Chain of custody: each sealed capture file's SHA-256 chained to the previous file's entry.

The recorder seals files one after another per stream (sensor and interface). The entry of a
sealed file is its ``chain`` value::

    chain = sha256("wiretrail-chain-v1|" + prev_chain + "|" + name + "|" + sha256 + "|"
                   + packets + "|" + bytes + "|" + first_ts_ns + "|" + last_ts_ns)

where ``prev_chain`` is the previous sealed file's chain in the same stream (64 zeros for the
first). Altering a file changes its sha256; altering a database record breaks its chain value;
deleting a record breaks the next file's ``prev_chain``. A file that retention deleted keeps its
record (``deleted_at``) so the chain still verifies, and the verifier does not look for it.

``verify`` re-reads every file still on disk and checks every link; it reports problems as
one-line strings and never stops at the first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from recorder.core.errors import WiretrailError

GENESIS = "0" * 64


def chain_hash(prev_chain: str, *, name: str, sha256: str, packets: int, size: int,
               first_ts_ns: int | None, last_ts_ns: int | None) -> str:
    text = "|".join(["wiretrail-chain-v1", prev_chain, name, sha256, str(packets), str(size),
                     str(first_ts_ns if first_ts_ns is not None else ""),
                     str(last_ts_ns if last_ts_ns is not None else "")])
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


def record_chain(row: dict) -> str:
    """The chain value a capture row should carry, from its own fields and its prev_chain."""
    return chain_hash(row["prev_chain"] or GENESIS, name=os.path.basename(row["path"]), sha256=row["sha256"] or "",
                      packets=int(row["packets"] or 0), size=int(row["bytes"] or 0),
                      first_ts_ns=row["first_ts_ns"], last_ts_ns=row["last_ts_ns"])


class EvidenceError(WiretrailError):
    """The evidence did not verify (the problems are in the VerifyReport)."""


@dataclass(slots=True)
class VerifyReport:
    files_checked: int = 0
    files_deleted: int = 0  # removed by retention, recorded as such
    links_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(rows: Iterable[dict], *, check_files: bool = True,
           progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Check the sealed captures (``origin == 'recorder'`` rows, any order) and their files."""
    report = VerifyReport()
    streams: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("origin") != "recorder" or row.get("sealed_at") is None:
            continue
        streams.setdefault((row.get("sensor"), row.get("interface")), []).append(row)
    for (sensor, iface), entries in sorted(streams.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        entries.sort(key=lambda r: (r["sealed_at"], r["id"]))
        prev = GENESIS
        for row in entries:
            name = os.path.basename(row["path"])
            report.links_checked += 1
            if (row["prev_chain"] or GENESIS) != prev:
                report.problems.append(f"{row['path']}: chain broken before this file (a sealed file's "
                                       f"record is missing or was altered; stream {sensor}/{iface})")
            if record_chain(row) != row["chain"]:
                report.problems.append(f"{row['path']}: its database record was altered (chain value does not match)")
            prev = row["chain"] or ""
            if row.get("deleted_at") is not None:
                report.files_deleted += 1
                continue
            if not check_files:
                continue
            if progress:
                progress(name)
            try:
                digest = file_sha256(row["path"])
            except FileNotFoundError:
                report.problems.append(f"{row['path']}: file is missing (not deleted by retention)")
                continue
            except OSError as err:
                report.problems.append(f"{row['path']}: cannot read: {err.strerror or err}")
                continue
            report.files_checked += 1
            if digest != row["sha256"]:
                report.problems.append(f"{row['path']}: SHA-256 {digest} differs from the sealed {row['sha256']}")
    return report
