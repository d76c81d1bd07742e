"""Rotating capture files: written under a temporary name, sealed by fsync, hash and rename.

A file is opened when the first packet after a rotation arrives (no empty files), named

    <prefix>-<UTC start, YYYYmmddTHHMMSSZ>-<sequence>.pcap.part

and sealed -- flushed, fsynced, renamed to ``.pcap``, directory fsynced -- when it reaches the
size limit (a batch is split at the limit, so a file never exceeds it by more than one packet's
record), when the wall-clock interval boundary passes (intervals are aligned: 1h rotates on
the hour), on SIGHUP and at shutdown. The SHA-256 is computed as the bytes are written.

With a ``recipient`` (``encrypt_to``), each file is ``<name>.pcap.age``: encrypted as it is
written (``recorder.core.agecrypt.EncryptingFile``); the SHA-256 and the sealed size are those
of the encrypted bytes on disk, while the size limit and the packet offsets count the pcap
inside. An encrypted file cannot be cut back to a record: when its stream fails (no space;
the encrypting thread writes behind, so this can show at any write or at the seal), the file is
sealed as it stands (``damaged``, packets unknown: 0); a write raises DiskFull then, a seal
returns the damaged file.

A write that fails for lack of space is undone (the file is truncated back to its last whole
record) and raised as DiskFull, so nothing already recorded is lost and the caller may free
space and retry the same packets.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorder.core.agecrypt import SUFFIX as AGE_SUFFIX
from recorder.core.agecrypt import EncryptingFile
from recorder.core.batch import RawBatch
from recorder.core.capio.pcapwrite import FILE_HEADER_LEN, file_header, pack_records, record_sizes
from recorder.core.evidence import file_sha256
from recorder.core.secure_files import GROUP_READ, open_private

PART = ".part"


class DiskFull(Exception):
    """No space left for the packets being written (nothing of them was kept)."""


@dataclass(slots=True)
class OpenFile:
    path: Path  # final name; on disk as path + PART until sealed
    opened_at: float
    capture_id: int | None = None
    size: int = 0
    packets: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    sha: object = None
    fileobj: object = None  # what the pcap is written to: the file, or its EncryptingFile
    disk: object = None  # the file on disk when fileobj encrypts into it

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + PART)


@dataclass(frozen=True, slots=True)
class SealedFile:
    path: Path
    capture_id: int | None
    size: int
    packets: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    sha256: str
    opened_at: float
    sealed_at_ns: int
    damaged: bool = False  # an encrypted file whose stream was cut (no space): sealed as it stands


def slice_batch(raw: RawBatch, lo: int, hi: int) -> RawBatch:
    """Packets lo:hi of a batch (the packet bytes are shared, not copied)."""
    if lo == 0 and hi == len(raw):
        return raw
    return RawBatch(source=raw.source, data=raw.data, off=raw.off[lo:hi], caplen=raw.caplen[lo:hi],
                    wirelen=raw.wirelen[lo:hi], ts=raw.ts[lo:hi], linktype=raw.linktype[lo:hi],
                    file_off=raw.file_off[lo:hi], index=raw.index[lo:hi])


def _write_all(fileobj, blob: bytes) -> None:
    """Write every byte (an unbuffered write may be short when the disk fills) or raise OSError."""
    view = memoryview(blob)
    while view:
        n = fileobj.write(view)
        if not n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def seal_encrypted_leftover(part: Path, sha256: str) -> SealedFile:
    """An encrypted ``.pcap.age.part`` a crash left: the sensor has no key to cut it back to a
    record, so it is renamed as it stands (decrypting it gives its whole 64 KiB chunks, then an
    error for the cut one). Its packet count and times are unknown here (0 and None)."""
    final = part.with_name(part.name[: -len(PART)])
    size = part.stat().st_size
    os.replace(part, final)
    fsync_dir(final.parent)
    return SealedFile(path=final, capture_id=None, size=size, packets=0, first_ts_ns=None, last_ts_ns=None,
                      sha256=sha256, opened_at=0.0, sealed_at_ns=time.time_ns())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RotatingWriter:
    """Writes RawBatches into rotating pcap files under ``directory``.

    ``on_open(final_path) -> capture_id`` is called when a file is created (the recorder records
    it in the database then, so flows can name their file); ``on_seal(SealedFile)`` after a file
    is sealed.
    """

    def __init__(self, directory: Path, prefix: str, *, linktype: int, snaplen: int, rotate_size: int,
                 rotate_interval: int, on_open: Callable[[Path], int | None] | None = None,
                 on_seal: Callable[[SealedFile], None] | None = None,
                 clock: Callable[[], float] = time.time, recipient=None) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.linktype = linktype
        self.snaplen = snaplen
        self.rotate_size = rotate_size
        self.rotate_interval = rotate_interval
        self.on_open = on_open
        self.on_seal = on_seal
        self.clock = clock
        self.recipient = recipient  # an age X25519 recipient: files are encrypted for it
        self.current: OpenFile | None = None
        self.sequence = 0
        self.bytes_written = 0
        self.files_sealed = 0
        self._boundary: float | None = None

    # -- writing

    def write(self, raw: RawBatch) -> list[tuple[int, int, int | None]]:
        """Append every packet of ``raw``; set ``raw.file_off`` to each record's offset.

        Returns the segments ``(lo, hi, capture_id)``: the packets lo:hi went to the file with
        that capture id (a batch that crosses the size limit spans two files). Raises DiskFull
        with nothing of the failing segment kept (earlier segments stay written and sealed).
        """
        segments: list[tuple[int, int, int | None]] = []
        sizes = record_sizes(raw)
        lo, n = 0, len(raw)
        while lo < n:
            f = self.current or self._open()
            room = self.rotate_size - f.size
            # how many of the remaining packets fit (always at least one into a fresh file)
            csum = np.cumsum(sizes[lo:])
            k = int(np.searchsorted(csum, room, side="right"))
            if k == 0:
                if f.packets == 0:
                    k = 1
                else:
                    self.seal()
                    continue
            hi = lo + k
            self._append(f, raw, lo, hi)
            segments.append((lo, hi, f.capture_id))
            lo = hi
            if f.size >= self.rotate_size:
                self.seal()
        return segments

    def _append(self, f: OpenFile, raw: RawBatch, lo: int, hi: int) -> None:
        blob, rel = pack_records(raw, lo, hi)  # the records, and where each starts in them
        try:
            _write_all(f.fileobj, blob)
        except OSError as err:
            if f.disk is not None:  # an age stream cannot be cut back: sealed as it stands
                self._abandon(f)
            else:
                self._undo(f)
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(str(f.part)) from None
            raise
        raw.file_off[lo:hi] = f.size + rel
        if f.disk is None:
            f.sha.update(blob)
        f.size += len(blob)
        f.packets += hi - lo
        first, last = int(raw.ts[lo]), int(raw.ts[hi - 1])
        f.first_ts_ns = first if f.first_ts_ns is None else f.first_ts_ns
        f.last_ts_ns = last
        self.bytes_written += len(blob)

    def _undo(self, f: OpenFile) -> None:
        """Cut the file back to its last whole record after a failed write."""
        try:
            f.fileobj.seek(f.size)
            f.fileobj.truncate(f.size)
        except OSError:
            pass

    def _abandon(self, f: OpenFile) -> SealedFile | None:
        """An encrypted file whose stream failed: sealed as it stands (``damaged``); decrypting it
        gives its whole 64 KiB chunks. An empty one is removed (its record stays unsealed); if
        sealing fails, it stays a ``.part`` for the next start."""
        self.current = None
        f.fileobj.abort()
        try:
            f.disk.close()
        except OSError:
            pass
        try:
            if f.part.stat().st_size == 0:  # nothing reached the disk: nothing to seal
                f.part.unlink()
                return None
            left = seal_encrypted_leftover(f.part, file_sha256(f.part))
        except OSError:
            return None
        sealed = SealedFile(path=left.path, capture_id=f.capture_id, size=left.size, packets=0, first_ts_ns=None,
                            last_ts_ns=None, sha256=left.sha256, opened_at=f.opened_at,
                            sealed_at_ns=left.sealed_at_ns, damaged=True)
        self.files_sealed += 1
        if self.on_seal is not None:
            self.on_seal(sealed)
        return sealed

    def _open(self) -> OpenFile:
        now = self.clock()
        self.sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        ext = ".pcap" + (AGE_SUFFIX if self.recipient is not None else "")
        path = self.directory / f"{self.prefix}-{stamp}-{self.sequence:06d}{ext}"
        while path.exists() or path.with_name(path.name + PART).exists():
            self.sequence += 1
            path = self.directory / f"{self.prefix}-{stamp}-{self.sequence:06d}{ext}"
        f = OpenFile(path=path, opened_at=now, sha=hashlib.sha256())
        header = file_header(self.linktype, self.snaplen)
        try:
            # unbuffered: a write that finds the disk full fails there, not later in close()
            # 0640 whatever the umask: the recorder's group may read its captures, nobody else
            f.fileobj = open_private(f.part, GROUP_READ, buffering=0)  # closed when sealed
            if self.recipient is not None:
                f.disk, f.fileobj = f.fileobj, EncryptingFile(f.fileobj, self.recipient, on_cipher=f.sha.update)
            _write_all(f.fileobj, header)
        except OSError as err:
            for fo in (f.fileobj, f.disk):
                if fo is not None:
                    try:
                        fo.close()
                    except OSError:
                        pass
            try:
                os.unlink(f.part)
            except OSError:
                pass
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(str(f.part)) from None
            raise
        if f.disk is None:
            f.sha.update(header)
        f.size = FILE_HEADER_LEN
        self.bytes_written += FILE_HEADER_LEN
        if self.on_open is not None:
            f.capture_id = self.on_open(path)
        self.current = f
        return f

    # -- rotation and sealing

    def next_boundary(self, now: float) -> float | None:
        if not self.rotate_interval:
            return None
        return (now // self.rotate_interval + 1) * self.rotate_interval

    def tick(self, now: float | None = None) -> bool:
        """Seal the open file if the interval boundary has passed; True if it did."""
        now = self.clock() if now is None else now
        if self._boundary is None:
            self._boundary = self.next_boundary(now)
        if self._boundary is not None and now >= self._boundary:
            self._boundary = self.next_boundary(now)
            return self.seal() is not None
        return False

    def seal(self) -> SealedFile | None:
        """Flush, fsync and rename the open file; None if no file is open."""
        f = self.current
        if f is None:
            return None
        self.current = None
        size = f.size
        if f.disk is not None:  # end the age stream (its last chunk), then the file as below
            try:
                f.fileobj.close()
            except OSError:  # its last chunks could not be written: sealed as it stands
                return self._abandon(f)
            f.fileobj, size = f.disk, f.fileobj.cipher_size
        os.fsync(f.fileobj.fileno())
        f.fileobj.close()
        os.replace(f.part, f.path)
        fsync_dir(self.directory)
        sealed = SealedFile(path=f.path, capture_id=f.capture_id, size=size, packets=f.packets,
                            first_ts_ns=f.first_ts_ns, last_ts_ns=f.last_ts_ns, sha256=f.sha.hexdigest(),
                            opened_at=f.opened_at, sealed_at_ns=time.time_ns())
        self.files_sealed += 1
        if self.on_seal is not None:
            self.on_seal(sealed)
        return sealed

    def close(self) -> SealedFile | None:
        return self.seal()
