"""Packet decoding: RawBatch -> DecodedBatch, with Zeek's conn.log as the yardstick.

``Decoder.decode(raw)`` gives one row per IP packet a flow counts (columns in
``batch.DECODED_COLUMNS``), several for a tunnelled packet (the outer UDP packet of a UDP-borne
tunnel is a row of its own, then the inner packet with ``tunnel`` set), none for non-IP frames,
malformed packets and fragments still waiting for the rest. It never raises for packet bytes:
what cannot be decoded is counted in ``DecodedBatch.malformed``, frames without IP in
``non_ip``. The decoder is stateful across batches (fragments, tunnels, UDP tunnel sessions), so
feed one capture's batches to one Decoder, in order.

Two paths give identical rows: a vectorised numpy fast path for the common case
(``fastpath.py``) and a per-packet path for everything (``slowpath.py``). ``fast=False`` uses only
the latter; the tests compare both on every reference trace.

What is decoded, following Zeek's packet analyzers:

* link types: Ethernet, NULL/LOOP, raw IP (101, 12, 14, 228, 229), Linux SLL/SLL2, PPP,
  PPP serial, Cisco HDLC, 802.11 (data frames with LLC/SNAP, A-MSDU), radiotap, NFLOG;
  802.1Q/QinQ, MPLS (0x8847, as Zeek: not 0x8848), PPPoE session, VN-Tag, FabricPath, PBB,
  802.3 LLC/SNAP (linklayer.py).
* IPv4 with options, IPv6 with extension headers; fragment reassembly (fragments.py).
* tunnels (tunnels.py): IP-in-IP, GRE (incl. enhanced GRE/PPTP, transparent Ethernet
  bridging, ERSPAN I/II/III), and on UDP: VXLAN, Geneve, Teredo, AYIYA, GTPv1-U, GRE on 4754.
  Kinds as in ``batch.Tunnel``; IP-layer tunnels are keyed by the outer address pair (as Zeek),
  UDP ones by the outer connection; ``Tunnel.parent`` chains nested tunnels (Zeek's max depth 4).

Checksums are not verified (as ``zeek -C``): a packet with a bad IP, TCP, UDP or ICMP checksum
is decoded and counted like any other, where plain ``zeek`` would drop or not count it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recorder.core.batch import DECODED_COLUMNS, DecodedBatch, RawBatch, Tunnel
from recorder.core.decode import linklayer
from recorder.core.decode.fastpath import decode_fast
from recorder.core.decode.fragments import DEFAULT_MAX_PENDING
from recorder.core.decode.slowpath import SlowPath

MAX_EXAMPLES = 10


@dataclass(slots=True)
class DecodeStats:
    """Running totals over every batch a Decoder has seen."""

    packets: int = 0
    rows: int = 0
    fast_rows: int = 0  # rows produced by the vectorised path
    slow_packets: int = 0  # packets that went through the per-packet path
    malformed: int = 0
    non_ip: int = 0
    fragments: int = 0  # IP fragments seen
    reassembled: int = 0  # datagrams completed from fragments
    fragments_pending: int = 0  # datagrams waiting for more fragments now
    fragments_dropped: int = 0  # pending datagrams evicted or timed out, uncaptured fragments
    ignored: int = 0  # IP packets Zeek makes no connection for (IPv6 ESP, no next header)
    internal_errors: int = 0  # packets the decoder failed on (a bug; counted as malformed)


class Decoder:
    """Decode RawBatches into DecodedBatches; see the module docstring.

    ``tunnels`` lists every Tunnel seen so far; rows name them by index in ``tunnel``.
    ``stats`` holds running totals (DecodeStats).
    """

    def __init__(self, fast: bool = True, *, max_fragments: int = DEFAULT_MAX_PENDING,
                 frag_timeout: float = 300.0) -> None:
        self.fast = fast
        self.tunnels: list[Tunnel] = []
        self.stats = DecodeStats()
        self._slow = SlowPath(self.tunnels, max_fragments, int(frag_timeout * 1e9))

    def decode(self, raw: RawBatch) -> DecodedBatch:
        n = len(raw)
        fast_cols = None
        non_ip = 0
        if self.fast:
            fast_cols, handled, non_ip = decode_fast(raw)
            todo = np.flatnonzero(~handled)
        else:
            todo = np.arange(n)
        slow = self._slow
        data = raw.data
        rows: list[tuple] = []
        payloads: dict[int, bytes] = {}
        members: dict[int, list] = {}
        malformed = 0
        examples: list[str] = []
        todo_cols = zip(todo.tolist(), raw.off[todo].tolist(), raw.caplen[todo].tolist(),
                        raw.wirelen[todo].tolist(), raw.linktype[todo].tolist(), raw.ts[todo].tolist(),
                        raw.file_off[todo].tolist())
        source = raw.source
        for i, off, cap, wire, lt, ts, foff in todo_cols:
            slow.member = (source, foff, cap, ts)  # where the packet lies, kept with its fragments
            try:
                slow.decode(data, i, off, cap, wire, lt, ts)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not lose the batch
                slow.rows, slow.why = [], (linklayer.MALFORMED, f"internal error: {exc!r}")
                self.stats.internal_errors += 1
            if slow.rows:
                base = len(rows)
                for k, pay in slow.payloads:
                    payloads[base + k] = pay
                for k, mem in slow.row_members:
                    members[base + k] = mem
                rows.extend(slow.rows)
            elif slow.why is not None:
                if slow.why[0] == linklayer.NON_IP:
                    non_ip += 1
                else:
                    malformed += 1
                    if len(examples) < MAX_EXAMPLES:
                        examples.append(f"packet {int(raw.index[i])}: {slow.why[1]}")
        out = _merge(fast_cols, rows, payloads, members)
        out.malformed, out.non_ip, out.malformed_examples = malformed, non_ip, examples
        self._count(n, len(todo), out, fast_cols)
        return out

    def _count(self, n: int, n_slow: int, out: DecodedBatch, fast_cols: dict | None) -> None:
        st, slow = self.stats, self._slow
        st.packets += n
        st.rows += len(out)
        st.fast_rows += 0 if fast_cols is None else len(fast_cols["pkt"])
        st.slow_packets += n_slow
        st.malformed += out.malformed
        st.non_ip += out.non_ip
        st.fragments = slow.fragments
        st.reassembled = slow.frags.completed
        st.fragments_pending = len(slow.frags)
        st.fragments_dropped = slow.fragments_dropped + slow.frags.evicted + slow.frags.expired
        st.ignored = slow.ignored


def _merge(fast_cols: dict[str, np.ndarray] | None, rows: list[tuple],
           payloads: dict[int, bytes], members: dict[int, list]) -> DecodedBatch:
    """Fast rows + slow rows, ordered by packet (stable: a tunnel's outer row stays first)."""
    slow = DecodedBatch.from_rows(rows) if rows else None
    if fast_cols is None:
        out = slow if slow is not None else DecodedBatch.empty()
        out.payloads = payloads
        out.members = members
        return out
    if slow is None:
        return DecodedBatch(fast_cols)
    # Fast and slow rows never share a packet, and each side is ordered by packet: insert the
    # (usually few) slow rows at their places; slow row j lands at where[j] + j.
    where = np.searchsorted(fast_cols["pkt"], slow.cols["pkt"], side="right")
    out = DecodedBatch({k: np.insert(fast_cols[k], where, slow.cols[k]) for k in DECODED_COLUMNS})
    out.payloads = {int(where[j]) + j: v for j, v in payloads.items()}
    out.members = {int(where[j]) + j: v for j, v in members.items()}
    return out
