"""Capture file I/O: pcap/pcapng/gzip reading, bad input, input expansion, probe and PcapWriter.

Fixtures are built here with struct, record by record, so each test shows what its file holds.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.batch import RawBatch
from recorder.core.capio.pcapio import CaptureInfo, PcapWriter, expand_inputs, probe, read_batches
from recorder.core.errors import CaptureError, CaptureWarning
from tests.helpers import REFERENCE, need
from tests.helpers.packets import block, epb, idb, shb

TCPDUMP = shutil.which("tcpdump") or ("/usr/bin/tcpdump" if os.path.exists("/usr/bin/tcpdump") else None)

# ---------------------------------------------------------------- builders


def pcap(packets: Iterable[tuple[int, bytes]], *, endian: str = "<", nano: bool = False,
         linktype: int = 1, snaplen: int = 65535) -> bytes:
    """A classic pcap: ``packets`` are (ts_ns, data); wirelen = len(data) + 4 so it differs from caplen."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data in packets:
        sec, ns = divmod(ts, 10**9)
        out.append(struct.pack(endian + "IIII", sec, ns if nano else ns // 1000, len(data), len(data) + 4))
        out.append(data)
    return b"".join(out)




def spb(e: str, data: bytes, wirelen: int | None = None) -> bytes:
    return block(e, 3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data)


def obsolete_pb(e: str, iface: int, ticks: int, data: bytes) -> bytes:
    return block(e, 2, struct.pack(e + "HH4I", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                   len(data), len(data)) + data)


def offsets(blocks: list[bytes]) -> list[int]:
    """Byte offset of each block in the concatenation."""
    return list(np.cumsum([0] + [len(b) for b in blocks[:-1]]))


def payload(i: int, n: int = 60) -> bytes:
    return bytes((i * 7 + k) & 0xFF for k in range(n))


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def read_all(path: str, **kw) -> tuple[list[RawBatch], list[CaptureWarning]]:
    warnings: list[CaptureWarning] = []
    return list(read_batches(path, on_warning=warnings.append, **kw)), warnings


def rows(batches: list[RawBatch]) -> list[tuple]:
    """One (index, file_off, ts, linktype, caplen, wirelen, bytes) tuple per packet."""
    out = []
    for b in batches:
        assert len(b.off) == len(b.caplen) == len(b.wirelen) == len(b.ts) == len(b.linktype) == len(b.index)
        for i in range(len(b)):
            out.append((int(b.index[i]), int(b.file_off[i]), int(b.ts[i]), int(b.linktype[i]),
                        int(b.caplen[i]), int(b.wirelen[i]), b.packet(i)))
    return out


def assert_same_batches(a: list[RawBatch], b: list[RawBatch]) -> None:
    assert [len(x) for x in a] == [len(x) for x in b]
    assert rows(a) == rows(b)


T0 = 1_700_000_000 * 10**9

# ---------------------------------------------------------------- classic pcap


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("fast", [True, False])
def test_pcap_magics_and_byte_orders(tmp_path, endian, nano, fast):
    stamps = [T0 + 123_456_789, T0 + 10**9 + 1_000, T0 + 2 * 10**9 + 999_999_999]
    pkts = [(ts, payload(i, 40 + i)) for i, ts in enumerate(stamps)]
    path = write(tmp_path / "x.pcap", pcap(pkts, endian=endian, nano=nano, linktype=101))

    batches, warnings = read_all(path, fast=fast)

    assert warnings == []
    expect_ts = stamps if nano else [ts // 1000 * 1000 for ts in stamps]
    offs = [24, 24 + 16 + 40, 24 + 2 * 16 + 40 + 41]
    assert rows(batches) == [(i, offs[i], expect_ts[i], 101, len(d), len(d) + 4, d)
                             for i, (_, d) in enumerate(pkts)]
    assert batches[0].source == path


def test_linktype_fcs_bits_are_masked(tmp_path):
    # LINKTYPE_ETHERNET with the F bit and an FCS length of 2 (16-bit words) in the upper bits
    path = write(tmp_path / "fcs.pcap", pcap([(T0, payload(0))], linktype=0x2400_0001))
    for fast in (True, False):
        batches, _ = read_all(path, fast=fast)
        assert batches[0].linktype.tolist() == [1]
    assert probe(path).linktypes == (1,)


def test_batches_have_the_requested_size_and_continuous_index(tmp_path):
    path = write(tmp_path / "x.pcap", pcap([(T0 + i * 1000, payload(i)) for i in range(10)]))
    for fast in (True, False):
        batches, _ = read_all(path, batch_size=3, fast=fast)
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert np.concatenate([b.index for b in batches]).tolist() == list(range(10))


def test_header_only_pcap_yields_nothing(tmp_path):
    path = write(tmp_path / "empty.pcap", pcap([]))
    for fast in (True, False):
        assert read_all(path, fast=fast) == ([], [])


def test_fast_path_equals_python_path(tmp_path, monkeypatch):
    rng = random.Random(7)
    pkts = [(T0 + i * 12_345_000, rng.randbytes(rng.randint(0, 1500))) for i in range(500)]
    path = write(tmp_path / "mix.pcap", pcap(pkts))
    pcapy = pytest.importorskip("pcapy")
    opened: list[str] = []
    real_open = pcapy.open_offline
    monkeypatch.setattr(pcapy, "open_offline", lambda p: opened.append(p) or real_open(p))
    for batch_size in (1, 7, 65536):
        fast, wf = read_all(path, batch_size=batch_size, fast=True)
        slow, ws = read_all(path, batch_size=batch_size, fast=False)
        assert wf == ws == []
        assert_same_batches(fast, slow)
    assert [r[6] for r in rows(fast)] == [d for _, d in pkts]
    assert opened == [path] * 3  # the fast path really went through libpcap


def test_caplen_above_snaplen_within_slack_is_read_by_both_paths(tmp_path):
    # libpcap silently cuts such a record to the snaplen; the fast path must notice and hand over
    pkts = [(T0, payload(0, 60)), (T0 + 1000, payload(1, 100)), (T0 + 2000, payload(2, 40))]
    path = write(tmp_path / "snap.pcap", pcap(pkts, snaplen=64))
    fast, wf = read_all(path, batch_size=2, fast=True)
    slow, ws = read_all(path, batch_size=2, fast=False)
    assert wf == ws == []
    assert_same_batches(fast, slow)
    assert [r[6] for r in rows(fast)] == [d for _, d in pkts]


# ---------------------------------------------------------------- truncated and corrupt captures


def _five_packets() -> tuple[bytes, list[int]]:
    data = pcap([(T0 + i * 1000, payload(i, 50 + i)) for i in range(5)])
    return data, [24 + sum(16 + 50 + k for k in range(i)) for i in range(5)]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("cut, kind", [(8, "truncated record header"), (16 + 20, "truncated record")])
def test_truncated_pcap_yields_complete_packets_then_one_warning(tmp_path, fast, cut, kind):
    data, offs = _five_packets()
    path = write(tmp_path / "cut.pcap", data[:offs[3] + cut])  # record 3 is cut short

    batches, warnings = read_all(path, batch_size=2, fast=fast)

    assert [r[6] for r in rows(batches)] == [payload(i, 50 + i) for i in range(3)]
    assert [len(b) for b in batches] == [2, 1]
    assert len(warnings) == 1
    w = warnings[0]
    assert w.offset == offs[3] and w.path == path
    assert str(w).startswith(f"{path}, offset {offs[3]}: {kind}")
    assert "stopped after 3 packets" in str(w)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("caplen", [0x0010_0000, 65535 + 257])  # absurd; above snaplen + slack
def test_corrupt_caplen_mid_file_stops_with_a_warning(tmp_path, fast, caplen):
    data, offs = _five_packets()
    data = bytearray(data)
    struct.pack_into("<I", data, offs[2] + 8, caplen)
    path = write(tmp_path / "bad.pcap", bytes(data))

    batches, warnings = read_all(path, fast=fast)

    assert len(rows(batches)) == 2
    assert [(w.offset, "corrupt record" in str(w)) for w in warnings] == [(offs[2], True)]


def test_warning_without_callback_is_logged(tmp_path, caplog):
    data, offs = _five_packets()
    path = write(tmp_path / "cut.pcap", data[:-1])
    assert sum(len(b) for b in read_batches(path)) == 4
    assert f"offset {offs[4]}: truncated record" in caplog.text


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"\xd4\xc3", "too short"),
    (b"<html><body>not a capture</body></html>", "not a pcap or pcapng file (magic 0x3c68746d)"),
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "truncated pcap file header"),
    (b"\xd4\xc3\xb2\xa1\x01\x00\x00\x00" + bytes(16), "unsupported pcap version 1.0"),
    (b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"\xde\xad\xbe\xef" + bytes(16), "bad byte-order magic"),
    (shb("<", major=2), "unsupported pcapng version 2"),
    (gzip.compress(b"hello, this is text"), "not a pcap or pcapng file"),
    (b"\x1f\x8b" + b"garbage that is not deflate", "unreadable gzip stream"),
])
def test_not_a_capture_raises_before_iteration(tmp_path, content, reason):
    path = write(tmp_path / "bad.pcap", content)
    with pytest.raises(CaptureError) as err:
        read_batches(path)  # raises on the call, before anything is iterated
    assert str(err.value).startswith(f"{path}: ")
    assert reason in str(err.value)
    with pytest.raises(CaptureError):
        probe(path)


