"""Suricata's transforms of an inspected buffer (``dotprefix``, ``to_lowercase``, ``url_decode``,
``to_sha256``...), applied in the order a rule names them."""

from __future__ import annotations

import hashlib

WHITESPACE = b" \t\n\v\f\r"
HEX_DIGITS = b"0123456789abcdefABCDEF"


def _url_decode(data: bytes) -> bytes:
    """Suricata's ``url_decode`` transform: ``%HH`` decoded, ``+`` to space, bad escapes kept."""
    if b"%" not in data and b"+" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ch = data[i]
        if ch == 0x25 and i + 2 < n and data[i + 1] in HEX_DIGITS and data[i + 2] in HEX_DIGITS:
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(0x20 if ch == 0x2B else ch)
        i += 1
    return bytes(out)


def _compress_whitespace(data: bytes) -> bytes:
    """Each run of whitespace becomes its first character, as Suricata's transform does."""
    out = bytearray()
    prev_space = False
    for ch in data:
        space = ch in WHITESPACE
        if not (space and prev_space):
            out.append(ch)
        prev_space = space
    return bytes(out)


_STRIP_TABLE = bytes.maketrans(b"", b"")


def apply_transforms(data: bytes, transforms: tuple[str, ...]) -> bytes:
    """The buffer after Suricata's transforms, applied in the order given."""
    for t in transforms:
        if t == "dotprefix":
            data = b"." + data
        elif t == "to_lowercase":
            data = data.lower()
        elif t == "to_uppercase":
            data = data.upper()
        elif t == "strip_whitespace":
            data = data.translate(_STRIP_TABLE, WHITESPACE)
        elif t == "compress_whitespace":
            data = _compress_whitespace(data)
        elif t == "url_decode":
            data = _url_decode(data)
        elif t == "to_md5":
            data = hashlib.md5(data).digest()
        elif t == "to_sha1":
            data = hashlib.sha1(data).digest()
        elif t == "to_sha256":
            data = hashlib.sha256(data).digest()
    return data
