"""The flow meter: bidirectional connections with Zeek conn.log meaning.

One implementation serves offline ingest and the live recorder. Per batch:

1. numpy builds each row's canonical connection key (the lower address/port first; Zeek's ICMP
   type/counterpart ports; one-way ICMP messages keep their direction) and groups the rows;
2. a dict maps each distinct key to its connection slot (one lookup per key per batch);
3. the compiled state machine (``flowkernel.meter_rows``) runs every row in packet order;
4. connections that ended (timers, reuse, end of input) go to ``sink`` as ``FlowBatch`` columns;
   ``FlowBatch.rows()`` makes the rows of the ``flows`` table from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from recorder.core.batch import DecodedBatch, RawBatch, Tunnel
from recorder.core.flow import flowcols as K
from recorder.core.flow.flowid import (
    DNS_UDP_PORTS,
    ICMP4_COUNTERPART,
    ICMP6_COUNTERPART,
    LIKELY_SERVER_TCP,
    LIKELY_SERVER_UDP,
    V4_MAPPED,
    LocalNets,
    canonical_keys,
    connection_uids,
    mix64,
    tunnel_uid,
)
from recorder.core.flow.flowkernel import expired, meter_rows, summarize
from recorder.core.flow.flowrows import FlowBatch, concat_flow_batches

NS = 1_000_000_000



@dataclass(frozen=True, slots=True)
class Timeouts:
    """Zeek's connection timers, in seconds (its defaults)."""

    tcp_inactivity: float = 300.0
    udp_inactivity: float = 60.0
    icmp_inactivity: float = 60.0
    unknown_inactivity: float = 60.0
    tcp_attempt_delay: float = 5.0
    tcp_close_delay: float = 5.0
    tcp_connection_linger: float = 5.0
    tcp_syn_timeout: float = 5.0
    tcp_session_timer: float = 6.0
    dns_session_timeout: float = 10.0

    def as_array(self) -> np.ndarray:
        return np.array([int(getattr(self, f.name) * NS) for f in fields(self)], dtype=np.int64)


def _lookup_table(ports: frozenset[int]) -> np.ndarray:
    t = np.zeros(65536, dtype=np.bool_)
    t[list(ports)] = True
    return t


def _icmp_tables() -> tuple[np.ndarray, np.ndarray]:
    """(counterpart, has_counterpart) indexed by [is_v6, type]."""
    other = np.zeros((2, 256), dtype=np.int64)
    has = np.zeros((2, 256), dtype=np.bool_)
    for v6, table in ((0, ICMP4_COUNTERPART), (1, ICMP6_COUNTERPART)):
        for t, c in table.items():
            other[v6, t] = c
            has[v6, t] = True
    return other, has


_LIKELY_TCP = _lookup_table(LIKELY_SERVER_TCP)
_LIKELY_UDP = _lookup_table(LIKELY_SERVER_UDP)
_DNS_UDP = _lookup_table(DNS_UDP_PORTS)
_ICMP_OTHER, _ICMP_HAS = _icmp_tables()
_BCAST_LO = np.uint64((V4_MAPPED << 32) | 0xFFFFFFFF)
# odd multipliers for the row-grouping hash (any collision is caught by comparing the keys)
_H1, _H2, _H3, _H4 = (np.uint64(x) for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                                              0xD6E8FEB86659FD93))
_S9 = np.uint64(9)
_M64 = 0xFFFFFFFFFFFFFFFF


def _key_hash(k: np.ndarray) -> np.ndarray:
    """64-bit hash of canonical keys given as (n, 6) uint64 rows (see FlowMeter._rows)."""
    with np.errstate(over="ignore"):
        return mix64((k[:, 1] * _H1) ^ (k[:, 2] * _H2) ^ (k[:, 4] * _H3) ^ (k[:, 5] * _H4)
                     ^ ((k[:, 3] << _S9) | k[:, 0]))


def _key_tuple(k: np.ndarray) -> tuple:
    """The full key as a hashable tuple (only for keys whose hash collides)."""
    p, ah, al, pp, bh, bl = (int(x) for x in k)
    return (p, ah, al, pp, bh, bl)


