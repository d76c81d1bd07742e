"""Hardware addresses of local hosts: the Ethernet source MAC of the packets a local address sent.

On a tap or SPAN port a local host's packets carry its own MAC (or, from another subnet, the MAC
of the router that forwarded them); a remote address's packets carry the router's MAC, so only
local addresses (private ranges and ``--local-net``) are kept. Each (address, MAC) pair is kept
with its first and last sighting; a host with two MACs (a second interface, a spoofer, a router
in between) lists both. Rows tunnelled inside other packets have no MAC of their own.

A batch's rows are grouped by (address, MAC) before the table is updated once per pair: compiled,
by one loop with a hash table (``_group``, typed in Cython's pure-Python mode, bounds-checked); as
Python, with numpy (``_pairs_numpy``: a sort), since the loop would be slower there.
"""

from __future__ import annotations

import numpy as np

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.flow.flowid import LocalNets, addr_str

_ETHERNET = 1  # LINKTYPE_ETHERNET
_MAC_BYTES = np.arange(6, 12, dtype=np.int64)  # the source MAC in an Ethernet header
# the item types of _group's typed memoryviews (Cython's pure-Python mode declares them so)
_U8_RO = cython.typedef(cython.const[cython.uchar])
_I64_RO = cython.typedef(cython.const[cython.longlong])
_U64_RO = cython.typedef(cython.const[cython.ulonglong])
_I64 = cython.typedef(cython.longlong)
_I32 = cython.typedef(cython.int)
_U64 = cython.typedef(cython.ulonglong)
_M64 = cython.declare(cython.ulonglong, 0xFFFFFFFFFFFFFFFF)  # as Python, keeps the hash in 64 bits
_MIX = cython.declare(cython.ulonglong, 0x9E3779B97F4A7C15)  # Fibonacci hashing's multiplier


def mac_str(mac: int) -> str:
    return ":".join(f"{(mac >> s) & 0xFF:02x}" for s in range(40, -8, -8))


MAX_PAIRS = 1_000_000  # pairs a long-running table keeps; past it, those already taken are forgotten


def _pairs_numpy(data: bytes, off: np.ndarray, hi: np.ndarray, lo: np.ndarray, ts: np.ndarray):
    """The distinct (address hi, lo, MAC) of rows whose packets start at ``off`` in ``data``,
    in that order, with the first and last ``ts`` of each: five arrays."""
    octets = np.frombuffer(data, dtype=np.uint8)[off[:, None] + _MAC_BYTES].astype(np.uint64)
    mac = np.zeros(len(off), dtype=np.uint64)
    for i in range(6):
        mac = (mac << np.uint64(8)) | octets[:, i]
    order = np.lexsort((mac, lo, hi))  # group equal (address, MAC) pairs
    hi, lo, mac, ts = hi[order], lo[order], mac[order], ts[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1]) | (mac[1:] != mac[:-1])
    starts = np.flatnonzero(new)
    return (hi[starts], lo[starts], mac[starts], np.minimum.reduceat(ts, starts),
            np.maximum.reduceat(ts, starts))


