"""TCP streams of a capture for feeding one parser directly, as test-only stand-ins for the
dispatcher; and the real pipeline (read -> decode -> meter -> AppLayer) run in-process.

Two extractors, for two kinds of test:

``tcp_streams`` reads a capture with dpkt, orients each TCP connection (SYN sender, else the
higher port is the client) and yields per-direction in-order payload (sorted by sequence number,
retransmissions trimmed) in capture order, with ``gap`` where the receiver acknowledged bytes the
capture never carried; ``run_parser`` feeds those events to a parser.

``reference_conns`` follows Zeek's view of a reference trace instead (GRE unwrapped, a new SYN
on a used 4-tuple starts a new connection, the SYN-ACK sender or the low port is the server) and
gives each connection's chunks in time order; ``run_on_trace`` detects at a chunk boundary in
either direction (as after a STARTTLS hand-over) and feeds the rest.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dpkt

from recorder.core.apps.base import Conn, ListOutput, Parser
from recorder.core.apps.dispatch import AppLayer
from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.flow.flowmeter import FlowMeter
from recorder.core.flow.flowrows import FLOW_FIELDS


def _packets(path: Path) -> Iterator[tuple[float, object]]:
    import dpkt

    with path.open("rb") as f:
        try:
            reader = dpkt.pcap.Reader(f)
        except ValueError:
            f.seek(0)
            reader = dpkt.pcapng.Reader(f)
        link = reader.datalink()
        for ts, buf in reader:
            try:
                if link == dpkt.pcap.DLT_EN10MB:
                    ip = dpkt.ethernet.Ethernet(buf).data
                elif link in (0, 108):
                    ip = dpkt.loopback.Loopback(buf).data
                elif link == 113:
                    ip = dpkt.sll.SLL(buf).data
                else:
                    ip = dpkt.ip.IP(buf)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.tcp.TCP):
                yield float(ts), ip


def tcp_streams(path: Path) -> list[tuple[Conn, list[tuple]]]:
    """Each TCP connection of a capture as (Conn, events); an event is ("data", is_orig, bytes, ts)
    or ("gap", is_orig, nbytes, ts)."""
    import dpkt

    conns: dict[tuple, dict] = {}
    order: list[dict] = []
    for ts, ip in _packets(path):
        tcp = ip.data
        fam = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
        a = (socket.inet_ntop(fam, ip.src), tcp.sport)
        b = (socket.inet_ntop(fam, ip.dst), tcp.dport)
        key = tuple(sorted([a, b]))
        c = conns.get(key)
        syn_only = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
        if c is None:
            if syn_only or (not tcp.flags & dpkt.tcp.TH_SYN and a[1] > b[1]):
                orig, resp = a, b
            else:
                orig, resp = b, a
            c = {"conn": Conn(orig[0], orig[1], resp[0], resp[1], "tcp", ts, uid=f"C{len(order)}"),
                 "orig": orig, "events": [], "next": {}, "held": {True: {}, False: {}}}
            conns[key] = c
            order.append(c)
        is_orig = a == c["orig"]
        nxt, held, events = c["next"], c["held"], c["events"]
        if tcp.flags & dpkt.tcp.TH_SYN:
            nxt[is_orig] = (tcp.seq + 1) & 0xFFFFFFFF
        payload = bytes(tcp.data)
        if payload:
            nxt.setdefault(is_orig, tcp.seq)
            held[is_orig][tcp.seq] = max(payload, held[is_orig].get(tcp.seq, b""), key=len)
        if tcp.flags & dpkt.tcp.TH_ACK and (not is_orig) in nxt and held[not is_orig]:
            _drain(events, nxt, held, not is_orig, ts, upto=tcp.ack)
        if is_orig in nxt:
            _drain(events, nxt, held, is_orig, ts)
    for c in order:
        for side in (True, False):
            if side in c["next"]:
                _drain(c["events"], c["next"], c["held"], side, c["conn"].start, upto=-1)
    return [(c["conn"], c["events"]) for c in order]


def _drain(events: list, nxt: dict, held: dict, side: bool, ts: float, upto: int | None = None) -> None:
    """Deliver held segments of ``side`` that are in order; with ``upto`` (an ACK, or -1 for
    everything) skip holes below it as gaps."""
    pending = held[side]
    while pending:
        base = nxt[side]
        rel = {_signed(s - base): s for s in pending}
        first = min(rel)
        seg = pending[rel[first]]
        if first <= 0:
            del pending[rel[first]]
            if len(seg) + first > 0:
                events.append(("data", side, seg[-first:] if first else seg, ts))
                nxt[side] = (base + len(seg) + first) & 0xFFFFFFFF
            continue
        if upto is None or (upto != -1 and ((upto - base) & 0xFFFFFFFF) <= first):
            return
        events.append(("gap", side, first, ts))
        nxt[side] = (base + first) & 0xFFFFFFFF


def _signed(delta: int) -> int:
    """A sequence-number difference as a signed 32-bit value (wrap-around safe)."""
    delta &= 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 1 << 31 else delta


def run_parser(cls: type[Parser], conn: Conn, events: list[tuple], out: ListOutput) -> Parser:
    """Feed events to a parser as the dispatcher would; stop at a hand-over (redetect)."""
    parser = cls(conn, out)
    for kind, side, payload, ts in events:
        if kind == "data":
            parser.data(side, payload, ts)
        else:
            parser.gap(side, payload, ts)
        if parser.redetect:
            break
    parser.end(events[-1][3] if events else conn.start)
    return parser


def _ip_of(buf: bytes, linktype: int):
    """The IP packet inside one captured frame (Ethernet, raw, null; GRE unwrapped), or None."""
    try:
        if linktype == 1:
            pkt = dpkt.ethernet.Ethernet(buf).data
        elif linktype == 0:
            pkt = dpkt.loopback.Loopback(buf).data
        elif linktype in (101, 12, 228, 229):
            pkt = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        else:
            return None
        for _ in range(3):  # tunnels: GRE carrying IP (or Ethernet carrying IP)
            if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) and isinstance(pkt.data, dpkt.gre.GRE):
                inner = pkt.data.data
                if isinstance(inner, dpkt.ethernet.Ethernet):
                    inner = inner.data
                if isinstance(inner, bytes):
                    inner = dpkt.ip.IP(inner) if inner and inner[0] >> 4 == 4 else None
                pkt = inner
            else:
                break
        return pkt if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) else None
    except (dpkt.UnpackError, IndexError, struct.error):
        return None


def _addr(ip) -> str:
    import ipaddress
    return str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))


def reference_conns(pcap: Path) -> list[dict]:
    """Every TCP connection of a trace: {conn: Conn, chunks: [(ts, is_orig, bytes)]} in time order."""
    conns: list[dict] = []
    current: dict[tuple, dict] = {}
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        for ts, buf in reader:
            ip = _ip_of(buf, linktype)
            if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            src, dst = _addr(ip)
            a, b = (src, tcp.sport), (dst, tcp.dport)
            key = tuple(sorted([a, b]))
            syn, ack = tcp.flags & dpkt.tcp.TH_SYN, tcp.flags & dpkt.tcp.TH_ACK
            c = current.get(key)
            if c is not None and syn and not ack and (c["segs"][True] or c["segs"][False] or c["fin"]):
                c = None  # a new SYN on a used 4-tuple starts a new connection
            if c is None:
                if syn and ack:
                    orig = b
                elif syn or not (a[1] < 1024 <= b[1]):
                    orig = a
                else:
                    orig = b
                resp = b if orig == a else a
                c = {"orig": orig, "resp": resp, "start": ts, "segs": {True: [], False: []},
                     "isn": {}, "fin": False}
                current[key] = c
                conns.append(c)
            is_orig = a == c["orig"]
            if syn:
                c["isn"][is_orig] = tcp.seq + 1
            if tcp.flags & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST):
                c["fin"] = True
            if tcp.data:
                c["segs"][is_orig].append((tcp.seq, ts, bytes(tcp.data)))
    out = []
    for c in conns:
        chunks = []
        for is_orig in (True, False):
            segs = c["segs"][is_orig]
            if not segs:
                continue
            base = c["isn"].get(is_orig, min(s for s, _, _ in segs))
            nxt = 0
            for rel, ts, data in sorted(((s - base) % (1 << 32), ts, d) for s, ts, d in segs):
                if rel + len(data) <= nxt:
                    continue  # duplicate
                if rel < nxt:
                    data = data[nxt - rel:]
                nxt = max(nxt, rel) + len(data)
                chunks.append((ts, is_orig, data))
        chunks.sort(key=lambda x: x[0])
        conn = Conn(c["orig"][0], c["orig"][1], c["resp"][0], c["resp"][1], "tcp", c["start"])
        out.append({"conn": conn, "chunks": chunks})
    return out


def run_on_trace(parser_cls, pcap: Path) -> ListOutput:
    """Detect (at a chunk boundary, in either direction, as after a STARTTLS hand-over) and feed."""
    out = ListOutput()
    for item in reference_conns(pcap):
        chunks, conn = item["chunks"], item["conn"]
        streams = {True: b"", False: b""}
        offsets = []
        for _, is_orig, data in chunks:
            offsets.append(len(streams[is_orig]))
            streams[is_orig] += data
        start = None
        for i, (_, is_orig, _) in enumerate(chunks):
            if parser_cls.detect(streams[is_orig][offsets[i]:offsets[i] + 4096], is_orig, conn):
                start = i
                break
        if start is None:
            continue
        parser = parser_cls(conn, out)
        for ts, is_orig, data in chunks[start:]:
            parser.data(is_orig, data, ts)
        parser.end(chunks[-1][0])
    return out


def run_app_layer(path: Path, parsers, batch_size: int = 65536, **kw) -> tuple[AppLayer, ListOutput, list]:
    """read -> decode -> meter -> AppLayer, as the ingest runs them; returns the flow rows too."""
    out = ListOutput()
    app = AppLayer(out, parsers, **kw)
    flows: list = []
    meter = FlowMeter(lambda fb: flows.extend(dict(zip(FLOW_FIELDS, row)) for row in fb.rows()))
    dec = Decoder()
    for raw in read_batches(path, batch_size=batch_size):
        d = dec.decode(raw)
        meter.add(raw, d, None, dec.tunnels)
        app.feed(raw, d)
    meter.finish()
    app.finish()
    return app, out, flows
