"""Inspection: the packets and parser messages of an ingest, handed to an *inspector* as they pass.

The rule engine (``analysis.rules.engine.Engine``) needs what the ingest already has: every decoded
batch of packets, and the inspection buffers the protocol parsers build for each message (an HTTP
request, a DNS query, a TLS handshake; see ``apps.base``). Running it beside the ingest, in the
same pass and on the same parsers, saves reading, decoding and parsing the captures a second time.

An inspector implements::

    feed(raw, dec, messages, recognised)   after the application layer took one batch
    finish(messages) -> result             at the end of input; the result must pickle

where ``messages`` are the parsers' messages since the last call, each a tuple ``(ts_ns, proto,
orig_h, orig_p, resp_h, resp_p, service, is_orig, tx, buffers)`` (``proto`` 6 or 17, ``service``
the protocol the parser recognised, as Zeek names it, ``is_orig`` the message went to the server),
and ``recognised`` the connections whose protocol was recognised since the last call, each
``(proto, orig_h, orig_p, resp_h, resp_p, service)``. ``recorder.core.pipeline.ingest`` drives it (in its
application-layer process when it has one); ``Inspection`` is the glue on an ``AppLayer``.

An inspector whose state lives per flow may also implement::

    shard(k, n) -> inspector          the inspector of the k-th of n shares of the flows
    merge(results) -> result          the n shards' finish results as one

and the ingest then runs ``n`` of them (one per core) in processes of their own, each seeing
only its share of the packets, messages and recognised connections (``shard_rows``,
``shard_of``: a hash of the flow's addresses and ports, the same both ways). Its batches keep
every packet's bytes and times (``raw``), so packet numbers and payload offsets stay as they are.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from recorder.core.apps.base import Conn
from recorder.core.flow.flowid import addr_int

NS = 1_000_000_000
_PROTO = {"tcp": 6, "udp": 17}

Message = tuple  # (ts_ns, proto, orig_h, orig_p, resp_h, resp_p, service, is_orig, tx, buffers)
Recognised = tuple  # (proto, orig_h, orig_p, resp_h, resp_p, service)


class Inspector(Protocol):
    def feed(self, raw, dec, messages: list[Message], recognised: list[Recognised]) -> None: ...

    def finish(self, messages: list[Message]) -> Any: ...


_PORT_PROTOS = (6, 17, 132)  # the protocols whose flows are told apart by ports
_M64 = 0xFFFFFFFFFFFFFFFF


def _fold(h):
    """The bits of a 64-bit hash folded into its low byte (a Python int or a uint64 array)."""
    h = h ^ (h >> 32)
    h = h ^ (h >> 16)
    return h ^ (h >> 8)


def shard_rows(cols: dict, n: int) -> np.ndarray:
    """The shard (0..n-1) of each row of a decoded batch's columns: a hash of its flow (protocol,
    addresses and, for TCP, UDP and SCTP, ports), the same in both directions."""
    proto = cols["proto"]
    h = cols["src_hi"] ^ cols["src_lo"] ^ cols["dst_hi"] ^ cols["dst_lo"] ^ proto.astype(np.uint64)
    ports = (cols["sport"] ^ cols["dport"]).astype(np.uint64)
    h = h ^ np.where(np.isin(proto, _PORT_PROTOS), ports, np.uint64(0))
    return (_fold(h) % np.uint64(n)).astype(np.int64)


def shard_of(proto: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int, n: int) -> int:
    """The shard of a parser's connection (``shard_rows`` of its packets)."""
    a, b = addr_int(orig_h), addr_int(resp_h)  # the decoder's two 64-bit columns of each, XORed
    h = (a >> 64) ^ (a & _M64) ^ (b >> 64) ^ (b & _M64) ^ proto
    if proto in _PORT_PROTOS:
        h ^= orig_p ^ resp_p
    return _fold(h) % n


class InspectingOutput:
    """An Output that asks the parsers for inspection buffers and keeps them as messages; everything
    else goes to ``inner`` (the store's output, or nothing)."""

    inspecting = True

    def __init__(self, inner=None) -> None:
        self._inner = inner
        self.messages: list[Message] = []

    def __getattr__(self, name: str):
        if self._inner is None:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def inspect(self, conn: Conn, is_orig: bool, ts: float, tx: int, buffers: dict[str, bytes]) -> None:
        self.messages.append((round(ts * NS), _PROTO.get(conn.proto, 6), conn.orig_h, conn.orig_p, conn.resp_h,
                              conn.resp_p, conn.services[-1] if conn.services else None, is_orig, tx, buffers))

    def take(self) -> list[Message]:
        out, self.messages = self.messages, []
        return out


class NullOutput:
    """An Output that keeps nothing (an inspection without a store)."""

    def log(self, name, record, conn) -> None:
        pass

    def credential(self, conn, **kw) -> None:
        pass

    def file(self, conn, **kw) -> str:
        return ""

    def name(self, addr, name, **kw) -> None:
        pass

    def mac(self, addr, mac, **kw) -> None:
        pass


class Inspection:
    """An inspector driven by an application layer: call ``feed`` after each ``apps.feed`` and
    ``finish`` after ``apps.finish``. ``output`` is what the application layer must write to."""

    def __init__(self, inspector: Inspector, inner_output=None) -> None:
        self.inspector = inspector
        self.output = InspectingOutput(inner_output if inner_output is not None else NullOutput())
        self._recognised: list[Conn] = []

    def attach(self, apps) -> None:
        """Have ``apps`` (an AppLayer writing to ``self.output``) report the connections it recognises."""
        apps.recognised = self._recognised

    def _take_recognised(self) -> list[Recognised]:
        conns, self._recognised[:] = list(self._recognised), []
        return [(_PROTO.get(c.proto, 6), c.orig_h, c.orig_p, c.resp_h, c.resp_p, c.services[-1]) for c in conns]

    def feed(self, raw, dec) -> None:
        self.inspector.feed(raw, dec, self.output.take(), self._take_recognised())

    def finish(self) -> Any:
        self._take_recognised()
        return self.inspector.finish(self.output.take())

    def close(self) -> None:
        """The ingest stopped early: nothing to release in process."""


__all__ = ["InspectingOutput", "Inspection", "Inspector", "Message", "NullOutput", "Recognised", "shard_of",
           "shard_rows"]
