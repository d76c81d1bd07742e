"""What the engine keeps per flow (the client side, TCP state, flowbits, the application protocol,
the stream tail kept for matches split over segments, what was already alerted) and the one packet or
message being inspected."""

from __future__ import annotations

from dataclasses import dataclass


class FlowState:
    __slots__ = ("key", "proto", "client", "client_port", "start", "last", "state",
                 "midstream", "seen", "bits", "app", "next_seq", "done_tx", "hdr", "fixed", "uid", "closed",
                 "tail", "spos", "pending", "data_seen", "ints", "isn", "nseq", "tls_ver")

    def __init__(self, key: tuple, proto: int, client: int, cport: int, ts: int) -> None:
        self.key = key
        self.proto = proto
        self.client, self.client_port = client, cport  # the side whose packets go to the server
        self.start = self.last = ts
        self.state = 0  # TCP: 0 none, 1 SYN, 2 SYN-ACK, 3 established
        self.midstream = False
        self.seen = 0  # bit 1: a packet to the server, bit 2: one to the client
        self.bits: set[str] = set()
        self.app: str | None = None
        self.next_seq = [None, None]  # per direction (0 to server): highest sequence end inspected
        self.done_tx: set[tuple[int, int, bool]] = set()  # (rule index, tx, to_server) alerted or passed
        self.hdr: dict[int, bool] = {}  # rule index * 2 + to_server -> its header (and protocol) matched
        self.fixed: list = [None, None]  # per direction (0 to server): the header-only rules whose header matched
        self.uid: str | None = None
        self.closed = False
        self.tail = [b"", b""]  # per direction: the last engine.STREAM_TAIL bytes of its in-order data
        self.spos = [0, 0]  # per direction: stream bytes seen
        self.pending: list[dict] = [{}, {}]  # per direction: rule index -> (rule, spos when it failed)
        self.data_seen = False  # a packet with payload went by: the protocol may be known from it on
        self.ints: dict[str, int] = {}  # flowint variables
        self.isn: list[int | None] = [None, None]  # per direction (0 to server): TCP initial sequence number
        self.nseq: list[int] = [0, 0]  # per direction: Suricata's next_seq (stream_size is nseq - isn)
        self.tls_ver: list[int | None] = [None, None]  # per direction: the version of its TLS hello

    def track_seq(self, d: int, flags: int, seq: int, size: int) -> None:
        """Suricata's isn and next_seq of direction ``d`` (midstream: isn is one before the first seq)."""
        if flags & 0x02:
            self.isn[d] = seq
            self.nseq[d] = (seq + 1) & 0xFFFFFFFF
        elif self.isn[d] is None:
            self.isn[d] = (seq - 1) & 0xFFFFFFFF
            self.nseq[d] = seq
        end = (seq + size + (1 if flags & 0x01 else 0)) & 0xFFFFFFFF
        nxt = self.nseq[d]
        # in order (starting at or before next_seq) and reaching past it: next_seq moves to its end
        if ((nxt - seq) & 0xFFFFFFFF) < 0x80000000 and 0 < ((end - nxt) & 0xFFFFFFFF) < 0x80000000:
            self.nseq[d] = end

    def stream_sizes(self) -> tuple[int | None, int | None]:
        """(client, server) bytes sent plus the SYN, as Suricata's ``next_seq - isn``."""
        return tuple(None if self.isn[d] is None else (self.nseq[d] - self.isn[d]) & 0xFFFFFFFF
                     for d in (0, 1))  # type: ignore[return-value]

    @property
    def established(self) -> bool:
        if self.proto == 6:
            return self.state == 3
        return self.seen == 3


@dataclass(slots=True)
class Inspection:
    """One packet or message being inspected."""

    ts_ns: int
    flow: FlowState
    to_server: bool
    src: int
    sport: int
    dst: int
    dport: int
    proto: int
    buffers: dict
    flags: int = 0
    dsize: int = 0
    itype: int = 0
    icode: int = 0
    tx: int | None = None
    pcap_cnt: int | None = None
    app: str | None = None
    stream: bytes | None = None  # TCP, in an established session: this packet's new bytes
    tail: bytes = b""  # the direction's recent data before them (the stream is tail + stream)
    failed: list | None = None  # stream-capable candidates that did not match (to retry on the next segment)
