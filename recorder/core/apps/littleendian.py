"""Little-endian unsigned integers at an offset of a message, as the Windows protocols (SMB2,
SMB1, NTLM, RDP) write them; a field cut short by the message's end reads as the bytes there are."""

from __future__ import annotations


def u16(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 2], "little")


def u32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 4], "little")


def u64(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 8], "little")