def test_missing_file_and_directory_raise_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        read_batches(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match=re.escape(str(tmp_path))):
        read_batches(tmp_path)


# ---------------------------------------------------------------- pcapng


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_interfaces_with_different_linktypes_and_resolutions(tmp_path, e):
    blocks = [
        shb(e),
        idb(e, 1, 65535),  # Ethernet, default resolution 10^-6
        idb(e, 101, 0, tsresol=9),  # raw IP, nanoseconds
        idb(e, 113, 0, tsresol=0x80 | 10, tsoffset=100),  # Linux SLL, 2^-10 s, +100 s
        epb(e, 0, 1_700_000_000_123_456, payload(0)),
        block(e, 4, struct.pack(e + "HH", 0, 0)),  # Name Resolution Block: skipped
        epb(e, 1, 1_700_000_001_987_654_321, payload(1, 20), wirelen=1500),
        block(e, 5, struct.pack(e + "III", 1, 0, 0)),  # Interface Statistics Block: skipped
        block(e, 0x00000BAD, b"PEN!custom"),  # custom block: skipped
        epb(e, 2, 1025, payload(2, 33)),  # 1025 / 1024 s
        obsolete_pb(e, 0, 1_700_000_002_000_001, payload(3)),
    ]
    path = write(tmp_path / "multi.pcapng", b"".join(blocks))

    batches, warnings = read_all(path, batch_size=3)

    assert warnings == []
    off = offsets(blocks)
    assert rows(batches) == [
        (0, off[4], 1_700_000_000_123_456_000, 1, 60, 60, payload(0)),
        (1, off[6], 1_700_000_001_987_654_321, 101, 20, 1500, payload(1, 20)),
        (2, off[9], 100 * 10**9 + 1_000_976_562, 113, 33, 33, payload(2, 33)),
        (3, off[10], 1_700_000_002_000_001_000, 1, 60, 60, payload(3)),
    ]
    assert [len(b) for b in batches] == [3, 1]
    info = probe(path)
    assert (info.format, info.linktypes, info.ts_precision_ns) == ("pcapng", (1, 101, 113), 1)


