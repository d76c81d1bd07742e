"""Hardware addresses of local hosts: the Ethernet source MAC of the packets a local address sent.

On a tap or SPAN port a local host's packets carry its own MAC (or, from another subnet, the MAC
of the router that forwarded them); a remote address's packets carry the router's MAC, so only
local addresses (private ranges and ``--local-net``) are kept. Each (address, MAC) pair is kept
with its first and last sighting; a host with two MACs (a second interface, a spoofer, a router
in between) lists both. Rows tunnelled inside other packets have no MAC of their own.
"""

from __future__ import annotations

import numpy as np

from recorder.core.flow.flowid import LocalNets, addr_str

_ETHERNET = 1  # LINKTYPE_ETHERNET
_MAC_BYTES = np.arange(6, 12, dtype=np.int64)  # the source MAC in an Ethernet header


def mac_str(mac: int) -> str:
    return ":".join(f"{(mac >> s) & 0xFF:02x}" for s in range(40, -8, -8))


MAX_PAIRS = 1_000_000  # pairs a long-running table keeps; past it, those already taken are forgotten


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
        data = np.frombuffer(raw.data, dtype=np.uint8)
        octets = data[raw.off[pkt][:, None] + _MAC_BYTES].astype(np.uint64)
        mac = np.zeros(len(pkt), dtype=np.uint64)
        for i in range(6):
            mac = (mac << np.uint64(8)) | octets[:, i]
        hi, lo, ts = c["src_hi"][keep], c["src_lo"][keep], raw.ts[pkt]
        order = np.lexsort((mac, lo, hi))  # group equal (address, MAC) pairs
        hi, lo, mac, ts = hi[order], lo[order], mac[order], ts[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1]) | (mac[1:] != mac[:-1])
        starts = np.flatnonzero(new)
        first = np.minimum.reduceat(ts, starts)
        last = np.maximum.reduceat(ts, starts)
        uniq = zip(hi[starts].tolist(), lo[starts].tolist(), mac[starts].tolist())
        for (h, lo_, m), f, t in zip(uniq, first.tolist(), last.tolist()):
            k = ((h << 64) | lo_, m)
            seen = self.pairs.get(k)
            if seen is None:
                self.pairs[k] = [f, t, capture_id, False]
            else:
                seen[0], seen[1] = min(seen[0], f), max(seen[1], t)
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
