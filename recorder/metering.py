"""Capture first, for the flow meter too: everything a stream does with a packet after writing it
runs in a process of its own, the meter's, at a lower CPU priority than capture.

The capture process only reads the kernel ring and writes the files (``recorder.stream``); each
batch, once written, goes through a queue to the meter's process with the files it landed in
(``Metering.batch``), where the same Decoder and FlowMeter as ``wiretrail ingest`` meter it, the
packet index is collected, and the batch is handed to the protocol parsers' process
(``sinks.LiveApps``), which this process starts (and the flow writer's, ``sinks.FlowSink``). In
a burst the meter may fall behind: the batches wait in memory (at most ``QUEUE_BYTES`` of
packets; beyond that capture waits for it, as it did when it metered itself), and it catches up
after, in order, so no connection is split and no packet goes unmetered. The files are the
evidence and never wait for the meter. This is the design Stenographer and Arkime use (packets to
disk first, everything else at its own pace), with the queue in memory rather than read back from
the files, so that ``encrypt_to`` (files the sensor cannot read back) works the same.

While the meter's backlog is large (``recorder.lag.Backlog``), the parsers and live signatures
are not fed (their share of the CPU goes to catching up; the catch-up of live detection inspects
those files once sealed) and no interim records are written.

Messages, in order with the batches: ``flush`` (every few seconds: finished flows and records out;
after an idle read the meter's clock moves to the wall clock), ``interim`` (a file was sealed: the
open connections' interim records), then the end of input (stop: every connection ends, the last
records are written). Figures for the capture process's stats line come back through shared
memory (``MeterStats``); the final ones with the reply to the stop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, fields

from recorder.core.decode.decode import Decoder
from recorder.core.errors import StoreError, WiretrailError
from recorder.core.flow.flowid import LocalNets
from recorder.core.flow.flowmeter import FlowMeter, Timeouts
from recorder.core.pipeline.child import Child
from recorder.indexing import StreamIndex
from recorder.lag import Backlog, Behind, CaptureLag
from recorder.live_flows import store_closed
from recorder.live_signatures import live_signatures
from recorder.rotation import slice_batch
from recorder.sinks import Counters, FlowSink, LiveApps

log = logging.getLogger("wiretrail-recorder")

QUEUE_BYTES = 512 << 20  # packet bytes waiting for the meter; beyond it capture waits for the meter
NICE = 10  # the meter's process (and the parsers' and flow writer's it starts) yield the CPU to capture
# An idle link advances the flow meter's clock to the wall clock less this (packets the kernel
# still holds are older than now), so quiet connections end on time (live detection sees them).
IDLE_CLOCK_MARGIN_NS = 1_000_000_000
_WAIT_SECONDS = 0.005  # capture's poll while the queue is full


@dataclass(frozen=True, slots=True)
class MeterStats:
    flows: int = 0
    flows_lost: int = 0
    parser_skipped: int = 0
    shed: int = 0
    spells: int = 0  # times the meter's backlog started shedding
    open_connections: int = 0
    lag_ns: int = 0  # the last metered batch's: wall clock less its last packet's time
    max_lag_ns: int = 0
    metered_bytes: int = 0  # packet bytes metered so far (capture knows how many it sent)


_FIELDS = tuple(f.name for f in fields(MeterStats))
_METERED = _FIELDS.index("metered_bytes")


class Metering:
    """The capture process's side: starts the meter's process (fork; call before any thread of
    the capture process starts) and feeds it. ``capture_fd``: the capture handle's descriptor,
    closed in the child (only capture reads the ring)."""

    def __init__(self, config, store, stream_name: str, sensor: str, *, inspect=None, behind: Behind | None = None,
                 slot: int = 0, capture_fd: int | None = None) -> None:
        self.shared = multiprocessing.RawArray("q", len(_FIELDS))  # written by the meter
        self.sent = multiprocessing.RawValue("q", 0)  # packet bytes handed to the meter: written here
        self.child = Child(_meter_main, (config, store, stream_name, sensor, inspect, behind, slot, self.shared,
                                         self.sent, capture_fd),
                           name="wiretrail-meter", daemon=False, queue=1 << 16,
                           failure=lambda err: WiretrailError(f"metering failed: {err!r}"),
                           ended=WiretrailError("the meter's process ended unexpectedly"),
                           store_path=store.display, on_warning=log.warning)
        self.final: MeterStats | None = None

    @property
    def queued_bytes(self) -> int:
        """Packet bytes waiting for the meter (two counters, each with one writer: no race)."""
        return self.sent.value - self.shared[_METERED]

    def batch(self, raw, segments: list) -> None:
        """A written batch and its segments ``(lo, hi, capture_id)``; waits only while the queue
        holds ``QUEUE_BYTES`` (the meter is that far behind)."""
        self.child.check()
        size = int(raw.caplen.sum())
        while self.queued_bytes > 0 and self.queued_bytes + size > QUEUE_BYTES:
            time.sleep(_WAIT_SECONDS)
            self.child.check()
        self.sent.value += size
        self.child.send(("batch", raw, segments, size))

    def flush(self, idle_wall_ns: int | None) -> None:
        """Finished flows and records out; ``idle_wall_ns``: the last read found no packet, the
        wall clock then (the meter's clock moves to it, less a margin)."""
        self.child.check()
        self.child.send(("flush", idle_wall_ns))

    def interim(self) -> None:
        """A file was sealed: interim records of the connections still open."""
        self.child.check()
        self.child.send(("interim",))

    def stats(self) -> MeterStats:
        if self.final is not None:
            return self.final
        return MeterStats(*self.shared[:])

    def close(self) -> MeterStats:
        """Stop: the meter meters what is queued, ends every connection, writes and stores the
        last of everything, and ends (waits for it)."""
        if self.final is None:
            raised = self.child.error  # already raised by a call here: its caller reports it
            values = self.child.finish()
            self.final = MeterStats(*values) if values is not None else MeterStats(*self.shared[:])
            if self.child.error is not None and raised is None:
                log.error("%s", self.child.error)
        return self.final


class _Meter:
    """The meter's process: what a stream does with a packet after writing it."""

    def __init__(self, config, store, stream_name: str, sensor: str, inspect, behind: Behind | None, slot: int,
                 shared, sent) -> None:
        self.config, self.store, self.stream_name = config, store, stream_name
        self.behind, self.slot = behind, slot
        self.shared, self.sent = shared, sent
        self.metered_bytes = 0
        self.open_connections = 0  # counted at each flush (a sum over the meter's whole table)
        self.counters = Counters()
        self.lag = CaptureLag()  # of the packets it meters behind the wire (the stats line's meter lag)
        self.backlog = Backlog()
        local = LocalNets([str(n) for n in config.local_net])
        self.sink = FlowSink(store, self.counters)
        self.apps = None
        if config.parsers:
            self.apps = LiveApps(store, self.counters, local,
                                 inspector=live_signatures(inspect, config, sensor, store))
        self.meter = FlowMeter(self.sink, local_nets=local, timeouts=Timeouts())
        self.decoder = Decoder(fast=True)
        self.indexes = StreamIndex(store)

    def batch(self, raw, segments: list, size: int) -> None:
        self.metered_bytes += size
        self.lag.update(int(raw.ts[-1]), time.time_ns())
        self._pace()
        for lo, hi, capture_id in segments:
            part = slice_batch(raw, lo, hi)
            dec = self.decoder.decode(part)
            self.meter.add(part, dec, capture_id, self.decoder.tunnels)
            self.indexes.add(part, dec, capture_id)
            if self.apps is not None:
                self.apps.feed(part, dec, capture_id)

    def _pace(self) -> None:
        """Shed inspection while the backlog is large; resume once it is small (``recorder.lag``)."""
        if self.backlog.update(self.sent.value - self.metered_bytes):
            if self.apps is not None:
                self.apps.shed(self.backlog.behind)
            if self.behind is not None:
                self.behind.set(self.slot, self.backlog.behind)

    def flush(self, idle_wall_ns: int | None) -> None:
        self._pace()
        if idle_wall_ns is not None:  # capture's read found no packet: the meter has caught up with it
            self.lag.update(None, idle_wall_ns)
            if self.meter.now:  # idle link: time passes without packets
                self.meter.advance(idle_wall_ns - IDLE_CLOCK_MARGIN_NS)
        self.meter.flush()
        self.sink.drain()
        if not self.backlog.behind:  # for live detection, which is shed while the meter is behind
            store_closed(self.sink, self.stream_name, self.meter, self.config)
        if self.apps is not None:
            self.apps.flush()
        self.open_connections = self.meter.open_connections

    def interim(self) -> None:
        """Finished flows out, then interim records of the connections still open (so a long
        connection shows before it ends); not while the meter is behind (the next rotation's will do)."""
        self.meter.flush()
        self.sink.drain()
        if not self.backlog.behind:
            self.sink.open_flows(self.stream_name, self.meter.snapshot(), self.meter.now)

    def publish(self) -> None:
        k, lag = self.counters, self.lag
        self.shared[:] = (k.flows, k.flows_lost, k.parser_skipped, k.shed, self.backlog.spells, self.open_connections,
                          lag.lag_ns, lag.max_lag_ns, self.metered_bytes)

    def stats(self) -> tuple:
        self.open_connections = self.meter.open_connections
        self.publish()
        return tuple(self.shared[:])

    def close(self) -> None:
        self.indexes.close()
        self.meter.finish()
        self.sink.close()
        if self.apps is not None:
            self.apps.close()
        if self.behind is not None:
            self.behind.set(self.slot, False)
        try:  # every connection is a final flow now
            self.store.replace_open_flows(self.stream_name, None, self.meter.now)
        except StoreError as err:
            log.error("interim records not cleared: %s", err.message)
        self.indexes.log_cost(self.stream_name)


def _meter_main(inbox, outbox, config, store, stream_name, sensor, inspect, behind, slot, shared, sent,
                capture_fd) -> None:
    if capture_fd is not None:
        try:
            os.close(capture_fd)  # only capture reads the ring
        except OSError:
            pass
    try:
        os.nice(NICE)
    except OSError:
        pass
    store.engine.dispose(close=False)  # the capture process's pooled connections stay its own
    m = _Meter(config, store, stream_name, sensor, inspect, behind, slot, shared, sent)
    try:
        for item in inbox:
            kind = item[0]
            if kind == "batch":
                m.batch(item[1], item[2], item[3])
            elif kind == "flush":
                m.flush(item[1])
            elif kind == "interim":
                m.interim()
            m.publish()
    finally:
        m.close()
    outbox.send("done", m.stats())