def test_pcapng_simple_packet_blocks(tmp_path):
    e = "<"
    blocks = [
        shb(e),
        idb(e, 1, 16),  # snaplen 16
        epb(e, 0, 5_000_000, payload(0, 16), wirelen=90),
        spb(e, payload(1, 16), wirelen=90),  # stored up to the snaplen
        spb(e, payload(2, 10)),  # shorter than the snaplen: all of it (block is padded to 12)
    ]
    path = write(tmp_path / "spb.pcapng", b"".join(blocks))
    off = offsets(blocks)
    assert rows(read_all(path)[0]) == [
        (0, off[2], 5 * 10**9, 1, 16, 90, payload(0, 16)),
        (1, off[3], 5 * 10**9, 1, 16, 90, payload(1, 16)),  # no timestamp: the previous packet's
        (2, off[4], 5 * 10**9, 1, 10, 10, payload(2, 10)),
    ]


def test_pcapng_new_section_resets_interfaces_and_byte_order(tmp_path):
    blocks = [shb("<"), idb("<", 1), epb("<", 0, 1, payload(0)),
              shb(">"), idb(">", 105), epb(">", 0, 2, payload(1)),
              epb(">", 1, 3, payload(2))]  # interface 1 of the first section is gone
    path = write(tmp_path / "sections.pcapng", b"".join(blocks))

    batches, warnings = read_all(path)

    assert [(r[2], r[3], r[6]) for r in rows(batches)] == [(1000, 1, payload(0)), (2000, 105, payload(1))]
    assert len(warnings) == 1 and warnings[0].offset == offsets(blocks)[6]
    assert "interface 1" in str(warnings[0])


