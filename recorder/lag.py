"""Capture first: how far the recorder is behind, and what gives way when it is.

Each batch libpcap hands over carries the kernel's timestamp of its packets; ``now - the last
packet's`` (``CaptureLag``) is how long that packet waited. In the capture process, that is the
time it spent in the kernel ring (``buffer_size``, 64 MiB: about 0.6 s of a top-speed replay on a
veth pair); once the ring is full the kernel drops packets that were never written, the one loss
nothing makes good. That is why capture only captures and writes, and the meter's process, at a
lower CPU priority, does the rest (``recorder.metering``): in a burst the meter falls behind
instead, the written batches waiting for it in memory. Its lag is reported; what decides is its
backlog, the packet bytes waiting for it (``Backlog``, with hysteresis): past ``QUEUE_BYTES``
capture would have to wait. While the backlog is above ``SHED_BACKLOG_BYTES``:

- the protocol parsers and the live signatures are not fed (``sinks.LiveApps.shed``): the batches
  are counted as not parsed, and the batches still waiting for them are dropped, so their process
  goes idle at once and the meter gets the CPU back; the packets are in the capture files, and
  the files the live engine did not fully inspect are matched again from the sealed file by the
  catch-up (``analysis.live.SealedSignatures``), so the day's alerts still equal a replay;
- no interim records are written (the open connections at a rotation, the closed ones waiting
  out the close delay for live detection): tens of thousands of rows at top speed; the first
  flush or rotation after it has caught up writes them;
- the catch-up itself waits (``recorder.detect.LiveDetection`` asks ``Behind.any``), so it does not
  compete for the CPU either.

Inspection resumes once the backlog is under ``RESUME_BACKLOG_BYTES``.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

# Shed above this backlog (half the meter's queue, recorder.metering.QUEUE_BYTES: about 500k
# packets of the benchmark's traffic, four seconds of a top-speed burst), so that the queue never
# fills while the parsers hold the CPU; resume under this one.
SHED_BACKLOG_BYTES = 256 << 20
RESUME_BACKLOG_BYTES = 64 << 20


class Behind:
    """One flag per capture stream, in shared memory made before the streams' processes are
    forked: set while that stream's meter sheds. The live detection thread defers the catch-up
    while any is set."""

    def __init__(self, streams: int) -> None:
        self.flags = multiprocessing.RawArray("b", max(1, streams))

    def set(self, stream: int, behind: bool) -> None:
        self.flags[stream] = 1 if behind else 0

    def any(self) -> bool:
        return any(self.flags)


@dataclass(slots=True)
class CaptureLag:
    """How long the last packet waited before it was read (capture) or metered (the meter), for
    the stats line."""

    lag_ns: int = 0  # the last batch's
    max_lag_ns: int = 0

    def update(self, last_ts_ns: int | None, now_ns: int) -> None:
        """A batch: the kernel timestamp of its last packet (None: a read that found none)."""
        self.lag_ns = 0 if last_ts_ns is None else max(0, now_ns - last_ts_ns)
        self.max_lag_ns = max(self.max_lag_ns, self.lag_ns)


@dataclass(slots=True)
class Backlog:
    """The hysteresis: ``update`` with the bytes waiting for the meter after each batch it metered
    (and at each flush); ``behind`` is the state after it. ``spells``: times shedding started."""

    behind: bool = False
    spells: int = 0

    def update(self, waiting: int) -> bool:
        """Returns True when the state changed."""
        if not self.behind:
            if waiting > SHED_BACKLOG_BYTES:
                self.behind = True
                self.spells += 1
                return True
            return False
        if waiting <= RESUME_BACKLOG_BYTES:
            self.behind = False
            return True
        return False
