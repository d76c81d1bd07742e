"""Damaged captures: corrupt record headers at random places in a real capture
(captures/demo.pcap); the reader resynchronises like pcapfix and yields every intact packet
after the damage, reporting the skipped byte ranges."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from recorder.core.capio.pcapio import read_batches
from recorder.core.capio.pcaprecords import RecordFormat, find_next
from recorder.core.errors import CaptureWarning, DamagedCaptureWarning

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def records(path, fast=True):
    """(file_off, ts, caplen, bytes) per packet, and the warnings."""
    warnings: list[CaptureWarning] = []
    out = []
    for b in read_batches(path, batch_size=64, on_warning=warnings.append, fast=fast):
        for i in range(len(b)):
            out.append((int(b.file_off[i]), int(b.ts[i]), int(b.caplen[i]), b.packet(i)))
    return out, warnings


@pytest.fixture(scope="module")
def intact():
    got, warnings = records(DEMO)
    assert warnings == [] and len(got) == 200
    return got


def damage(data: bytearray, rng: random.Random, recs, zeros: bool) -> tuple[int, int]:
    """Overwrite a few hundred bytes from inside a random record's header."""
    k = rng.randrange(len(recs))
    start = recs[k][0] + rng.randrange(16)
    end = min(len(data), start + rng.randint(1, 400))
    data[start:end] = bytes(end - start) if zeros else rng.randbytes(end - start)
    return start, end


def check(got, warnings, intact, hits, size):
    def overlaps(off, caplen):
        return any(off < d1 and d0 < off + 16 + caplen for d0, d1 in hits)

    original = {r[0]: r for r in intact}
    for r in intact:  # every packet whose record the damage did not touch is read, unchanged
        if not overlaps(r[0], r[2]):
            assert r in got, f"intact packet at offset {r[0]} lost (damage {hits})"
    for r in got:  # and nothing else, except what the damage touched
        assert original.get(r[0]) == r or overlaps(r[0], r[2]), f"bogus packet at {r[0]} (damage {hits})"
    assert len(warnings) <= 1
    starts = sorted(original) + [size]
    if warnings and not isinstance(warnings[0], DamagedCaptureWarning):
        # no plausible record after the damage: only when it is in the file's last records
        assert "stopped after" in str(warnings[0])
        assert warnings[0].offset >= max(s for s in starts if s <= hits[-1][0]), (str(warnings[0]), hits)
    elif warnings:
        [w] = warnings
        for a, b in w.skipped:  # each range starts in a damaged record and ends at the next real one
            assert a < b and b in starts
            assert any(max(s for s in starts if s <= d0) <= a <= min(s for s in starts if s >= d1)
                       for d0, d1 in hits), (a, b, hits)
            assert f"{a}-{b}" in str(w) or len(w.skipped) > 5


@pytest.mark.parametrize("seed", range(60))
def test_random_header_damage_keeps_every_intact_packet(tmp_path, intact, seed):
    rng = random.Random(seed)
    data = bytearray(DEMO.read_bytes())
    hits = sorted(damage(data, rng, intact[1:], zeros=seed % 3 == 0) for _ in range(1 + seed % 3))
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    got_fast, warn_fast = records(path, fast=True)
    got_py, warn_py = records(path, fast=False)
    assert got_fast == got_py and [str(w) for w in warn_fast] == [str(w) for w in warn_py]
    check(got_py, warn_py, intact, hits, len(data))


def test_resynchronised_ranges_are_reported_exactly(tmp_path, intact):
    data = bytearray(DEMO.read_bytes())
    a, b = intact[100][0], intact[103][0]  # three records' worth of garbage, from a header on
    data[a:b] = random.Random(1).randbytes(b - a)
    path = tmp_path / "d.pcap"
    path.write_bytes(data)
    got, [w] = records(path)
    assert got == intact[:100] + intact[103:]
    assert w.skipped == ((a, b),) and w.offset == a
    assert str(w) == (f"{path}, offset {a}: 1 damaged range ({b - a} bytes) skipped at offset {a}-{b}; "
                      f"resynchronised, read {len(intact) - 3} packets")


def test_zero_filled_block_after_power_loss(tmp_path, intact):
    data = bytearray(DEMO.read_bytes())
    a, b = intact[50][0], intact[60][0]
    data[a:b] = bytes(b - a)
    path = tmp_path / "z.pcap"
    path.write_bytes(data)
    got, [w] = records(path)
    assert got == intact[:50] + intact[60:] and w.skipped == ((a, b),)


def test_damage_in_the_first_record(tmp_path, intact):
    data = bytearray(DEMO.read_bytes())
    data[24:40] = b"\xff" * 16
    path = tmp_path / "first.pcap"
    path.write_bytes(data)
    got, [w] = records(path)
    assert got == intact[1:] and w.skipped == ((24, intact[1][0]),)


