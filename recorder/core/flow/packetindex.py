"""The packet index: where each flow's packets lie in a capture file, built while it is metered.

For every uncompressed pcap or pcapng file, the packets of each flow key are listed as byte
ranges of their records (pcap: the 16-byte record header plus data; pcapng: a packet block's
first 28 bytes plus data, without its options and trailer), in file order, as unsigned LEB128
varints: the first record's offset and twice its length (plus one for an early fragment, below),
then for each next record the gap since the end of the one before and twice its length. A flow
whose packets sit close together costs three or four bytes a packet. One entry per (file, key), with the first and last packet time, kept in buckets of
keys (one row per bucket and file), so a query by uid, host or time reads a bucket row per file
and then only the ranges its entries name.

The key is a symmetric 64-bit hash of (IP protocol, the two addresses, and the two ports for
TCP and UDP): both directions of a connection, and each of its rows in several rotated files,
share it; connections of the same key at other times are told apart by packet time when the
packets are read. A tunnelled packet is listed under its inner and its outer key. The fragments of
a reassembled IP datagram are listed under the datagram's key; those before the one that
completed it are marked early (their time is before the flow's first packet, which is the
completing fragment's). The recorder does not mark early fragments (their packets may lie in the
file before), so live indexes list only completing fragments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from recorder.core.batch import DecodedBatch, RawBatch
from recorder.core.flow.indexformat import (  # noqa: F401 - the stored form, re-exported for the writers
    BUCKET_SHIFT,
    DIRECTORY_COLUMNS,
    RECORD_HEADER,
    bucket_of,
    decode_ranges,
    flow_key,
    indexed_header,
)
from recorder.core.flow.indexkernel import encode_varints, key_order

_M = np.uint64(0xBF58476D1CE4E5B9)
_N = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M
        x = (x ^ (x >> np.uint64(27))) * _N
        return x ^ (x >> np.uint64(31))


def key_hashes(proto: np.ndarray, a_hi: np.ndarray, a_lo: np.ndarray, a_port: np.ndarray,
               b_hi: np.ndarray, b_lo: np.ndarray, b_port: np.ndarray) -> np.ndarray:
    """The index key of each row (int64): the same for either direction. Ports count only for
    TCP (6) and UDP (17)."""
    proto = np.asarray(proto).astype(np.uint64)
    ported = (proto == 6) | (proto == 17)
    ap = np.where(ported, np.asarray(a_port).astype(np.uint64), np.uint64(0))
    bp = np.where(ported, np.asarray(b_port).astype(np.uint64), np.uint64(0))
    with np.errstate(over="ignore"):
        ea = _mix(np.asarray(a_hi, dtype=np.uint64) ^ _mix(np.asarray(a_lo, dtype=np.uint64) ^ _mix(ap + _GOLD)))
        eb = _mix(np.asarray(b_hi, dtype=np.uint64) ^ _mix(np.asarray(b_lo, dtype=np.uint64) ^ _mix(bp + _GOLD)))
        return (_mix(proto * _GOLD + np.uint64(1)) + ea + eb).view(np.int64)


# A file's entries are stored in buckets of keys (the key's top bits), one row per bucket and
# file, so storing a file costs at most BUCKETS rows whatever its number of flows, and a lookup
# reads one bucket row (a few dozen keys) per file. A row: the bucket, its first and last packet
# time, packets, keys, a directory (per key, little-endian int64: key, first ts, last ts,
# packets, record bytes, end of its ranges in ``ranges``) and the keys' ranges end to end.
IndexEntry = tuple[int, int, int, int, int, bytes, bytes]  # bucket, first, last, packets, keys, directory, ranges


@dataclass(frozen=True, slots=True)
class PendingIndex:
    """A file's collected packets, on their way to the store's writer (which sorts and encodes
    them there, off the metering process: ``FlowWriter.put_index``)."""

    capture_id: int
    builder: IndexBuilder


class IndexBuilder:
    """Collects (key, record offset, record length, time) of every decoded row of one file;
    ``entries()`` at the end of the file. ``add`` is a few vectorised operations per batch."""

    def __init__(self, fragments: bool = True, header: int = RECORD_HEADER) -> None:
        self.header = header  # bytes before a packet's data: a pcap record's 16, a pcapng packet block's 28
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # key, offset, length, time
        self._early: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # early fragments, the same
        self.packets = 0
        self.fragments = fragments  # list the early fragments of reassembled datagrams (DecodedBatch.members)

    def add(self, raw: RawBatch, dec: DecodedBatch) -> None:
        n = len(dec)
        if not n:
            return
        c = dec.cols
        pkt = c["pkt"]
        keys = key_hashes(c["proto"], c["src_hi"], c["src_lo"], c["sport"], c["dst_hi"], c["dst_lo"], c["dport"])
        self._parts.append((keys, raw.file_off[pkt], raw.caplen[pkt] + self.header, raw.ts[pkt]))
        self.packets += n
        if dec.members and self.fragments:
            early = [(int(keys[row]), off, cap + self.header, ts) for row, mem in dec.members.items()
                     for src, off, cap, ts in mem if src == raw.source]
            if early:
                self._early.append(tuple(np.array(x, dtype=np.int64) for x in zip(*early)))

    def entries(self) -> list[IndexEntry]:
        if not self._parts:
            return []
        parts, n_early = self._parts + self._early, sum(len(e[0]) for e in self._early)
        key, off, length, ts = (np.concatenate(x) for x in zip(*parts))
        self._parts, self._early = [], []
        early = np.zeros(len(key), dtype=np.int64)
        if n_early:
            early[len(key) - n_early:] = 1
            order = np.lexsort((early, off, key))  # of one packet twice under one key, the row first
        else:
            order = key_order(key)  # stable: the packets were added in file order
        key, off, length, ts = key[order], off[order], length[order], ts[order]
        early = early[order] if n_early else early
        keep = np.ones(len(key), dtype=bool)  # one packet twice under one key (a tunnel to itself)
        keep[1:] = (key[1:] != key[:-1]) | (off[1:] != off[:-1])
        if not keep.all():
            key, off, length, ts, early = key[keep], off[keep], length[keep], ts[keep], early[keep]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)]
        gap = np.empty(len(off), dtype=np.int64)
        gap[0] = off[0]
        gap[1:] = off[1:] - (off[:-1] + length[:-1])
        gap[starts] = off[starts]
        vals = np.empty(2 * len(off), dtype=np.uint64)
        vals[0::2] = gap
        vals[1::2] = length * 2 + early
        buf, sizes = encode_varints(vals)
        pos = np.r_[0, np.cumsum(sizes)]
        bstart, bend = pos[2 * starts], pos[2 * ends]
        keys = key[starts]
        tmin = np.minimum.reduceat(ts, starts)
        tmax = np.maximum.reduceat(ts, starts)
        nbytes = np.add.reduceat(length, starts)
        count = ends - starts
        buckets = keys >> BUCKET_SHIFT  # sorted keys: each bucket is one run
        bs = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        be = np.r_[bs[1:], len(keys)]
        d = np.empty((len(keys), DIRECTORY_COLUMNS), dtype="<i8")
        d[:, 0], d[:, 1], d[:, 2], d[:, 3], d[:, 4] = keys, tmin, tmax, count, nbytes
        d[:, 5] = bend - np.repeat(bstart[bs], be - bs)  # relative to the bucket's first range
        rows = []
        for b, lo, hi, first, last, pk in zip(buckets[bs].tolist(), bs.tolist(), be.tolist(),
                                              np.minimum.reduceat(tmin, bs).tolist(),
                                              np.maximum.reduceat(tmax, bs).tolist(),
                                              np.add.reduceat(count, bs).tolist()):
            rows.append((b, first, last, pk, hi - lo, d[lo:hi].tobytes(), buf[int(bstart[lo]):int(bend[hi - 1])]))
        return rows


class FileIndexes:
    """The index of a stream of files metered one after another (the recorder): packets come
    with the id of the file they were written to; when the next file's packets start (or at
    ``close``), the finished file goes to ``save(PendingIndex)``."""

    def __init__(self, save) -> None:
        self._save = save
        self._capture_id: int | None = None
        self._builder: IndexBuilder | None = None
        self.cpu_ns = 0  # CPU time spent collecting (this thread's), for the recorder's own figure

    def add(self, raw: RawBatch, dec: DecodedBatch, capture_id: int | None) -> None:
        t0 = time.thread_time_ns()
        if capture_id != self._capture_id:
            self.close()
            self._capture_id = capture_id
            self._builder = IndexBuilder(fragments=False) if capture_id is not None else None
        if self._builder is not None:
            self._builder.add(raw, dec)
        self.cpu_ns += time.thread_time_ns() - t0

    def close(self) -> None:
        """The current file's entries saved (it has no more packets)."""
        builder, capture_id = self._builder, self._capture_id
        self._builder = self._capture_id = None
        if builder is not None and capture_id is not None:
            self._save(PendingIndex(capture_id, builder))
