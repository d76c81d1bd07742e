"""Decoded batches between the processes of an ingest: what the application layer and the
inspectors read of a batch (``APP_COLUMNS``), the message carrying it (``batch_message``: the
packets' bytes through the pipe, or where they lie in the capture file), and its receiving side
(``SpanReader``, ``Batch``)."""

from __future__ import annotations

import os
import pickle

import numpy as np

from recorder.core.errors import CaptureError

# The columns of a decoded batch the application layer reads (``AppLayer.feed``).
APP_COLUMNS = ("proto", "pay_cap", "flags", "l4_ok", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport",
                "pkt", "seq", "ack", "pay_off", "plen")


class Batch:
    """What ``AppLayer.feed`` reads of a RawBatch (``ts``, ``data``) or a DecodedBatch (``cols``,
    ``payloads``), rebuilt in the application layer's process."""

    __slots__ = ("ts", "data", "cols", "payloads", "n")

    def __init__(self, n: int, ts=None, data: bytes = b"", cols: dict | None = None,
                 payloads: dict | None = None) -> None:
        self.n, self.ts, self.data, self.cols, self.payloads = n, ts, data, cols or {}, payloads or {}

    def __len__(self) -> int:
        return self.n


def batch_message(raw, dec) -> tuple[bytes, bytes | None]:
    """One batch for a process of the application layer or of an inspector: the pickled head
    (``"feed"``, packets, times, the ``APP_COLUMNS``, payloads, span) and the packets' bytes, or
    None for them when the batch lies unchanged in its capture file (``RawBatch.in_file``): then
    the span (file, offset, length) says where, the payload offsets point into that span, and the
    receiver reads it there (``SpanReader``) instead of every byte crossing a pipe (measured:
    README, "Measured choices")."""
    cols = {k: dec.cols[k] for k in APP_COLUMNS}
    span = None
    if raw.in_file and len(raw):
        base = int(raw.file_off[0])
        span = (raw.source, base, int(raw.file_off[-1] + 16 + raw.caplen[-1]) - base)
        pay = cols["pay_off"]
        if len(pay):
            shift = (raw.file_off + (16 - base) - raw.off)[cols["pkt"]]
            cols["pay_off"] = np.where(pay >= 0, pay + shift, pay)
    head = pickle.dumps(("feed", len(raw), raw.ts, cols, dec.payloads, span), protocol=pickle.HIGHEST_PROTOCOL)
    return head, (None if span is not None else raw.data)


class SpanReader:
    """A receiver's side of ``batch_message``: a batch's bytes from its pipe, or from its span of
    the capture file (the last file stays open)."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._fd = -1

    def data(self, span: tuple[str, int, int] | None, recv) -> bytes:
        if span is None:
            return recv.recv_bytes()
        path, offset, length = span
        try:
            if path != self._path:
                self.close()
                self._fd = os.open(path, os.O_RDONLY)
                self._path = path
            data = os.pread(self._fd, length, offset)
        except OSError as err:
            raise CaptureError(f"cannot read the capture again: {err.strerror or err}", path=path,
                               offset=offset) from None
        if len(data) != length:
            raise CaptureError("the capture became shorter while it was read", path=path, offset=offset + len(data))
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._path = -1, None
