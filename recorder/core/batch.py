"""The columnar contracts between capture I/O, the decoder and the flow meter.

Hot-path data moves as batches of numpy columns, not one object per packet:

    pcapio.read_batches(path)  -> RawBatch      packets as they sit in the file
    decode.Decoder.decode(raw) -> DecodedBatch  one row per IP packet that a flow counts
    flowmeter.FlowMeter.add(raw, decoded)       Zeek conn.log state per flow

A captured packet yields zero rows (ARP, malformed, a fragment still waiting for the rest),
one row, or several (a tunnel: the outer UDP packet is a row of its own flow and the inner
packet another, whose ``tunnel`` names the outer one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class RawBatch:
    """Consecutive packets of one capture file, as columns (all arrays have length ``n``).

    ``data[off[i]:off[i] + caplen[i]]`` is packet ``i``. ``ts`` is nanoseconds since the epoch (UTC).
    ``linktype`` is the DLT/LINKTYPE of each packet (pcapng may mix them in one file).
    ``file_off`` is the byte offset of the packet's record (pcap) or block (pcapng) in the file
    as stored on disk (for gzip files: in the decompressed stream).
    ``index`` is the 0-based packet number within the file.
    ``in_file``: packet ``i``'s bytes lie unchanged at ``file_off[i] + 16`` of the file ``source``
    on disk (a classic, uncompressed pcap), so another process can read them there.
    """

    source: str
    data: bytes
    off: np.ndarray  # int64
    caplen: np.ndarray  # int64
    wirelen: np.ndarray  # int64
    ts: np.ndarray  # int64 ns
    linktype: np.ndarray  # int64
    file_off: np.ndarray  # int64
    index: np.ndarray  # int64
    in_file: bool = False

    def __len__(self) -> int:
        return len(self.off)

    def packet(self, i: int) -> bytes:
        o = int(self.off[i])
        return self.data[o:o + int(self.caplen[i])]


# Columns of a DecodedBatch, with dtypes. Addresses are 16 bytes as two big-endian halves
# (IPv4 as the IPv4-mapped IPv6 address ::ffff:a.b.c.d), so one key layout covers both families.
DECODED_COLUMNS: dict[str, str] = {
    "pkt": "int64",  # index of the packet in the RawBatch this row came from
    "ver": "uint8",  # 4 or 6
    "src_hi": "uint64", "src_lo": "uint64",
    "dst_hi": "uint64", "dst_lo": "uint64",
    "proto": "uint8",  # IP protocol number of the transport (after extension headers)
    "sport": "uint16", "dport": "uint16",  # TCP/UDP ports; ICMP: type, code
    "ip_len": "uint32",  # bytes of the IP packet as its header says (IPv6: 40 + payload length)
    "plen": "uint32",  # transport payload length from the IP length (not limited by caplen)
    "flags": "uint8",  # TCP flags (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128)
    "seq": "uint32", "ack": "uint32", "win": "uint16",
    "pay_off": "int64",  # offset of the transport payload in RawBatch.data (-1 if none captured)
    "pay_cap": "int32",  # payload bytes actually captured (<= plen)
    "tunnel": "int64",  # -1, or index into Decoder.tunnels of the tunnel this row was carried in
    "l4_ok": "uint8",  # 1 if the transport header was complete, 0 if only the IP header was
}


@dataclass(frozen=True, slots=True)
class Tunnel:
    """The outer connection a tunnelled row travelled in, as Zeek's ``tunnel_parents`` names it.

    ``kind`` is one of ``IP``, ``GRE``, ``VXLAN``, ``GENEVE``, ``TEREDO``, ``AYIYA``, ``GTPV1``,
    ``ERSPAN``. For UDP-borne tunnels the outer packet is also a row of its own (a UDP flow), and
    the tunnel's parent uid is that flow's uid; for IP-in-IP and GRE the parent is a tunnel id
    derived from the outer addresses. ``outer`` is the outer key (proto, src16, dst16, sport, dport)
    and ``parent`` the Tunnel index this tunnel itself was carried in, or -1.
    """

    kind: str
    outer_proto: int
    outer_src: bytes  # 16 bytes
    outer_dst: bytes
    outer_sport: int
    outer_dport: int
    parent: int = -1


@dataclass(slots=True)
class DecodedBatch:
    """Rows of decoded IP packets; every column in DECODED_COLUMNS is a numpy array of one length."""

    cols: dict[str, np.ndarray]
    malformed: int = 0  # packets that could not be decoded (counted, never fatal)
    non_ip: int = 0  # packets with no IP in them (ARP, LLDP, ...): not flows, not errors
    malformed_examples: list[str] = field(default_factory=list)  # a few "packet N: reason" lines
    # Payload bytes of rows whose ``pay_off`` is -2 (reassembled fragments, and anything tunnelled
    # inside them): those bytes are not in RawBatch.data. Row index -> the captured payload.
    payloads: dict[int, bytes] = field(default_factory=dict)
    # Rows of a reassembled datagram: row index -> the fragments before the one that completed it
    # (which is the row's ``pkt``), as (RawBatch.source, file_off, caplen, ts), in arrival order.
    members: dict[int, list[tuple]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["pkt"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    @classmethod
    def empty(cls) -> DecodedBatch:
        return cls({k: np.zeros(0, dtype=v) for k, v in DECODED_COLUMNS.items()})

    @classmethod
    def from_rows(cls, rows: list[tuple], **kw) -> DecodedBatch:
        """Build from tuples ordered as DECODED_COLUMNS (the slow path's output)."""
        if not rows:
            out = cls.empty()
        else:
            cols = list(zip(*rows))
            out = cls({k: np.array(c, dtype=t) for (k, t), c in zip(DECODED_COLUMNS.items(), cols)})
        for k, v in kw.items():
            setattr(out, k, v)
        return out
