"""What the engine keeps per flow (the client side, TCP state, flowbits, the application protocol,
the stream tail kept for matches split over segments, what was already alerted) and the one packet or
message being inspected."""

from __future__ import annotations

from dataclasses import dataclass


class FlowState:
    __slots__ = ("key", "proto", "client", "client_port", "start", "last", "state",
                 "midstream", "seen", "bits", "app", "next_seq", "done_tx", "hdr", "fixed", "uid", "closed",
                 "tail", "spos", "pending", "data_seen")

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
