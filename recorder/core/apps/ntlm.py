"""NTLM (MS-NLMP) messages: the account an AUTHENTICATE message logs in as.

    authenticate_user(blob)  ->  "DOMAIN\\user", or None if ``blob`` is not a type 3 message

Shared by the protocols that carry NTLM: HTTP (``Authorization: NTLM|Negotiate``) and SMB
(SESSION_SETUP security blobs).
"""

from __future__ import annotations


def authenticate_user(blob: bytes) -> str | None:
    """DOMAIN\\user from an NTLM type 3 (AUTHENTICATE) message starting at ``blob[0]``."""
    if len(blob) < 52 or not blob.startswith(b"NTLMSSP\x00") or int.from_bytes(blob[8:12], "little") != 3:
        return None

    def field(off: int) -> bytes:
        length = int.from_bytes(blob[off:off + 2], "little")
        start = int.from_bytes(blob[off + 4:off + 8], "little")
        return blob[start:start + length] if start + length <= len(blob) else b""

    flags = int.from_bytes(blob[60:64], "little") if len(blob) >= 64 else 1
    enc = "utf-16-le" if flags & 1 else "latin-1"
    domain = field(28).decode(enc, "replace")
    user = field(36).decode(enc, "replace")
    if not user:
        return None
    return f"{domain}\\{user}" if domain else user
