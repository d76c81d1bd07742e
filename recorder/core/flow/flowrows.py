"""Finished flows as columns, and their conversion to rows of the ``flows`` table.

The flow meter hands on ``FlowBatch`` objects: numpy columns, cheap to build and to pickle. The
text work (uids, address strings, community_id) happens in ``FlowBatch.rows()``, which the
store's writer runs on its own core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recorder.core.flow.flowid import PROTO_NAMES, addr_str, community_id, connection_uids

# The values of each flow row, in the order of the flows table's columns (less id).
FLOW_FIELDS = ("uid", "capture_id", "file_offset", "ts_ns", "duration_ns", "orig_h", "orig_p", "resp_h",
               "resp_p", "orig_a", "resp_a", "proto", "ip_proto", "service", "orig_bytes", "resp_bytes",
               "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts",
               "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "community_id")

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")

# integer columns of a FlowBatch; -1 stands for "unset" where a column may be unset
INT_COLUMNS = ("capture", "file_off", "start", "duration", "orig_p", "resp_p", "proto", "orig_bytes",
               "resp_bytes", "state", "local_orig", "local_resp", "missed", "orig_pkts", "orig_ip",
               "resp_pkts", "resp_ip", "one_way")
ADDR_COLUMNS = ("orig_hi", "orig_lo", "resp_hi", "resp_lo")  # uint64 halves of the 128-bit addresses


@dataclass(slots=True)
class FlowBatch:
    """Finished connections as columns: ``key`` (n, 6) uint64 canonical keys for the uid, the
    INT_COLUMNS and ADDR_COLUMNS arrays, ``history`` as an 'S' array, ``tunnel`` parent uids."""

    key: np.ndarray
    cols: dict[str, np.ndarray]
    history: np.ndarray
    tunnel: list[str | None]

    def __len__(self) -> int:
        return len(self.key)

    def rows(self) -> list[tuple]:
        """One tuple per flow, values in FLOW_FIELDS order."""
        n = len(self)
        if not n:
            return []
        c = self.cols
        uid_list = connection_uids(self.key, c["start"])
        addr = np.empty((n, 2), dtype=[("h", ">u8"), ("l", ">u8")])
        addr["h"][:, 0], addr["l"][:, 0] = c["orig_hi"], c["orig_lo"]
        addr["h"][:, 1], addr["l"][:, 1] = c["resp_hi"], c["resp_lo"]
        a16 = addr.view("V16").reshape(n, 2).tolist()
        ints = np.stack([c[k] for k in INT_COLUMNS], axis=1).tolist()
        hist = self.history.tolist()
        texts: dict[int, str] = {}
        out = []
        for i in range(n):
            (capture, foff, start, dur, orig_p, resp_p, proto, ob, rb, st, lo, lr, missed, opkts, oip,
             rpkts, rip, one_way) = ints[i]
            oa16, ra16 = a16[i]
            oa, ra = int.from_bytes(oa16, "big"), int.from_bytes(ra16, "big")
            oh = texts.get(oa) or texts.setdefault(oa, addr_str(oa))
            rh = texts.get(ra) or texts.setdefault(ra, addr_str(ra))
            h = hist[i]
            out.append((
                uid_list[i], capture if capture >= 0 else None, foff, start, dur if dur > 0 else None,
                oh, orig_p, rh, resp_p, bytes(oa16), bytes(ra16),
                PROTO_NAMES.get(proto, "unknown_transport"), proto, None,
                ob if ob >= 0 else None, rb if rb >= 0 else None, CONN_STATES[st],
                bool(lo) if lo >= 0 else None, bool(lr) if lr >= 0 else None, missed,
                h.decode("ascii") if h else None, opkts, oip, rpkts, rip, self.tunnel[i],
                community_id(proto, oa, orig_p, ra, resp_p, bool(one_way)),
            ))
        return out

    def slice(self, start: int, stop: int) -> FlowBatch:
        return FlowBatch(self.key[start:stop], {k: v[start:stop] for k, v in self.cols.items()},
                         self.history[start:stop], self.tunnel[start:stop])

    def dicts(self) -> list[dict]:
        return [dict(zip(FLOW_FIELDS, r)) for r in self.rows()]


def concat_flow_batches(parts: list[FlowBatch]) -> FlowBatch:
    return FlowBatch(np.concatenate([p.key for p in parts]),
                     {k: np.concatenate([p.cols[k] for p in parts]) for k in parts[0].cols},
                     np.concatenate([p.history for p in parts]),
                     [t for p in parts for t in p.tunnel])
