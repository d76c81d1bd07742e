"""Suricata's byte keywords over an inspected buffer: ``byte_test``, ``byte_jump``, ``byte_extract``
(numbers read as raw bytes or as text with C ``strtoull``'s rules) and ``base64_decode``'s RFC 4648
decoder; ``analysis.rules.match`` runs them in a rule's inspection list."""

from __future__ import annotations

import binascii
import dataclasses
import re

from analysis.rules.model import ByteExtract, ByteJump, ByteTest
from analysis.rules.transforms import HEX_DIGITS, WHITESPACE

_B64_RUN = re.compile(rb"[A-Za-z0-9+/]*")


def base64_rfc4648(data: bytes) -> bytes:
    """Suricata's base64_decode (RFC 4648 mode): the alphabet up to the first other character
    (``=`` included), a last partial group giving the bytes it completes."""
    run = _B64_RUN.match(data).group()  # type: ignore[union-attr]
    if len(run) % 4 == 1:
        run = run[:-1]
    if not run:
        return b""
    return binascii.a2b_base64(run + b"=" * (-len(run) % 4))


# --- number extraction ---------------------------------------------------------------------------

_BASES = {"dec": 10, "hex": 16, "oct": 8}
_MAX64 = (1 << 64) - 1


def _strtoull(data: bytes, base: int) -> tuple[int, int]:
    """C ``strtoull`` over ``data``: (value, characters consumed); consumed 0 when no number, -1 on overflow."""
    i, n = 0, len(data)
    while i < n and data[i] in WHITESPACE:
        i += 1
    neg = False
    if i < n and data[i] in b"+-":
        neg = data[i] == 0x2D
        i += 1
    if base == 16 and data[i:i + 2] in (b"0x", b"0X") and i + 2 < n and data[i + 2] in HEX_DIGITS:
        i += 2
    start = i
    value = 0
    while i < n:
        ch = data[i]
        if 0x30 <= ch <= 0x39:
            d = ch - 0x30
        elif 0x61 <= ch <= 0x7A:
            d = ch - 0x61 + 10
        elif 0x41 <= ch <= 0x5A:
            d = ch - 0x41 + 10
        else:
            break
        if d >= base:
            break
        value = value * base + d
        i += 1
    if i == start:
        return 0, 0
    if value > _MAX64:
        return 0, -1
    if neg:
        value = (-value) & _MAX64
    return value, i


def _extract(buf: bytes, pos: int, nbytes: int, endian: str, string: str | None) -> tuple[int, int] | None:
    """(value, bytes consumed) at ``pos`` as byte_test/byte_jump read it, or None when Suricata fails."""
    if string is not None:
        # nbytes 0: strtoull reads as far as the digits go (Suricata passes the raw pointer)
        chunk = buf[pos:] if nbytes == 0 else buf[pos:pos + nbytes]
        value, used = _strtoull(chunk, _BASES.get(string, 10))
        if used <= 0:
            return None
        return value, used
    chunk = buf[pos:pos + nbytes]
    if len(chunk) != nbytes:
        return None
    return int.from_bytes(chunk, "big" if endian == "big" else "little"), nbytes


def _apply_bitmask(value: int, bitmask: int | None) -> int:
    if bitmask is None:
        return value
    value &= bitmask
    if value and bitmask:
        shift = (bitmask & -bitmask).bit_length() - 1  # trailing zero bits
        value >>= shift
    return value


def byte_test(t: ByteTest, buf: bytes, cursor: int, names: dict[str, int] | None = None) -> bool:
    size = len(buf)
    if size == 0:
        return False
    if isinstance(t.value, str) or isinstance(t.offset, str):  # byte_extract variables
        if names is None or t.value not in names and isinstance(t.value, str) \
                or t.offset not in names and isinstance(t.offset, str):
            return False
        t = dataclasses.replace(t, value=names[t.value] if isinstance(t.value, str) else t.value,
                                offset=names[t.offset] if isinstance(t.offset, str) else t.offset)
    assert isinstance(t.offset, int) and isinstance(t.value, int)
    if t.relative:
        pos = cursor + t.offset
        avail = size - pos
        if avail <= 0:
            return False
    else:
        pos = t.offset
        avail = size - pos
    if pos < 0 or t.nbytes > avail:
        return False
    got = _extract(buf, pos, t.nbytes, t.endian, t.string)
    if got is None:
        return False
    val = _apply_bitmask(got[0], t.bitmask)
    op, value = t.operator, t.value & _MAX64
    if op == "=":
        ok = val == value
    elif op == "<":
        ok = val < value
    elif op == ">":
        ok = val > value
    elif op == "<=":
        ok = val <= value
    elif op == ">=":
        ok = val >= value
    elif op == "&":
        ok = bool(val & value)
    else:  # "^"
        ok = bool(val ^ value)
    return ok != t.negated


def byte_extract(e: ByteExtract, buf: bytes, cursor: int) -> tuple[int, int] | None:
    """(value, cursor after the bytes read) as Suricata's byte_extract, or None."""
    pos = (cursor if e.relative else 0) + e.offset
    if pos < 0 or pos + e.nbytes > len(buf):
        return None
    got = _extract(buf, pos, e.nbytes, e.endian, e.string)
    if got is None:
        return None
    value = got[0] * e.multiplier
    if e.align:
        value = (value + e.align - 1) // e.align * e.align
    return value & _MAX64, pos + got[1]


def byte_jump(j: ByteJump, buf: bytes, cursor: int) -> int | None:
    """The new cursor after the jump, or None when byte_jump fails."""
    size = len(buf)
    if size == 0:
        return None
    pos = j.offset
    avail = size - j.offset
    if j.relative:
        pos += cursor
        avail -= cursor
        if j.nbytes and avail <= 0:
            return None
    if pos < 0 or j.nbytes > avail:
        return None
    got = _extract(buf, pos, j.nbytes, j.endian, j.string)
    if got is None:
        return None
    val, used = got
    val = _apply_bitmask(val, j.bitmask) * j.multiplier
    if j.align and val % 4:
        val += 4 - val % 4
    val += j.post_offset
    if j.from_beginning:
        target = val
    elif j.from_end:
        target = size + val
    else:
        target = pos + val + used
    if target < 0:
        return 0
    if target > size:
        return None
    return target