def _pairs_compiled(data: bytes, off: np.ndarray, hi: np.ndarray, lo: np.ndarray, ts: np.ndarray):
    """``_pairs_numpy``'s result by ``_group``: one pass, no sort of the rows (the distinct pairs
    are put in order at the end, a few per row). Memoryviews, so that it runs as Python too."""
    n = len(off)
    bits = max(4, (2 * n - 1).bit_length())  # the table at most half full
    slots = np.full(1 << bits, -1, dtype=np.int32)  # small, so that it stays in the cache
    u = np.empty((3, n), dtype=np.uint64)
    span = np.empty((2, n), dtype=np.int64)
    i64 = lambda a: memoryview(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    u64 = lambda a: memoryview(np.ascontiguousarray(a, dtype=np.uint64))  # noqa: E731
    k = _group(memoryview(data), i64(off), u64(hi), u64(lo), i64(ts), memoryview(slots), 64 - bits,
               *map(memoryview, (u[0], u[1], u[2], span[0], span[1])))
    order = np.lexsort((u[2, :k], u[1, :k], u[0, :k]))
    return u[0, order], u[1, order], u[2, order], span[0, order], span[1, order]


@cython.locals(data=_U8_RO[:], off=_I64_RO[:], hi=_U64_RO[:], lo=_U64_RO[:], ts=_I64_RO[:], slots=_I32[:],
               shift=cython.int, uhi=_U64[:], ulo=_U64[:], umac=_U64[:], first=_I64[:], last=_I64[:],
               n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t, o=cython.Py_ssize_t,
               s=cython.Py_ssize_t, mask=cython.Py_ssize_t, g=cython.Py_ssize_t, k=cython.Py_ssize_t,
               a=cython.ulonglong, b=cython.ulonglong, mac=cython.ulonglong, h=cython.ulonglong, t=cython.longlong)
def _group(data, off, hi, lo, ts, slots, shift, uhi, ulo, umac, first, last) -> int:
    """Row i's MAC is ``data[off[i] + 6:off[i] + 12]``; its pair (``hi[i]``, ``lo[i]``, MAC) goes
    to ``uhi``, ``ulo``, ``umac`` at its first sighting, with the least and greatest ``ts`` of its
    rows in ``first`` and ``last``. ``slots`` (2**(64 - shift) entries, all -1, more than the
    rows) is the hash table: a slot holds a pair's place, the next free slot takes a collision.
    Returns the number of pairs. As Python: buffers whose items are Python ints (memoryviews)."""
    n = off.shape[0]
    mask = slots.shape[0] - 1
    k = 0
    for i in range(n):
        o = off[i]
        mac = 0
        for j in range(6, 12):
            mac = (mac << 8) | data[o + j]
        a = hi[i]
        b = lo[i]
        t = ts[i]
        h = ((b ^ (a << 1) ^ (mac << 16)) * _MIX) & _M64
        s = h >> shift
        while True:
            g = slots[s]
            if g < 0:
                slots[s] = k
                uhi[k] = a
                ulo[k] = b
                umac[k] = mac
                first[k] = t
                last[k] = t
                k += 1
                break
            if ulo[g] == b and umac[g] == mac and uhi[g] == a:
                if t < first[g]:
                    first[g] = t
                if t > last[g]:
                    last[g] = t
                break
            s = (s + 1) & mask
    return k


class MacTable:
    """(local address, MAC) -> first and last time seen, fed batch by batch. ``records`` gives
    every pair (an ingest, at its end); ``take_new`` only those not taken before (the recorder,
    at each flush)."""

    def __init__(self, local: LocalNets) -> None:
        self.local = local
        # (addr int, mac int) -> [first ns, last ns, capture id, taken by take_new]
        self.pairs: dict[tuple[int, int], list] = {}

    def add(self, raw, dec, capture_id: int | None = None) -> None:
        c = dec.cols
        if not len(dec) or not self.local:
            return
        pkt = c["pkt"]
        keep = (c["tunnel"] == -1) & (raw.linktype[pkt] == _ETHERNET) & (raw.caplen[pkt] >= 14)
        keep &= self.local.contains_halves(c["src_hi"], c["src_lo"])
        if not keep.any():
            return
        pkt = pkt[keep]
        pairs = _pairs_compiled if cython.compiled else _pairs_numpy
        hi, lo, mac, first, last = pairs(raw.data, raw.off[pkt], c["src_hi"][keep], c["src_lo"][keep], raw.ts[pkt])
        table = self.pairs
        for h, lo_, m, f, t in zip(hi.tolist(), lo.tolist(), mac.tolist(), first.tolist(), last.tolist()):
            k = ((h << 64) | lo_, m)
            seen = table.get(k)
            if seen is None:
                table[k] = [f, t, capture_id, False]
            else:  # (comparisons: a third of this loop's time with min and max)
                if f < seen[0]:
                    seen[0] = f
                if t > seen[1]:
                    seen[1] = t
        if len(self.pairs) > MAX_PAIRS:  # a recorder on a huge or churning network: bounded memory
            self.pairs = {k: v for k, v in self.pairs.items() if not v[3]}

    def records(self) -> list[tuple[dict, int | None]]:
        """Each pair as a ``macs`` record (first sighting, source ``ethernet``) with its capture."""
        return self._records(self.pairs.items())

    def take_new(self) -> list[tuple[dict, int | None]]:
        """``records`` of the pairs seen since the last call only (their last_seen as of now)."""
        new = [(k, v) for k, v in self.pairs.items() if not v[3]]
        for _, v in new:
            v[3] = True
        return self._records(new)

    @staticmethod
    def _records(pairs) -> list[tuple[dict, int | None]]:
        return [({"ts": f / 1e9, "addr": addr_str(a), "mac": mac_str(m), "source": "ethernet",
                  "last_seen": t / 1e9}, cid)
                for (a, m), (f, t, cid, _) in sorted(pairs, key=lambda kv: (kv[1][0], kv[0]))]


__all__ = ["MacTable", "mac_str"]
