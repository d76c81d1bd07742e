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
    # per sealed row (by its "id"): "ok", "deleted by retention", "not re-read", or its first problem
    results: dict = field(default_factory=dict)
    # per stream (sensor, interface): the chain value of its last sealed file
    heads: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def _problem(self, row: dict, text: str) -> None:
        self.problems.append(text)
        self.results.setdefault(row["id"], text.split(": ", 1)[1] if ": " in text else text)


def verify(rows: Iterable[dict], *, check_files: bool = True, keep_order: bool = False,
           directories: Iterable[str] | None = None,
           progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Check the sealed captures (``origin == 'recorder'`` rows) and their files.

    Rows are put in sealing order per stream, unless ``keep_order`` (a manifest: its order is
    the one to check). A file shorter or longer than sealed, a changed byte, a missing file, an
    altered, removed or reordered record each give a problem line. With ``check_files``, a
    ``*.pcap`` file in ``directories`` (default: those holding the sealed files) that no row
    names was added afterwards and is a problem too.
    """
    report = VerifyReport()
    streams: dict[tuple, list[dict]] = {}
    known: set[str] = set()
    for row in rows:
        known.add(os.path.realpath(row["path"]))
        if row.get("origin") != "recorder" or row.get("sealed_at") is None:
            continue
        streams.setdefault((row.get("sensor"), row.get("interface")), []).append(row)
    for (sensor, iface), entries in sorted(streams.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if not keep_order:
            entries.sort(key=lambda r: (r["sealed_at"], r["id"]))
        prev = GENESIS
        for row in entries:
            name = os.path.basename(row["path"])
            report.links_checked += 1
            if (row["prev_chain"] or GENESIS) != prev:
                report._problem(row, f"{row['path']}: chain broken before this file (a sealed file's "
                                     f"record is missing, reordered or was altered; stream {sensor}/{iface})")
            if record_chain(row) != row["chain"]:
                report._problem(row, f"{row['path']}: its record was altered (chain value does not match)")
            prev = row["chain"] or ""
            if row.get("deleted_at") is not None:
                report.files_deleted += 1
                report.results.setdefault(row["id"], "deleted by retention")
                continue
            if not check_files:
                report.results.setdefault(row["id"], "not re-read")
                continue
            if progress:
                progress(name)
            _check_file(row, report)
        report.heads[(sensor, iface)] = prev
    if check_files:
        dirs = directories if directories is not None else {
            os.path.dirname(r["path"]) or "." for e in streams.values() for r in e}
        for directory in sorted(dirs):
            for extra in unrecorded_files(directory, known):
                report.problems.append(f"{extra}: a capture file no sealed record names (added afterwards)")
    return report


def _check_file(row: dict, report: VerifyReport) -> None:
    path = row["path"]
    try:
        size = os.stat(path).st_size
        digest = file_sha256(path)
    except FileNotFoundError:
        report._problem(row, f"{path}: file is missing (not deleted by retention)")
        return
    except OSError as err:
        report._problem(row, f"{path}: cannot read: {err.strerror or err}")
        return
    report.files_checked += 1
    sealed_size = row.get("bytes")
    if sealed_size is not None and size != int(sealed_size):
        what = "truncated" if size < int(sealed_size) else "grown"
        report._problem(row, f"{path}: {what}: {size} bytes, sealed with {sealed_size}")
    elif digest != row["sha256"]:
        report._problem(row, f"{path}: SHA-256 {digest} differs from the sealed {row['sha256']}")
    report.results.setdefault(row["id"], "ok")


def check_decrypts(rows: Iterable[dict], identities, report: VerifyReport) -> int:
    """With the age identities: every encrypted sealed file still on disk (``*.pcap.age``) is
    decrypted (in memory, as a stream; nothing is written) and must authenticate to its end.
    The chain itself needs no key: it covers the encrypted bytes. Returns the files decrypted."""
    from recorder.core.agecrypt import DecryptingReader, is_age

    n = 0
    for row in rows:
        path = row["path"]
        if row.get("origin") != "recorder" or row.get("sealed_at") is None or row.get("deleted_at") is not None \
                or not os.path.isfile(path) or not is_age(path):
            continue
        try:
            with DecryptingReader(path, identities) as r:
                while r.read(1 << 20):
                    pass
        except WiretrailError as err:
            report._problem(row, str(err))
            continue
        n += 1
    return n


def unrecorded_files(directory: str, known: set[str]) -> list[str]:
    """The ``*.pcap`` and ``*.pcap.age`` files directly in ``directory`` whose real path is not in ``known``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith((".pcap", ".pcap.age")) and not name.startswith(".") and os.path.isfile(path) \
                and os.path.realpath(path) not in known:
            found.append(path)
    return found