@pytest.mark.parametrize("damage", ["cut", "trailer"])
def test_pcapng_truncated_or_corrupt_block(tmp_path, damage):
    blocks = [shb("<"), idb("<", 1)] + [epb("<", 0, i, payload(i)) for i in range(4)]
    data = bytearray(b"".join(blocks))
    off = offsets(blocks)
    if damage == "cut":
        data = data[:off[4] + 30]
    else:
        struct.pack_into("<I", data, off[5] - 4, 9999)  # trailing length of block 4
    path = write(tmp_path / "bad.pcapng", bytes(data))

    batches, warnings = read_all(path, batch_size=1)

    assert [r[6] for r in rows(batches)] == [payload(0), payload(1)]
    assert [w.offset for w in warnings] == [off[4]]
    assert ("truncated block" if damage == "cut" else "trailing length") in str(warnings[0])


# ---------------------------------------------------------------- gzip


def test_gzip_is_detected_by_magic_whatever_the_name(tmp_path):
    raw = pcap([(T0 + i * 1000, payload(i)) for i in range(5)])
    plain = write(tmp_path / "plain.pcap", raw)
    packed = write(tmp_path / "capture.dat", gzip.compress(raw))
    assert_same_batches(read_all(packed)[0], read_all(plain)[0])  # file_off: decompressed offsets
    assert probe(packed).format == "pcap.gz"

    blocks = [shb(">"), idb(">", 1, 0, tsresol=9), epb(">", 0, 42, payload(9))]
    path = write(tmp_path / "x.pcapng.gz", gzip.compress(b"".join(blocks)))
    assert rows(read_all(path)[0]) == [(0, offsets(blocks)[2], 42, 1, 60, 60, payload(9))]
    assert probe(path) == CaptureInfo(path, "pcapng.gz", (1,), 1)


