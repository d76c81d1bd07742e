"""Retention: which sealed capture files to delete, oldest first, to honour the limits.

Three limits, any of which may be off: total bytes of sealed files (``retain_bytes``), free
space on the output file system (``min_free_percent``) and age (``retain_days``, by the time
the file was sealed). Only sealed ``*.pcap`` (or encrypted ``*.pcap.age``) files are candidates;
the open ``.part`` file never is. Files sort by name, which starts with the stream prefix and the UTC start time; the age
order across streams uses the modification time (the sealing time).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Candidate:
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Limits:
    retain_bytes: int = 0  # 0 = off
    min_free_percent: float = 0.0  # 0 = off
    retain_days: float = 0.0  # 0 = off


def sealed_files(directory: Path) -> list[Candidate]:
    """Sealed capture files in ``directory``, oldest first."""
    out = []
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False) and entry.name.endswith((".pcap", ".pcap.age")):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(Candidate(Path(entry.path), st.st_size, st.st_mtime))
    out.sort(key=lambda c: (c.mtime, c.path.name))
    return out


def plan(files: list[Candidate], limits: Limits, *, now: float, disk_total: int, disk_free: int,
         need_bytes: int = 0) -> list[tuple[Candidate, str]]:
    """The files to delete (oldest first) with the limit that condemns each.

    ``need_bytes`` is space wanted beyond the free-space limit (a write that just failed for lack
    of space asks for room for itself).
    """
    doomed: list[tuple[Candidate, str]] = []
    total = sum(c.size for c in files)
    free = disk_free
    min_free = disk_total * limits.min_free_percent / 100.0 if limits.min_free_percent else 0.0
    for c in files:
        reason = None
        if limits.retain_days and now - c.mtime > limits.retain_days * 86400:
            reason = f"older than {limits.retain_days:g} days"
        elif limits.retain_bytes and total > limits.retain_bytes:
            reason = f"captures above retain_bytes {limits.retain_bytes}"
        elif (min_free or need_bytes) and free < min_free + need_bytes:
            reason = (f"free space below {limits.min_free_percent:g}%" if free < min_free
                      else "no space left for new packets")
        if reason is None:
            break  # files are oldest first: once one may stay, the newer ones may too
        doomed.append((c, reason))
        total -= c.size
        free += c.size
    return doomed


def enforce(directory: Path, limits: Limits, *, now: float, need_bytes: int = 0,
            on_delete: Callable[[Path, str], None] | None = None) -> int:
    """Delete what ``plan`` condemns; returns the number of files deleted."""
    usage = shutil.disk_usage(directory)
    deleted = 0
    for c, reason in plan(sealed_files(directory), limits, now=now, disk_total=usage.total,
                          disk_free=usage.free, need_bytes=need_bytes):
        try:
            os.unlink(c.path)
        except FileNotFoundError:  # another capture process of this recorder deleted it first
            continue
        deleted += 1
        if on_delete is not None:
            on_delete(c.path, reason)
    return deleted
