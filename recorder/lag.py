"""Capture first: how far the recorder is behind the wire, and what gives way when it is.

Each batch libpcap hands over carries the kernel's timestamp of its packets. In the capture
process, ``now - the last packet's`` is how long that packet waited in the kernel ring
(``buffer_size``, 64 MiB: about 0.6 s of a top-speed replay on a veth pair); once the ring is
full the kernel drops packets that were never written, the one loss nothing makes good. That is
why capture only captures and writes, and the meter's process, at a lower CPU priority, does the
rest (``recorder.metering``): in a burst, the meter lags instead. Measured there, on the packets
it meters, the same lag says it has fallen behind, and while it is (``CaptureLag``, with
hysteresis):

- the protocol parsers and the live signatures are not fed (``sinks.LiveApps.shed``): the batches
  are counted as not parsed, and the batches still waiting for them are dropped, so their process
  goes idle at once; the packets are in the capture files, and the files the live engine did not
  fully inspect are matched again from the sealed file by the catch-up
  (``analysis.live.SealedSignatures``), so the day's alerts still equal a replay;
- no interim records are written (the open connections at a rotation, the closed ones waiting
  out the close delay for live detection): tens of thousands of rows at top speed; the first
  flush or rotation after it has caught up writes them;
- the catch-up itself waits (``recorder.detect.LiveDetection`` asks ``Behind.any``), so it does not
  compete for the CPU during the burst either.

Inspection resumes once a batch shows the meter has caught up: its lag under ``RESUME_LAG_NS``,
or the last batch waiting, from a read that emptied the ring (fewer packets than asked for).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

# Shed above this lag. A quiet link's packets wait up to libpcap's read timeout (100 ms: with
# TPACKET_V3 a block is handed over when full or when that timeout passes), so the threshold is
# well above it; and well under the time the default 64 MiB ring holds at top speed (about 0.6 s),
# so what the parsers free arrives before the ring overflows.
SHED_LAG_NS = 250_000_000
# Resume under this lag (or once a read empties the ring): capture is then about a block behind.
RESUME_LAG_NS = 50_000_000


class Behind:
    """One flag per capture stream, in shared memory made before the streams' processes are
    forked: set while that stream's meter sheds. The live detection thread defers the catch-up while any
    is set."""

    def __init__(self, streams: int) -> None:
        self.flags = multiprocessing.RawArray("b", max(1, streams))

    def set(self, stream: int, behind: bool) -> None:
        self.flags[stream] = 1 if behind else 0

    def any(self) -> bool:
        return any(self.flags)


@dataclass(slots=True)
class CaptureLag:
    """The hysteresis: ``update`` once per read; ``behind`` is the state after it. Also keeps the
    stats line's figures: the largest lag seen, the spells of shedding, the packets shed."""

    behind: bool = False
    lag_ns: int = 0  # the last batch's
    max_lag_ns: int = 0
    spells: int = 0  # times capture fell behind (shedding started)

    def update(self, last_ts_ns: int | None, now_ns: int, *, full: bool) -> bool:
        """A read: the kernel timestamp of its last packet (None: the read found none), and
        whether it was as big as asked (more may wait). Returns True when the state changed."""
        self.lag_ns = 0 if last_ts_ns is None else max(0, now_ns - last_ts_ns)
        self.max_lag_ns = max(self.max_lag_ns, self.lag_ns)
        if not self.behind:
            if self.lag_ns > SHED_LAG_NS:
                self.behind = True
                self.spells += 1
                return True
            return False
        if last_ts_ns is None or not full or self.lag_ns < RESUME_LAG_NS:
            self.behind = False
            return True
        return False
