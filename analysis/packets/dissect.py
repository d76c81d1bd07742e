"""A flow's packets as Wireshark's dissectors see them (tshark through pyshark, optional), and
its TCP payload reassembled in both directions (Wireshark's Follow Stream; our own reassembly,
``apps.streams``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from analysis.output import rfc3339
from analysis.packets.extract import Packet
from recorder.core.batch import RawBatch
from recorder.core.decode.decode import Decoder
from recorder.core.errors import WiretrailError

INSTALL = ("dissecting packets needs tshark and pyshark: apt-get install tshark && pip install pyshark "
           "(or pip install 'wiretrail[dissect]')")


def require_tshark():
    """The pyshark module; WiretrailError (one line saying how to install) when it or tshark is missing."""
    try:
        import pyshark
    except ImportError as err:
        raise WiretrailError(INSTALL) from err
    if shutil.which("tshark") is None:
        raise WiretrailError(INSTALL)
    return pyshark


@contextmanager
def _file_capture(pcap: str) -> Iterator:
    """pyshark's ``FileCapture`` of ``pcap``, closed on the way out, and the SIGCHLD watcher pyshark
    attaches to the main thread's event loop detached again. Left attached, every child process
    that ends later in a long-lived process (the test suite, a program using this module) writes a
    byte to that loop's wakeup pipe, which nothing reads; once it is full, Python prints "Exception
    ignored when trying to write to the signal wakeup fd" on stderr for each (a command's one-line
    error became two lines)."""
    import asyncio
    import warnings

    cap = require_tshark().FileCapture(pcap)
    try:
        yield cap
    finally:
        try:
            cap.close()
        finally:
            with warnings.catch_warnings():  # the child-watcher API is deprecated from Python 3.12
                warnings.simplefilter("ignore", DeprecationWarning)
                watcher = asyncio.get_child_watcher()
                if isinstance(watcher, asyncio.SafeChildWatcher):  # pyshark's, in the main thread
                    watcher.close()  # its SIGCHLD handler removed, the wakeup fd reset with it
                    asyncio.set_child_watcher(None)  # the default watcher again when next needed


def summaries(pcap: str, limit: int | None) -> list[dict]:
    """One row per packet: number, time, source, destination, the highest protocol tshark
    recognised, length and the protocol layers (``--format details`` gives every field)."""
    rows = []
    with _file_capture(pcap) as cap:
        for i, p in enumerate(cap, 1):
            net = next((layer for layer in p.layers if layer.layer_name in ("ip", "ipv6")), None)
            src = dst = None
            if net is not None:
                src, dst = net.get_field("src"), net.get_field("dst")
            rows.append({"no": i, "time": rfc3339(float(p.sniff_timestamp)), "source": src, "destination": dst,
                         "protocol": p.highest_layer, "length": int(p.length),
                         "layers": ":".join(layer.layer_name for layer in p.layers)})
            if limit is not None and len(rows) >= limit:
                break
    return rows


def details(pcap: str, limit: int | None) -> list[str]:
    """Every packet's full dissection (tshark -V), as text."""
    out = []
    with _file_capture(pcap) as cap:
        for p in cap:
            out.append(str(p))
            if limit is not None and len(out) >= limit:
                break
    return out


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes one side sent, in order (``data``), or ``missing`` bytes never captured."""

    from_orig: bool
    data: bytes = b""
    missing: int = 0


def _batch(packets: list[Packet]) -> RawBatch:
    n = len(packets)
    lens = np.array([len(p.data) for p in packets], dtype=np.int64)
    off = np.zeros(n, dtype=np.int64)
    if n:
        off[1:] = np.cumsum(lens)[:-1]
    return RawBatch("", b"".join(p.data for p in packets), off, lens,
                    np.array([p.wirelen for p in packets], dtype=np.int64),
                    np.array([p.ts_ns for p in packets], dtype=np.int64),
                    np.array([p.linktype for p in packets], dtype=np.int64),
                    np.array([p.offset for p in packets], dtype=np.int64), np.arange(n, dtype=np.int64))


def follow(packets: list[Packet], flow: dict) -> list[Chunk]:
    """The TCP payload of ``flow`` (a flows row) both ways, in the order it became in-order."""
    from recorder.core.apps.streams import Stream

    if flow["proto"] != "tcp":
        raise WiretrailError(f"flow {flow['uid']} is {flow['proto']}: --follow needs a TCP flow")
    raw = _batch(packets)
    dec = Decoder().decode(raw)
    c = dec.cols
    orig = int.from_bytes(bytes(flow["orig_a"]), "big")
    resp = int.from_bytes(bytes(flow["resp_a"]), "big")
    chunks: list[Chunk] = []
    streams = {side: Stream(lambda b, s=side: chunks.append(Chunk(s, bytes(b))),
                            lambda n, s=side: chunks.append(Chunk(s, missing=n))) for side in (True, False)}
    for i in range(len(dec)):
        if int(c["proto"][i]) != 6 or not int(c["l4_ok"][i]):
            continue
        src = int(c["src_hi"][i]) << 64 | int(c["src_lo"][i])
        dst = int(c["dst_hi"][i]) << 64 | int(c["dst_lo"][i])
        sp, dp = int(c["sport"][i]), int(c["dport"][i])
        if (src, sp, dst, dp) == (orig, flow["orig_p"], resp, flow["resp_p"]):
            side = True
        elif (src, sp, dst, dp) == (resp, flow["resp_p"], orig, flow["orig_p"]):
            side = False
        else:
            continue  # an outer row of a tunnel, or another connection's
        st = streams[side]
        flags, seq = int(c["flags"][i]), int(c["seq"][i])
        if flags & 2 and not st.started:
            st.start(seq, True)
        po, cap = int(c["pay_off"][i]), int(c["pay_cap"][i])
        if po == -2:
            data = dec.payloads.get(i, b"")
        else:
            data = raw.data[po:po + cap] if po >= 0 and cap > 0 else b""
        if data:
            st.add(seq, data, int(c["plen"][i]))
    for st in streams.values():
        st.flush()
    merged: list[Chunk] = []
    for ch in chunks:  # consecutive bytes of one side as one chunk
        if merged and merged[-1].from_orig == ch.from_orig and not ch.missing and not merged[-1].missing:
            merged[-1] = Chunk(ch.from_orig, merged[-1].data + ch.data)
        else:
            merged.append(ch)
    return merged


def hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for i in range(0, len(data), width):
        part = data[i:i + width]
        hx = " ".join(f"{b:02x}" for b in part)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
        lines.append(f"{i:08x}  {hx:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


def as_text(data: bytes) -> str:
    """The bytes as text: UTF-8 where it decodes, other bytes and control characters but newline,
    carriage return and tab as \\xNN (no escape sequence reaches the terminal)."""
    out = data.decode("utf-8", "backslashreplace")
    return "".join(ch if ch in "\n\r\t" or (ch.isprintable()) else f"\\x{ord(ch):02x}" for ch in out)
