"""The packet index's stored form, read without numpy (``extract`` imports this, not the
builder in ``packetindex``): the key of a flow, the buckets, the directory of a bucket row, and
the varint byte ranges of an entry. ``packetindex`` describes the design and builds it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

RECORD_HEADER = 16
PCAPNG_PACKET_HEADER = 28  # an Enhanced (or obsolete) Packet Block's fields before the packet data


def indexed_header(fmt: str) -> int | None:
    """Bytes before each packet's data in the ranges of a capture of this format (the ranges
    cover them and the data), or None when captures of the format are not indexed: a gzip
    stream has no byte offsets to seek to (reading a packet would mean decompressing from the
    start)."""
    return {"pcap": RECORD_HEADER, "pcapng": PCAPNG_PACKET_HEADER}.get(fmt)

_MASK = (1 << 64) - 1
_M, _N, _GOLD = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x9E3779B97F4A7C15


def mix(x: int) -> int:
    """splitmix64's finaliser on one 64-bit value (``packetindex`` does the same on arrays)."""
    x = ((x ^ (x >> 30)) * _M) & _MASK
    x = ((x ^ (x >> 27)) * _N) & _MASK
    return x ^ (x >> 31)


def flow_key(ip_proto: int, orig_a: bytes, orig_p: int, resp_a: bytes, resp_p: int) -> int:
    """The index key of a stored flow (addresses as the flows table holds them: 16 bytes), as
    ``packetindex.key_hashes`` computes it for a packet: a symmetric hash, as a signed int64."""
    ported = ip_proto in (6, 17)

    def end(a: bytes, port: int) -> int:
        v = int.from_bytes(a, "big")
        p = port if ported else 0
        return mix((v >> 64) ^ mix((v & _MASK) ^ mix((p + _GOLD) & _MASK)))

    h = (mix((ip_proto * _GOLD + 1) & _MASK) + end(orig_a, orig_p) + end(resp_a, resp_p)) & _MASK
    return h - (1 << 64) if h >> 63 else h


BUCKET_SHIFT = 54
BUCKETS = 1 << (64 - BUCKET_SHIFT)
DIRECTORY_COLUMNS = 6


def bucket_of(key: int) -> int:
    return key >> BUCKET_SHIFT


def bucket_entries(directory: bytes, ranges: bytes, wanted: set[int]) -> list[tuple[int, int, int, int, int, bytes]]:
    """(key, first ts, last ts, packets, bytes, ranges) of the ``wanted`` keys in one bucket row."""
    d = struct.unpack(f"<{len(directory) // 8}q", directory)
    out = []
    for i in range(0, len(d), DIRECTORY_COLUMNS):
        if d[i] in wanted:
            start = d[i - 1] if i else 0
            k, a, b, p, nb, end = tuple(d[i:i + DIRECTORY_COLUMNS])  # (a bare slice crashes Cython 3 here)
            out.append((k, a, b, p, nb, ranges[start:end]))
    return out


def matching_entries(rows: Iterable[dict], wanted: set[int], since: int | None, until: int | None) -> list[dict]:
    """The entries of the ``wanted`` keys in these bucket rows (packet_index rows as mappings)
    whose packets overlap [since, until] (ns, inclusive), by capture and time."""
    out: list[dict] = []
    for r in rows:
        for k, a, b, p, nb, ranges in bucket_entries(bytes(r["directory"]), bytes(r["ranges"]), wanted):
            if (since is None or b >= since) and (until is None or a <= until):
                out.append({"capture_id": r["capture_id"], "key_hash": k, "first_ts_ns": a,
                            "last_ts_ns": b, "packets": p, "bytes": nb, "ranges": ranges})
    out.sort(key=lambda r: (r["capture_id"], r["first_ts_ns"]))
    return out


def endpoints(a: bytes, ap: int, b: bytes, bp: int, proto) -> tuple:
    """A connection's addresses, ports and IP protocol: the same for both directions."""
    x, y = (bytes(a), int(ap)), (bytes(b), int(bp))
    return (min(x, y), max(x, y), proto)


def next_starts(chosen: Iterable[dict], later: Iterable[tuple]) -> dict[str, int | None]:
    """For each chosen flow (by uid): the first start, after its own, of a connection with the
    same endpoints among ``later`` (orig_a, resp_a, orig_p, resp_p, ip_proto, ts_ns rows), or None."""
    starts: dict[tuple, list[int]] = {}
    for oa, ra, op, rp, proto, ts in later:
        starts.setdefault(endpoints(oa, op, ra, rp, proto), []).append(int(ts))
    out: dict[str, int | None] = {}
    for f in chosen:
        after = [t for t in starts.get(endpoints(f["orig_a"], f["orig_p"], f["resp_a"], f["resp_p"],
                                                 f["ip_proto"]), ()) if t > int(f["ts_ns"])]
        out[f["uid"]] = min(after) if after else None
    return out


def decode_ranges(blob: bytes) -> Iterator[tuple[int, int, bool]]:
    """The (offset, length, early fragment) record ranges of an entry, in file order. Raises
    ValueError when the bytes are not a well-formed list."""
    vals: list[int] = []
    v = shift = 0
    for b in blob:
        v |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
            if shift > 63:
                raise ValueError("packet index entry: varint too long")
        else:
            vals.append(v)
            v = shift = 0
    if shift or len(vals) % 2:
        raise ValueError("packet index entry: truncated")
    end = 0
    for i in range(0, len(vals), 2):
        off = vals[i] + (end if i else 0)
        length, early = vals[i + 1] >> 1, bool(vals[i + 1] & 1)
        end = off + length
        yield off, length, early


def merge_ranges(ranges: list[tuple[int, int]], slack: int = 0) -> list[tuple[int, int]]:
    """Adjacent (or within ``slack`` bytes) ranges as one read: (offset, length), sorted."""
    out: list[list[int]] = []
    for off, length in sorted(ranges):
        if out and off <= out[-1][0] + out[-1][1] + slack:
            out[-1][1] = max(out[-1][1], off + length - out[-1][0])
        else:
            out.append([off, length])
    return [(a, b) for a, b in out]