class FlowMeter:
    """Meters decoded packets into connections and hands finished ones to ``sink`` as FlowBatch."""

    def __init__(self, sink: Callable[[list[dict]], None], *, local_nets: LocalNets | None = None,
                 timeouts: Timeouts = Timeouts(), emit_every: int = 5000, capacity: int = 4096) -> None:
        self.sink = sink
        self.local = local_nets if local_nets is not None else LocalNets()
        self.timeouts = timeouts
        self.TO = timeouts.as_array()
        self.S, self.H = K.new_state(capacity)
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self.nfree = capacity
        self.slot_tunnel: list[str | None] = [None] * capacity
        self.conns: dict[int, int] = {}  # key hash -> slot
        self.exact: dict[tuple, int] = {}  # full key -> slot, for keys whose hash is taken
        self.exact_slots: dict[int, tuple] = {}
        self.exact_hashes: set[int] = set()
        self.pending: list[FlowBatch] = []
        self.npending = 0
        self.emit_every = emit_every
        self.now = 0
        self.flows_out = 0
        self.packets = 0
        self._addr_cache: dict[int, str] = {}
        self._tunnel_uid_cache: dict[tuple, str] = {}

    # ------------------------------------------------------------------ public API
    def add(self, raw: RawBatch, dec: DecodedBatch, capture_id: int | None = None,
            tunnels: list[Tunnel] | None = None) -> None:
        """Meter one decoded batch (rows ordered by packet)."""
        n = len(dec)
        if n == 0:
            return
        R, kcols, khash = self._rows(raw, dec)
        gslot, exact = self._lookup(kcols, khash)
        self._ensure_free(n)
        before = gslot.copy()
        finished = np.empty(n, dtype=np.int64)
        created = np.empty(n, dtype=np.int64)
        self.nfree, nfin, ncre = meter_rows(self.S, self.H, R, gslot, self.free, self.nfree, finished, created,
                                              _LIKELY_TCP, _LIKELY_UDP, _DNS_UDP, self.TO,
                                              -1 if capture_id is None else capture_id)
        if ncre:
            self._created(created[:ncre], R, kcols, khash, dec.cols["tunnel"], tunnels)
        for g in np.flatnonzero(gslot != before).tolist():
            slot = int(gslot[g])
            if exact[g]:
                key = _key_tuple(kcols[g])
                self.exact[key] = slot
                self.exact_slots[slot] = key
                self.exact_hashes.add(int(khash[g]))
            else:
                self.conns[int(khash[g])] = slot
        if nfin:
            self._finish_slots(finished[:nfin])
        self.packets += n
        self.now = max(self.now, int(R[-1, K.R_TS]))
        out = np.empty(self.S.shape[0], dtype=np.int64)
        nexp = expired(self.S, self.now, self.TO, out)
        if nexp:
            self._finish_slots(out[:nexp])
        if self.npending >= self.emit_every:
            self._flush_pending()

    def advance(self, ts_ns: int) -> None:
        """Move the meter's clock to ``ts_ns`` without a packet, ending the connections whose
        timeouts passed: the live recorder calls it when the link is idle, so the last
        connections before a quiet spell reach the store (and live detection) without waiting for
        the next packet. Never moves the clock back."""
        if ts_ns <= self.now:
            return
        self.now = int(ts_ns)
        out = np.empty(self.S.shape[0], dtype=np.int64)
        nexp = expired(self.S, self.now, self.TO, out)
        if nexp:
            self._finish_slots(out[:nexp])

    def finish(self) -> None:
        """End of input: every open connection is logged as it stands."""
        active = np.flatnonzero(self.S[:, K.C_ACTIVE])
        self.S[active, K.C_ACTIVE] = 0
        self._finish_slots(active)
        self._flush_pending()

    def flush(self) -> None:
        """Hand finished connections to the sink now (they are otherwise batched by ``emit_every``)."""
        self._flush_pending()

    @property
    def open_connections(self) -> int:
        return int(self.S[:, K.C_ACTIVE].sum())

    # ------------------------------------------------------------------ rows and keys
    def _rows(self, raw: RawBatch, dec: DecodedBatch) -> tuple[np.ndarray, list[tuple], np.ndarray]:
        """Kernel rows, the distinct canonical keys, and those keys as a (groups, 6) uint64 array."""
        c = dec.cols
        n = len(dec)
        pkt = c["pkt"]
        proto = c["proto"].astype(np.int64)
        sport = c["sport"].astype(np.int64)
        dport = c["dport"].astype(np.int64)
        is_icmp = (proto == 1) | (proto == 58)
        one_way = np.zeros(n, dtype=np.bool_)
        if is_icmp.any():
            v6 = (proto == 58).astype(np.int64)
            itype, code = sport[is_icmp], dport[is_icmp]
            has = _ICMP_HAS[v6[is_icmp], itype]
            dport[is_icmp] = np.where(has, _ICMP_OTHER[v6[is_icmp], itype], code)
            one_way[is_icmp] = ~has
        other = (proto != 6) & (proto != 17) & ~is_icmp
        sport[other] = 0
        dport[other] = 0
        sh, sl, dh, dl = c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"]
        k, swap = canonical_keys(proto, sh, sl, dh, dl, sport, dport, one_way)
        # group rows by key: sort a 64-bit hash (much faster than sorting the records), then
        # confirm every row equals its group's first row (a hash collision falls back to records)
        h = _key_hash(k)
        _, first, group = np.unique(h, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        if not (k == k[first[group]]).all():
            _, first, group = np.unique(k, axis=0, return_index=True, return_inverse=True)
            group = group.reshape(-1)
        kcols = k[first]
        khash = h[first] if len(first) == len(np.unique(h[first])) else _key_hash(kcols)
        R = np.empty((n, K.NROW), dtype=np.int64)
        R[:, K.R_PROTO] = proto
        R[:, K.R_A_IS_SRC] = ~swap
        R[:, K.R_SPORT] = sport
        R[:, K.R_DPORT] = dport
        R[:, K.R_IPLEN] = c["ip_len"]
        R[:, K.R_PLEN] = c["plen"]
        R[:, K.R_FLAGS] = c["flags"]
        R[:, K.R_SEQ] = c["seq"]
        R[:, K.R_ACK] = c["ack"]
        R[:, K.R_WIN] = c["win"]
        R[:, K.R_CAPOK] = c["pay_cap"].astype(np.int64) >= c["plen"].astype(np.int64)
        R[:, K.R_TS] = raw.ts[pkt]
        R[:, K.R_FOFF] = raw.file_off[pkt]
        R[:, K.R_ONEWAY] = one_way
        R[:, K.R_BCAST] = (dh == 0) & (dl == _BCAST_LO)
        R[:, K.R_GROUP] = group
        R[:, K.R_L4OK] = c["l4_ok"]
        return R, kcols, khash

    def _lookup(self, kcols: np.ndarray, khash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slot of each group's key (-1 if none), and which groups go through ``exact``.

        Connections are found by their key's 64-bit hash; every hit is checked against the key
        stored with the slot. A key whose hash is already taken by another live key (or shared by
        two keys of this batch) is kept in ``exact``, a dict on the full key, instead.
        """
        get = self.conns.get
        hl = khash.tolist()
        gslot = np.array([get(x, -1) for x in hl], dtype=np.int64)
        exact = np.zeros(len(hl), dtype=bool)
        found = np.flatnonzero(gslot >= 0)
        if len(found):
            stored = self.S[gslot[found], K.C_K0:K.C_K5 + 1].view(np.uint64)
            exact[found[(stored != kcols[found]).any(axis=1)]] = True
        if len(np.unique(khash)) != len(khash):
            _, inv, counts = np.unique(khash, return_inverse=True, return_counts=True)
            exact |= counts[inv.reshape(-1)] > 1
        if self.exact_hashes:
            exact |= np.fromiter((x in self.exact_hashes for x in hl), dtype=bool, count=len(hl))
        for g in np.flatnonzero(exact).tolist():
            gslot[g] = self.exact.get(_key_tuple(kcols[g]), -1)
        return gslot, exact

    def _created(self, slots: np.ndarray, R: np.ndarray, kcols: np.ndarray, khash: np.ndarray,
                 tun: np.ndarray, tunnels: list[Tunnel] | None) -> None:
        """Store each new connection's key and hash with its slot, and its tunnel parent."""
        rows = self.S[slots, K.C_ROW]
        groups = R[rows, K.R_GROUP]
        self.S[slots, K.C_K0:K.C_K5 + 1] = kcols[groups].view(np.int64)
        self.S[slots, K.C_KH] = khash[groups].view(np.int64)
        has_tunnel = tun[rows] >= 0
        for s, t in zip(slots[has_tunnel].tolist(), tun[rows][has_tunnel].tolist()):
            self.slot_tunnel[s] = self._tunnel_uid(t, tunnels)

    def _ensure_free(self, need: int) -> None:
        if self.nfree >= need:
            return
        old = self.S.shape[0]
        new = max(old * 2, old + need * 2)
        S, H = K.new_state(new)
        S[:old] = self.S
        H[:old] = self.H
        self.S, self.H = S, H
        extra = np.arange(new - 1, old - 1, -1, dtype=np.int64)
        free = np.empty(new, dtype=np.int64)
        free[:len(extra)] = extra
        free[len(extra):len(extra) + self.nfree] = self.free[:self.nfree]
        self.free = free
        self.nfree += len(extra)
        self.slot_tunnel.extend([None] * (new - old))

    def _tunnel_uid(self, idx: int, tunnels: list[Tunnel] | None) -> str | None:
        """Zeek's tunnel_parents: the uid of the innermost encapsulating connection."""
        if not tunnels or idx >= len(tunnels):
            return None
        t = tunnels[idx]
        s = int.from_bytes(t.outer_src, "big")
        d = int.from_bytes(t.outer_dst, "big")
        if t.outer_proto == 17:
            sp, dp = t.outer_sport, t.outer_dport
            a, ap, b, bp = (s, sp, d, dp) if (s, sp) <= (d, dp) else (d, dp, s, sp)
            krow = np.array([[17 << 1, a >> 64, a & _M64, ap << 16 | bp, b >> 64, b & _M64]], dtype=np.uint64)
            gslot, _ = self._lookup(krow, _key_hash(krow))
            slot = int(gslot[0])
            if slot >= 0:
                kc = self.S[slot:slot + 1, K.C_K0:K.C_K5 + 1].view(np.uint64)
                return connection_uids(kc, self.S[slot:slot + 1, K.C_START])[0]
        tkey = (t.kind, s, d)
        uid = self._tunnel_uid_cache.get(tkey)
        if uid is None:
            uid = self._tunnel_uid_cache[tkey] = tunnel_uid(t.kind, s, d)
        return uid

    # ------------------------------------------------------------------ output
    def snapshot(self, *, closed_only: bool = False) -> FlowBatch | None:
        """Every open connection as it stands now, as flow rows, without ending any (the
        recorder's interim records at a rotation). Their uids are the ones they will end with.
        ``closed_only``: only the TCP connections already closed (FIN both ways, or a reset)
        that wait out Zeek's close delay before they end (live detection sees them early)."""
        mask = self.S[:, K.C_ACTIVE] != 0
        if closed_only:
            mask &= self.S[:, K.C_CLOSE_COMPLETE] != 0
        active = np.flatnonzero(mask).astype(np.int64)
        return self._flow_batch(active) if len(active) else None

    def _flow_batch(self, slots: np.ndarray) -> FlowBatch:
        """The flow rows of these connections as they stand (their state is not changed)."""
        n = len(slots)
        summ = np.empty((n, 3), dtype=np.int64)
        summarize(self.S, self.H, slots, summ)
        S = self.S[slots]
        kc = S[:, K.C_K0:K.C_K5 + 1].view(np.uint64)
        orig_is_a = S[:, K.C_ORIG_IS_A].astype(bool)
        oh = np.where(orig_is_a, kc[:, 1], kc[:, 4])
        ol = np.where(orig_is_a, kc[:, 2], kc[:, 5])
        rh = np.where(orig_is_a, kc[:, 4], kc[:, 1])
        rl = np.where(orig_is_a, kc[:, 5], kc[:, 2])
        duration = S[:, K.C_LAST] - S[:, K.C_START]
        positive = duration > 0
        if self.local:
            lo_ = self.local.contains_halves(oh, ol).astype(np.int64)
            lr_ = self.local.contains_halves(rh, rl).astype(np.int64)
        else:
            lo_ = lr_ = np.full(n, -1, dtype=np.int64)
        cols = {
            "capture": S[:, K.C_CAPTURE], "file_off": S[:, K.C_FOFF], "start": S[:, K.C_START],
            "duration": duration, "orig_p": S[:, K.C_ORIG_P], "resp_p": S[:, K.C_RESP_P],
            "proto": S[:, K.C_PROTO], "orig_bytes": np.where(positive, summ[:, 0], -1),
            "resp_bytes": np.where(positive, summ[:, 1], -1), "state": summ[:, 2],
            "local_orig": lo_, "local_resp": lr_, "missed": S[:, K.C_MISSED],
            "orig_pkts": S[:, K.C_OPKTS], "orig_ip": S[:, K.C_OIP], "resp_pkts": S[:, K.C_RPKTS],
            "resp_ip": S[:, K.C_RIP], "one_way": S[:, K.C_ONEWAY],
            "orig_hi": oh, "orig_lo": ol, "resp_hi": rh, "resp_lo": rl,
        }
        history = self.H[slots].view(f"S{K.HMAX}").reshape(n)
        tunnel = [self.slot_tunnel[s] for s in slots.tolist()]
        return FlowBatch(kc.copy(), cols, history, tunnel)

    def _finish_slots(self, slots: np.ndarray) -> None:
        """Hand ended connections on as a FlowBatch (columns) and free their slots."""
        slots = np.asarray(slots, dtype=np.int64)
        n = len(slots)
        if not n:
            return
        self.pending.append(self._flow_batch(slots))
        self.npending += n
        slot_list = slots.tolist()
        conns = self.conns
        for s, kh in zip(slot_list, self.S[slots, K.C_KH].view(np.uint64).tolist()):
            if conns.get(kh) == s:
                del conns[kh]
            elif s in self.exact_slots:
                key = self.exact_slots.pop(s)
                if self.exact.get(key) == s:
                    del self.exact[key]
                if not self.exact:
                    self.exact_hashes.clear()
            self.slot_tunnel[s] = None
        self.free[self.nfree:self.nfree + n] = slots
        self.nfree += n
        self.flows_out += n

    def _flush_pending(self) -> None:
        if self.pending:
            out, self.pending, self.npending = self.pending, [], 0
            self.sink(out[0] if len(out) == 1 else concat_flow_batches(out))
