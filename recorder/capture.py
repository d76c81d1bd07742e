"""Live capture through libpcap (pcapy-ng): one handle on one interface, read in batches.

``LiveCapture.batches`` yields RawBatches like ``pcapio.read_batches`` does for files, so the
decoder and the flow meter run unchanged on live traffic. libpcap's ``next_batch`` returns up
to N packets in one call (or none when the read timeout passes), with microsecond timestamps
and the captured length; the wire length is not in its metadata, so ``wirelen`` is the captured
length (the default snaplen of 262144 keeps whole packets, so they are equal).

With ``fanout_group`` set, the handle joins a PACKET_FANOUT hash group: the kernel spreads one
interface's packets over every handle in the group, each flow to one handle.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from recorder.core.batch import RawBatch
from recorder.core.errors import CaptureError


@dataclass(frozen=True, slots=True)
class CaptureStats:
    received: int  # packets the kernel handed to this handle (libpcap ps_recv)
    dropped: int  # dropped by the kernel: the ring was full (ps_drop)
    if_dropped: int  # dropped by the interface or driver (ps_ifdrop)


class LiveCapture:
    def __init__(self, interface: str, *, snaplen: int = 262144, promisc: bool = True, bpf: str = "",
                 buffer_size: int = 64 << 20, timeout_ms: int = 100, fanout_group: int | None = None) -> None:
        import pcapy  # the live side only; recorder.core never imports libpcap handles

        self.interface = interface
        self.snaplen = snaplen
        try:
            p = pcapy.create(interface)
            p.set_snaplen(snaplen)
            p.set_promisc(1 if promisc else 0)
            p.set_timeout(timeout_ms)
            p.set_buffer_size(buffer_size)
            status = p.activate()
            if isinstance(status, int) and status < 0:
                raise CaptureError("cannot capture: "
                                   f"{_ACTIVATE_ERRORS.get(status, f'libpcap error {status}')}", path=interface)
            # Non-blocking, waited on with select: on Linux (TPACKET_V3) libpcap's read timeout
            # only runs once a packet has arrived, so a blocking read on a quiet link would never
            # return and SIGTERM would wait for the next packet.
            p.setnonblock(1)
            fd = p.getfd()
        except pcapy.PcapError as err:
            raise CaptureError(f"cannot capture: {_pcap_text(err)}", path=interface) from None
        if bpf:
            try:
                p.setfilter(bpf)
            except pcapy.PcapError as err:
                p.close()
                raise CaptureError(f"bad BPF filter {bpf!r}: {_pcap_text(err)}", path=interface) from None
        if fanout_group is not None:
            try:
                p.set_fanout(fanout_group, pcapy.PACKET_FANOUT_HASH)
            except Exception as err:  # noqa: BLE001 - pcapy raises several types here
                p.close()
                raise CaptureError(f"cannot join fanout group {fanout_group}: {err}", path=interface) from None
        self._fd = fd
        self._timeout = timeout_ms / 1000.0
        self._p = p
        self.linktype = int(p.datalink())
        self._index = 0

    def read(self, max_packets: int = 4096) -> RawBatch | None:
        """The next batch of packets, or None if the read timeout passed with none."""
        import pcapy

        try:
            data, meta = self._p.next_batch(max_packets)
            if not meta:
                select.select([self._fd], [], [], self._timeout)
                data, meta = self._p.next_batch(max_packets)
        except pcapy.PcapError as err:
            raise CaptureError(f"capture failed: {_pcap_text(err)}", path=self.interface) from None
        if not meta:
            return None
        m = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4).astype(np.int64)
        n = len(m)
        caplen = m[:, 3].copy()
        batch = RawBatch(
            source=self.interface, data=bytes(data), off=m[:, 2].copy(), caplen=caplen, wirelen=caplen.copy(),
            ts=m[:, 0] * 1_000_000_000 + m[:, 1] * 1000, linktype=np.full(n, self.linktype, dtype=np.int64),
            file_off=np.full(n, -1, dtype=np.int64), index=np.arange(self._index, self._index + n, dtype=np.int64),
        )
        self._index += n
        return batch

    def batches(self, max_packets: int = 4096) -> Iterator[RawBatch | None]:
        while True:
            yield self.read(max_packets)

    def fileno(self) -> int:
        """The handle's descriptor (a process forked from this one closes it: only capture reads the ring)."""
        return self._fd

    def stats(self) -> CaptureStats:
        recv, drop, ifdrop = self._p.stats()
        return CaptureStats(int(recv), int(drop), int(ifdrop))

    def close(self) -> None:
        if self._p is not None:
            self._p.close()
            self._p = None


_ACTIVATE_ERRORS = {
    -5: "no such interface",
    -8: "permission denied (needs CAP_NET_RAW and CAP_NET_ADMIN, or root)",
    -9: "the interface is not up",
    -11: "no permission to enable promiscuous mode",
    -6: "monitor mode not supported",
    -1: "libpcap could not open it",
}


def _pcap_text(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
