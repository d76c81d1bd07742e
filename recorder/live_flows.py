"""Closed connections for live detection before they end.

The flow meter ends a TCP connection Zeek's ``tcp_close_delay`` (5 s of packet time) after its
FINs or reset, so that late packets still count, and the recorder stores flows at each flush:
alone, a port scan or a brute force would reach the behaviour rules 5-10 s after its last packet.
With live detection on (``detect_interval`` set) the recorder therefore, at each flush,

- stores the connections already closed but waiting out that delay as interim records of their
  own (``open_flows`` rows of the stream ``"<sensor>/<interface> closed"``, replaced each time;
  ``FlowMeter.snapshot(closed_only=True)``), which the detection's window shows in ``flows``
  until the final row of the same uid is stored (``analysis.behaviour.detectors``);
- flushes every ``detect_interval`` (at most every ``FLOW_FLUSH_SECONDS``, at least every second),
  so protocol records (credentials...) and ended flows are stored sooner too.

The flows and records stored are the same as before: only their timing changes.
"""

from __future__ import annotations

from recorder.core.store.listing import CLOSED_STREAM_SUFFIX


def flush_seconds(config, default: float) -> float:
    """How often the capture loop flushes flows and records: sooner with live detection on."""
    if not config.detect_interval:
        return default
    return max(1.0, min(default, float(config.detect_interval)))


def store_closed(sink, stream: str, meter, config) -> None:
    """The closed connections waiting out the close delay, as ``stream``'s closed interim records
    (written by the flow writer's process, ``recorder.sinks.FlowSink.open_flows``)."""
    if config.detect_interval:
        sink.open_flows(stream + CLOSED_STREAM_SUFFIX, meter.snapshot(closed_only=True), meter.now)
