"""The packet index builder's two loops over every packet of a file, compiled with numba (as the
flow meter's kernel): the order of the packets by key (``key_order``: a stable radix sort, the
order ``np.argsort(keys, kind="stable")`` gives) and their ranges' varints
(``encode_varints``: unsigned LEB128). In numpy they were most of the index's cost: a
comparison sort of a million 64-bit keys, and one pass per byte position with index arrays
(bench/bench_extract.py --index-cost; README, "Packet index").
"""

from __future__ import annotations

import numpy as np
from numba import njit

import recorder.core.flow.flowcols  # noqa: F401 - points numba's cache at a writable directory first

_SIGN = np.uint64(1 << 63)
_TOP = np.uint64(48)  # the first pass spreads the keys over 2**16 runs by their top 16 bits
_SMALL = 32  # a run this short is put in order by insertion, a longer one by merge sort


@njit(cache=True, nogil=True)
def _radix_order(keys):
    """The stable order of ``keys`` (uint64: the signed keys with their sign bit flipped, so
    that unsigned order is signed order): a counting pass on the top 16 bits (stable), then
    each run of equal top bits in order (hashes: a few keys a run; a run of one key's many
    packets is already in order, and merge sort keeps it so)."""
    n = keys.shape[0]
    counts = np.zeros((1 << 16) + 1, dtype=np.int64)
    for i in range(n):
        counts[(keys[i] >> _TOP) + 1] += 1
    for b in range(1 << 16):
        counts[b + 1] += counts[b]
    starts = counts.copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        b = keys[i] >> _TOP
        order[starts[b]] = i
        starts[b] += 1
    for b in range(1 << 16):
        lo = counts[b]
        hi = counts[b + 1]
        if hi - lo <= _SMALL:
            for i in range(lo + 1, hi):
                j = order[i]
                k = keys[j]
                m = i - 1
                while m >= lo and keys[order[m]] > k:
                    order[m + 1] = order[m]
                    m -= 1
                order[m + 1] = j
        else:
            run = order[lo:hi].copy()
            sub = np.argsort(keys[run], kind="mergesort")
            for i in range(hi - lo):
                order[lo + i] = run[sub[i]]
    return order


def key_order(keys: np.ndarray) -> np.ndarray:
    """Indexes that sort the int64 ``keys``, equal keys in their given order (stable)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return _radix_order(np.ascontiguousarray(keys).view(np.uint64) ^ _SIGN)


@njit(cache=True, nogil=True)
def _varint_sizes(vals):
    n = vals.shape[0]
    size = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = vals[i]
        s = 1
        while v >= np.uint64(0x80):
            v >>= np.uint64(7)
            s += 1
        size[i] = s
    return size


@njit(cache=True, nogil=True)
def _varint_bytes(vals, size, out):
    p = 0
    for i in range(vals.shape[0]):
        v = vals[i]
        for _ in range(size[i] - 1):
            out[p] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
            v >>= np.uint64(7)
            p += 1
        out[p] = np.uint8(v)
        p += 1


def encode_varints(vals: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Unsigned LEB128 of every value (uint64): the bytes, and each value's size in bytes."""
    vals = np.ascontiguousarray(vals, dtype=np.uint64)
    if not len(vals):
        return b"", np.zeros(0, dtype=np.int64)
    size = _varint_sizes(vals)
    out = np.empty(int(size.sum()), dtype=np.uint8)
    _varint_bytes(vals, size, out)
    return out.tobytes(), size


def _warm() -> None:
    """Compile (load from numba's cache) both kernels now, at import, in the process that will
    fork the flow writer: the writer, which sorts and encodes each file's index, then inherits
    them instead of paying numba's start (about 0.27 s of CPU here) on its first file. The
    importing process pays it once, as it would for the flow meter's kernel."""
    key_order(np.zeros(2, dtype=np.int64))
    encode_varints(np.zeros(1, dtype=np.uint64))


_warm()