def test_damage_then_truncation_is_one_warning(tmp_path, intact):
    data = bytearray(DEMO.read_bytes())
    a, b = intact[10][0], intact[11][0]
    data[a:b] = b"\xee" * (b - a)
    cut = intact[-1][0] + 20
    path = tmp_path / "t.pcap"
    path.write_bytes(bytes(data[:cut]))
    got, [w] = records(path)
    assert got == intact[:10] + intact[11:-1]
    assert isinstance(w, DamagedCaptureWarning) and w.skipped == ((a, b),) and w.offset == intact[-1][0]
    assert "truncated record" in str(w) and f"skipped at offset {a}-{b}" in str(w)


def test_gzip_damaged_capture_resynchronises(tmp_path, intact):
    import gzip

    data = bytearray(DEMO.read_bytes())
    a, b = intact[150][0], intact[152][0]
    data[a:b] = b"\x00\xff" * ((b - a) // 2) + b"\x00" * ((b - a) % 2)
    path = tmp_path / "d.pcap.gz"
    path.write_bytes(gzip.compress(bytes(data)))
    got, [w] = records(path)
    assert got == intact[:150] + intact[152:] and w.skipped == ((a, b),)


def test_random_bytes_have_no_resynchronisation_point():
    data = random.Random(7).randbytes(1 << 20)
    assert find_next(data, 0, 0, len(data), RecordFormat(), None, at_eof=True) is None


def test_capture_without_damage_is_unchanged(tmp_path, intact):
    shutil.copy(DEMO, tmp_path / "ok.pcap")
    got, warnings = records(tmp_path / "ok.pcap", fast=False)
    assert got == intact and warnings == []


# ---------------------------------------------------------------- the recorder's crash repair


def test_repair_keeps_every_intact_record_and_cuts_the_tail(tmp_path, intact):
    from recorder.core.capio.pcapwrite import repair_pcap

    data = bytearray(DEMO.read_bytes())
    a, b = intact[40][0], intact[45][0]
    data[a:b] = bytes(b - a)  # a zero-filled block, as a power loss leaves one
    cut = intact[-1][0] + 30  # and the last record cut short, as a crash mid-write leaves it
    part = tmp_path / "s1-eth1-20240314T000000Z-000001.pcap.part"
    part.write_bytes(bytes(data[:cut]))
    scan = repair_pcap(part)
    assert scan.skipped == ((a, b),) and scan.size == cut
    assert scan.packets == len(intact) - 5 - 1
    assert part.stat().st_size == scan.good_size == cut - (b - a) - 30
    got, warnings = records(part)  # a valid capture now: nothing to warn about
    assert warnings == []
    assert [(ts, pkt) for _, ts, _, pkt in got] == [(ts, pkt) for _, ts, _, pkt in intact[:40] + intact[45:-1]]
    assert scan.first_ts_ns == intact[0][1] and scan.last_ts_ns == intact[-2][1]


# ---------------------------------------------------------------- pcapng: the same with block lengths


@pytest.fixture(scope="module")
def demo_pcapng(tmp_path_factory, intact):
    """captures/demo.pcap as pcapng (one Ethernet interface, microseconds); block offsets."""
    from tests.helpers.packets import epb, idb, shb

    blocks = [shb("<"), idb("<", 1)]
    offs = []
    pos = sum(len(b) for b in blocks)
    for _, ts, _, pkt in intact:
        blocks.append(epb("<", 0, ts // 1000, pkt))
        offs.append(pos)
        pos += len(blocks[-1])
    path = tmp_path_factory.mktemp("ng") / "demo.pcapng"
    path.write_bytes(b"".join(blocks))
    return path, offs


@pytest.mark.parametrize("seed", range(30))
def test_pcapng_random_block_damage_keeps_every_intact_packet(tmp_path, intact, demo_pcapng, seed):
    src, offs = demo_pcapng
    ng_intact = [(o, ts, cap, pkt) for o, (_, ts, cap, pkt) in zip(offs, intact)]
    rng = random.Random(seed)
    data = bytearray(src.read_bytes())
    hits = sorted(damage(data, rng, ng_intact[1:], zeros=seed % 3 == 0) for _ in range(1 + seed % 3))
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(data)
    got, warnings = records(path)
    # a pcapng block carries its length at both ends: the whole block is the record here
    sizes = {o: b - o for o, b in zip(offs, offs[1:] + [len(data)])}
    ng = [(o, ts, sizes[o] - 16, pkt) for o, ts, _, pkt in ng_intact]
    got = [(o, ts, sizes.get(o, cap + 32) - 16, pkt) for o, ts, cap, pkt in got]
    check(got, warnings, ng, hits, len(data))


def test_pcapng_damaged_block_is_reported(tmp_path, intact, demo_pcapng):
    src, offs = demo_pcapng
    data = bytearray(src.read_bytes())
    a, b = offs[70], offs[72]
    data[a:b] = bytes(b - a)
    path = tmp_path / "z.pcapng"
    path.write_bytes(data)
    got, [w] = records(path)
    assert [(ts, pkt) for _, ts, _, pkt in got] == [(ts, pkt) for _, ts, _, pkt in intact[:70] + intact[72:]]
    assert w.skipped == ((a, b),)
