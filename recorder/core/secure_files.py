"""Files Wiretrail creates are private: owner-only (0600), or 0640 for the recorder's group.

A store holds every cleartext password the parsers saw, and extracted files and reports carry
the traffic's content, so every file the package creates goes through this module and gets an
exact mode whatever the process's umask (a umask can only take bits away, and 0 would leave a
wider default; the mode is set again with fchmod after creation).

* :func:`create_private` creates a new file (never follows a symlink) and returns its fd.
* :func:`ensure_private` creates an empty file if none exists: SQLite's main file, made before
  the engine connects. SQLite gives the ``-wal`` and ``-shm`` files the main file's mode.
* :func:`atomic_output` writes an output (EVE file, manifest, pcap) under a temporary name
  beside the target and renames it into place only when the writing succeeded, so a failure
  leaves nothing half-written at the target.
* :func:`describe_mode` says who besides the owner can read a file (for ``db info``).
"""

from __future__ import annotations

import grp
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

PRIVATE = 0o600  # files an investigator's commands create
GROUP_READ = 0o640  # the recorder's captures and database: its group (the unit's Group=) may read

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def create_private(path: str | os.PathLike[str], mode: int = PRIVATE) -> int:
    """Create ``path`` (it must not exist) with exactly ``mode``; returns a write-only fd.
    Raises FileExistsError, or OSError."""
    fd = os.open(path, _CREATE | getattr(os, "O_BINARY", 0), mode)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_private(path: str | os.PathLike[str], mode: int = PRIVATE, *, buffering: int = -1) -> IO[bytes]:
    """A new file ``path`` opened for binary writing with exactly ``mode`` (see create_private)."""
    return os.fdopen(create_private(path, mode), "wb", buffering=buffering)


def ensure_private(path: str | os.PathLike[str], mode: int = PRIVATE) -> bool:
    """Create ``path`` empty with ``mode`` unless it exists (then its mode is left as it is).
    Returns True if it was created."""
    try:
        os.close(create_private(path, mode))
    except FileExistsError:
        return False
    return True


class AtomicFile:
    """A binary file written under a temporary name beside ``path`` (mode ``mode`` from the
    start); :meth:`commit` flushes, fsyncs and renames it over ``path``, :meth:`discard` removes
    it. Whichever comes first wins; the other is then a no-op. Raises OSError."""

    __slots__ = ("done", "file", "path", "tmp")

    def __init__(self, path: str | os.PathLike[str], mode: int = PRIVATE) -> None:
        self.path = os.fspath(path)
        directory = os.path.dirname(self.path) or "."
        fd, self.tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", suffix=".tmp",
                                        dir=directory)
        try:
            os.fchmod(fd, mode)
            self.file: IO[bytes] = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise
        self.done = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self._remove()
            raise

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        self._remove()

    def _remove(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = PRIVATE, *, text: bool = False,
                  encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Write ``path`` through an :class:`AtomicFile`: renamed into place with ``mode`` on a clean
    exit; on an exception the temporary file is removed and ``path`` is untouched."""
    out = AtomicFile(path, mode)
    try:
        if text:
            wrapper = io.TextIOWrapper(out.file, encoding=encoding, newline="")
            yield wrapper
            wrapper.flush()
            wrapper.detach()
        else:
            yield out.file
    except BaseException:
        out.discard()
        raise
    out.commit()


def describe_mode(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``("0600", None)``: a file's permission bits in octal, and who else can read it
    ("anyone on this machine", "group NAME") or None when only the owner can."""
    st = os.stat(path)
    bits = stat.S_IMODE(st.st_mode)
    if bits & stat.S_IROTH:
        return f"{bits:04o}", "anyone on this machine"
    if bits & stat.S_IRGRP:
        try:
            name = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            name = str(st.st_gid)
        return f"{bits:04o}", f"group {name}"
    return f"{bits:04o}", None
