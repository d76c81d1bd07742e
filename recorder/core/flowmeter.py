"""The flow meter: bidirectional connections with Zeek conn.log meaning.

One implementation serves offline ingest and the live recorder. Per batch:

1. numpy builds each row's canonical connection key (the lower address/port first; Zeek's ICMP
   type/counterpart ports; one-way ICMP messages keep their direction) and groups the rows;
2. a dict maps each distinct key to its connection slot (one lookup per key per batch);
3. the compiled state machine (``flowkernel.meter_rows``) runs every row in packet order;
4. connections that ended (timers, reuse, end of input) become flow dicts with the columns of
   the ``flows`` table and go to ``sink`` in lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from recorder.core import flowkernel as K
from recorder.core.batch import DecodedBatch, RawBatch, Tunnel
from recorder.core.flowid import (
    ICMP4_COUNTERPART,
    ICMP6_COUNTERPART,
    DNS_UDP_PORTS,
    LIKELY_SERVER_TCP,
    LIKELY_SERVER_UDP,
    PROTO_NAMES,
    V4_MAPPED,
    LocalNets,
    addr_str,
    community_id,
    flow_uid,
)

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


class FlowMeter:
    """Meters decoded packets into connections and hands finished ones to ``sink`` (lists of dicts)."""

    def __init__(self, sink: Callable[[list[dict]], None], *, local_nets: LocalNets | None = None,
                 timeouts: Timeouts = Timeouts(), emit_every: int = 5000, capacity: int = 4096) -> None:
        self.sink = sink
        self.local = local_nets if local_nets is not None else LocalNets()
        self.timeouts = timeouts
        self.TO = timeouts.as_array()
        self.S, self.H = K.new_state(capacity)
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self.nfree = capacity
        self.slot_key: list[tuple | None] = [None] * capacity
        self.slot_tunnel: list[str | None] = [None] * capacity
        self.conns: dict[tuple, int] = {}
        self.pending: list[dict] = []
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
        R, keys = self._rows(raw, dec)
        ngroups = len(keys)
        gslot = np.fromiter((self.conns.get(k, -1) for k in keys), dtype=np.int64, count=ngroups)
        self._ensure_free(n)
        before = gslot.copy()
        finished = np.empty(n, dtype=np.int64)
        created = np.empty(n, dtype=np.int64)
        self.nfree, nfin, ncre = K.meter_rows(self.S, self.H, R, gslot, self.free, self.nfree, finished, created,
                                              _LIKELY_TCP, _LIKELY_UDP, _DNS_UDP, self.TO,
                                              -1 if capture_id is None else capture_id)
        # new connections: remember their key and tunnel parent
        tun = dec.cols["tunnel"]
        for s in created[:ncre].tolist():
            row = int(self.S[s, K.C_ROW])
            self.slot_key[s] = keys[int(R[row, K.R_GROUP])]
            t = int(tun[row])
            self.slot_tunnel[s] = self._tunnel_uid(t, tunnels) if t >= 0 else None
        changed = np.flatnonzero(gslot != before)
        for g in changed.tolist():
            self.conns[keys[g]] = int(gslot[g])
        if nfin:
            self._finish_slots(finished[:nfin])
        self.packets += n
        self.now = max(self.now, int(R[-1, K.R_TS]))
        out = np.empty(self.S.shape[0], dtype=np.int64)
        nexp = K.expired(self.S, self.now, self.TO, out)
        if nexp:
            self._finish_slots(out[:nexp])
        if len(self.pending) >= self.emit_every:
            self._flush_pending()

    def finish(self) -> None:
        """End of input: every open connection is logged as it stands."""
        active = np.flatnonzero(self.S[:, K.C_ACTIVE])
        self.S[active, K.C_ACTIVE] = 0
        self._finish_slots(active)
        self._flush_pending()

    @property
    def open_connections(self) -> int:
        return len(self.conns)

    # ------------------------------------------------------------------ rows and keys
    def _rows(self, raw: RawBatch, dec: DecodedBatch) -> tuple[np.ndarray, list[tuple]]:
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
        src_gt = (sh > dh) | ((sh == dh) & ((sl > dl) | ((sl == dl) & (sport > dport))))
        swap = src_gt & ~one_way
        a_is_src = ~swap
        kt = np.empty(n, dtype=[("p", "u1"), ("w", "u1"), ("ah", "u8"), ("al", "u8"), ("ap", "u2"),
                                ("bh", "u8"), ("bl", "u8"), ("bp", "u2")])
        kt["p"] = proto
        kt["w"] = one_way
        kt["ah"] = np.where(swap, dh, sh)
        kt["al"] = np.where(swap, dl, sl)
        kt["ap"] = np.where(swap, dport, sport)
        kt["bh"] = np.where(swap, sh, dh)
        kt["bl"] = np.where(swap, sl, dl)
        kt["bp"] = np.where(swap, sport, dport)
        uniq, group = np.unique(kt, return_inverse=True)
        keys = [(p, (ah << 64) | al, ap, (bh << 64) | bl, bp, w)
                for p, w, ah, al, ap, bh, bl, bp in uniq.tolist()]
        R = np.empty((n, K.NROW), dtype=np.int64)
        R[:, K.R_PROTO] = proto
        R[:, K.R_A_IS_SRC] = a_is_src
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
        R[:, K.R_GROUP] = group.reshape(-1)
        R[:, K.R_L4OK] = c["l4_ok"]
        return R, keys

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
        self.slot_key.extend([None] * (new - old))
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
            key = (17, s, sp, d, dp, False) if (s, sp) <= (d, dp) else (17, d, dp, s, sp, False)
            slot = self.conns.get(key)
            if slot is not None:
                return self._uid(slot)
        tkey = ("tunnel", t.kind, min(s, d), max(s, d))
        uid = self._tunnel_uid_cache.get(tkey)
        if uid is None:
            uid = self._tunnel_uid_cache[tkey] = flow_uid(tkey, 0)
        return uid

    def _uid(self, s: int) -> str:
        return flow_uid(self.slot_key[s], int(self.S[s, K.C_START]))

    # ------------------------------------------------------------------ output
    def _addr(self, a: int) -> str:
        t = self._addr_cache.get(a)
        if t is None:
            if len(self._addr_cache) > 200_000:
                self._addr_cache.clear()
            t = self._addr_cache[a] = addr_str(a)
        return t

    def _finish_slots(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        summ = np.empty((len(slots), 3), dtype=np.int64)
        K.summarize(self.S, self.H, slots, summ)
        rows = self.S[slots]
        local = self.local
        has_local = bool(local)
        states = K.CONN_STATES
        for s, row, (ob, rb, st) in zip(slots.tolist(), rows.tolist(), summ.tolist()):
            key = self.slot_key[s]
            proto_num, a_addr, a_port, b_addr, b_port, one_way = key
            if row[K.C_ORIG_IS_A]:
                orig_a, resp_a = a_addr, b_addr
            else:
                orig_a, resp_a = b_addr, a_addr
            orig_p, resp_p = row[K.C_ORIG_P], row[K.C_RESP_P]
            start = row[K.C_START]
            duration = row[K.C_LAST] - start
            hlen = row[K.C_HLEN]
            history = bytes(self.H[s, :hlen]).decode("ascii") if hlen else None
            capture = row[K.C_CAPTURE]
            self.pending.append({
                "uid": flow_uid(key, start),
                "capture_id": capture if capture >= 0 else None,
                "file_offset": row[K.C_FOFF],
                "ts_ns": start,
                "duration_ns": duration if duration > 0 else None,
                "orig_h": self._addr(orig_a), "orig_p": orig_p,
                "resp_h": self._addr(resp_a), "resp_p": resp_p,
                "orig_a": orig_a.to_bytes(16, "big"), "resp_a": resp_a.to_bytes(16, "big"),
                "proto": PROTO_NAMES.get(proto_num, "unknown_transport"), "ip_proto": proto_num,
                "service": None,
                "orig_bytes": ob if duration > 0 else None,
                "resp_bytes": rb if duration > 0 else None,
                "conn_state": states[st],
                "local_orig": (orig_a in local) if has_local else None,
                "local_resp": (resp_a in local) if has_local else None,
                "missed_bytes": row[K.C_MISSED],
                "history": history,
                "orig_pkts": row[K.C_OPKTS], "orig_ip_bytes": row[K.C_OIP],
                "resp_pkts": row[K.C_RPKTS], "resp_ip_bytes": row[K.C_RIP],
                "tunnel_parents": self.slot_tunnel[s],
                "community_id": community_id(proto_num, orig_a, orig_p, resp_a, resp_p, bool(one_way)),
            })
            if self.conns.get(key) == s:
                del self.conns[key]
            self.slot_key[s] = None
            self.slot_tunnel[s] = None
        self.free[self.nfree:self.nfree + len(slots)] = slots
        self.nfree += len(slots)
        self.flows_out += len(slots)

    def _flush_pending(self) -> None:
        if self.pending:
            out, self.pending = self.pending, []
            self.sink(out)