def test_truncated_gzip_yields_what_was_decompressed_then_warns(tmp_path):
    rng = random.Random(3)
    pkts = [(T0 + i * 1000, rng.randbytes(1000)) for i in range(200)]  # incompressible
    packed = gzip.compress(pcap(pkts))
    path = write(tmp_path / "cut.pcap.gz", packed[:len(packed) // 2])

    batches, warnings = read_all(path)

    got = [r[6] for r in rows(batches)]
    assert 0 < len(got) < 200 and got == [d for _, d in pkts[:len(got)]]
    assert len(warnings) == 1
    assert warnings[0].offset == 24 + len(got) * 1016


# ---------------------------------------------------------------- expand_inputs


def test_expand_inputs_orders_by_first_packet_and_removes_duplicates(tmp_path):
    d = tmp_path / "caps"
    d.mkdir()
    write(d / "a.pcap", pcap([(T0 + 300_000, payload(0)), (T0 - 10**9, payload(1))]))  # first, not min
    write(d / "b.pcapng", b"".join([shb("<"), idb("<", 1, 0, 9), epb("<", 0, T0 + 100, payload(2))]))
    write(d / "c.cap", gzip.compress(pcap([(T0 + 200_000, payload(3))], nano=True)))
    write(d / "d.pcap", pcap([(T0 + 200_000, payload(4))]))  # same first ts as c: by name
    write(d / "e.pcap", pcap([]))  # no packets: last
    write(d / ".hidden.pcap", pcap([(0, payload(5))]))
    write(d / "notes.txt", b"not a capture")
    (d / "sub").mkdir()
    write(d / "sub" / "z.pcap", pcap([(0, payload(6))]))
    names = ["b.pcapng", "c.cap", "d.pcap", "a.pcap", "e.pcap"]

    assert expand_inputs([str(d)]) == [str(d / n) for n in names]
    assert expand_inputs([str(d / "*")]) == [str(d / n) for n in names]
    assert expand_inputs([str(d / "[ad].pcap"), str(d / "a.pcap"), str(d / "." / "a.pcap")]) == \
        [str(d / "d.pcap"), str(d / "a.pcap")]


def test_expand_inputs_errors_name_the_path(tmp_path):
    missing = str(tmp_path / "missing.pcap")
    with pytest.raises(CaptureError, match=re.escape(missing)):
        expand_inputs([missing])
    with pytest.raises(CaptureError, match="no capture files match"):
        expand_inputs([str(tmp_path / "*.pcapng")])
    text = write(tmp_path / "notes.pcap", b"not a capture at all")
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        expand_inputs([text])


# ---------------------------------------------------------------- PcapWriter


@pytest.fixture(scope="module")
def roundtrip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("roundtrip")


packets_strategy = st.lists(
    # from 1 s: an all-zero record header (an empty packet at the epoch) reads as a zero-filled block
    st.tuples(st.integers(10**9, 0xFFFFFFFF * 10**9 + 999_999_999), st.binary(max_size=300),
              st.one_of(st.none(), st.integers(300, 0xFFFFFFFF))),
    max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pkts=packets_strategy, nano=st.booleans(), linktype=st.sampled_from([1, 101, 127]))
def test_pcap_writer_round_trip(roundtrip_dir, pkts, nano, linktype):
    path = str(roundtrip_dir / "rt.pcap")
    with PcapWriter(path, linktype=linktype, nanosecond=nano) as w:
        for ts, data, wirelen in pkts:
            w.write(ts, data, wirelen)
    expected = [(i, ts if nano else ts // 1000 * 1000, linktype, len(data),
                 len(data) if wirelen is None else wirelen, data)
                for i, (ts, data, wirelen) in enumerate(pkts)]
    for fast in (True, False):
        batches, warnings = read_all(path, batch_size=8, fast=fast)
        assert warnings == []
        assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows(batches)] == expected
    assert probe(path) == CaptureInfo(path, "pcap", (linktype,), 1 if nano else 1000)


def test_pcap_writer_file_object_snaplen_and_range(tmp_path):
    buf = io.BytesIO()
    with PcapWriter(buf, snaplen=8) as w:
        w.write(T0, payload(0, 20))
        with pytest.raises(ValueError, match="outside the pcap range"):
            w.write(-1, b"x")
    assert not buf.closed  # a caller's file object stays open
    path = write(tmp_path / "w.pcap", buf.getvalue())
    assert rows(read_all(path)[0]) == [(0, 24, T0, 1, 8, 20, payload(0, 8))]


# ---------------------------------------------------------------- real captures


def _tcpdump_count(path: Path) -> int:
    out = subprocess.run([TCPDUMP, "-r", str(path), "--count"], capture_output=True, text=True,
                         timeout=60, check=False)
    found = re.match(r"(\d+) packets?$", out.stdout.strip())
    assert out.returncode == 0 and found, f"tcpdump --count {path.name}: {out.stdout!r} {out.stderr!r}"
    return int(found.group(1))


@pytest.mark.reference
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
def test_reference_captures_match_tcpdump_counts():
    # tcpdump --count, not `tcpdump -r | wc -l`: tcpdump prints several lines for some packets
    zeek = need(REFERENCE / "zeek", "the Zeek reference captures")
    files = sorted(zeek.glob("*.pcap")) + sorted(zeek.glob("*.pcapng"))
    assert files
    for path in files:
        fast, wf = read_all(str(path), batch_size=16, fast=True)
        slow, ws = read_all(str(path), batch_size=16, fast=False)
        assert wf == ws == [], path.name
        assert_same_batches(fast, slow)
        assert sum(len(b) for b in slow) == _tcpdump_count(path), path.name
