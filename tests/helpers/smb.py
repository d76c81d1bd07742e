"""SMB2 messages as a client and server send them (NetBIOS framing, header, login with an NTLM
NEGOTIATE, CHALLENGE and AUTHENTICATE, tree connect, create, read, write, close), and feeding a script of them to the
SMB parser. Used by the SMB, Windows-protocol, mail, behaviour and story tests."""

from __future__ import annotations

from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.smb import SMB

SUCCESS, MORE, LOGON_FAILURE = 0, 0xC0000016, 0xC000006D


def header(cmd: int, mid: int, *, response: bool = False, status: int = 0, tree: int = 0, next_cmd: int = 0) -> bytes:
    return (b"\xfeSMB" + (64).to_bytes(2, "little") + b"\x00\x00" + status.to_bytes(4, "little")
            + cmd.to_bytes(2, "little") + b"\x01\x00" + (1 if response else 0).to_bytes(4, "little")
            + next_cmd.to_bytes(4, "little") + mid.to_bytes(8, "little") + b"\x00" * 4
            + tree.to_bytes(4, "little") + (0x1234).to_bytes(8, "little") + b"\x00" * 16)


def nb(*messages: bytes) -> bytes:
    """One NetBIOS session message holding ``messages`` (compounded when more than one)."""
    parts = []
    for i, m in enumerate(messages):
        if i < len(messages) - 1:
            m = m + b"\x00" * (-len(m) % 8)
            m = m[:20] + len(m).to_bytes(4, "little") + m[24:]
        parts.append(m)
    body = b"".join(parts)
    return len(body).to_bytes(4, "big") + body


def ntlm_authenticate(domain: str, user: str) -> bytes:
    d, u, w = domain.encode("utf-16-le"), user.encode("utf-16-le"), "WS".encode("utf-16-le")
    off = 72
    fields = b""
    payload = b""
    for blob in (b"", b"", d, u, w):  # LM, NT responses, domain, user, workstation
        fields += len(blob).to_bytes(2, "little") * 2 + (off + len(payload)).to_bytes(4, "little")
        payload += blob
    fields += b"\x00" * 8  # session key
    return b"NTLMSSP\x00" + (3).to_bytes(4, "little") + fields + (1).to_bytes(4, "little") + b"\x00" * 8 + payload


def ntlm_negotiate() -> bytes:
    """An NTLM NEGOTIATE message."""
    return b"NTLMSSP\x00\x01\x00\x00\x00" + (0xE2088297).to_bytes(4, "little") + b"\x00" * 16


def ntlm_challenge(nb_name: str, dns_name: str, tree: str) -> bytes:
    """An NTLM CHALLENGE naming the server (NetBIOS name, DNS name, DNS tree)."""
    info = b""
    for av, text in ((1, nb_name), (3, dns_name), (5, tree)):
        v = text.encode("utf-16-le")
        info += av.to_bytes(2, "little") + len(v).to_bytes(2, "little") + v
    info += b"\x00" * 4
    head = b"NTLMSSP\x00\x02\x00\x00\x00" + b"\x00" * 8 + (0xE2898215).to_bytes(4, "little") + b"\x11" * 8 \
        + b"\x00" * 8 + len(info).to_bytes(2, "little") * 2 + (56).to_bytes(4, "little") + b"\x00" * 8
    return head + info


def session_setup(mid: int, blob: bytes) -> bytes:
    body = (25).to_bytes(2, "little") + b"\x00\x01" + b"\x00" * 8 + (88).to_bytes(2, "little") \
        + len(blob).to_bytes(2, "little") + b"\x00" * 8
    return header(1, mid) + body + blob


def tree_connect(mid: int, path: str) -> bytes:
    p = path.encode("utf-16-le")
    return header(3, mid) + (9).to_bytes(2, "little") + b"\x00\x00" + (72).to_bytes(2, "little") \
        + len(p).to_bytes(2, "little") + p


def tree_connect_response(mid: int, tree: int, share_type: int) -> bytes:
    return header(3, mid, response=True, tree=tree) + (16).to_bytes(2, "little") + bytes([share_type, 0]) + b"\x00" * 12


def create(mid: int, tree: int, name: str, options: int = 0) -> bytes:
    n = name.encode("utf-16-le")
    body = (57).to_bytes(2, "little") + b"\x00" * 38 + options.to_bytes(4, "little") + (120).to_bytes(2, "little") + len(n).to_bytes(2, "little") \
        + b"\x00" * 8
    return header(5, mid, tree=tree) + body + n


def create_response(mid: int, fid: bytes, size: int = 0, filetime: int = 0) -> bytes:
    body = (89).to_bytes(2, "little") + b"\x00" * 6 + filetime.to_bytes(8, "little") * 4 + b"\x00" * 8 \
        + size.to_bytes(8, "little") + b"\x00" * 8 + fid + b"\x00" * 8
    return header(5, mid, response=True) + body


def set_info(mid: int, fid: bytes, info_class: int, buf: bytes) -> bytes:
    body = (33).to_bytes(2, "little") + bytes([1, info_class]) + len(buf).to_bytes(4, "little") \
        + (96).to_bytes(2, "little") + b"\x00" * 6 + fid
    return header(17, mid) + body + buf


def write_req(mid: int, fid: bytes, offset: int, data: bytes) -> bytes:
    body = (49).to_bytes(2, "little") + (112).to_bytes(2, "little") + len(data).to_bytes(4, "little") \
        + offset.to_bytes(8, "little") + fid + b"\x00" * 16
    return header(9, mid) + body + data


def read_req(mid: int, fid: bytes, offset: int, length: int) -> bytes:
    body = (49).to_bytes(2, "little") + b"\x00\x00" + length.to_bytes(4, "little") + offset.to_bytes(8, "little") \
        + fid + b"\x00" * 17
    return header(8, mid) + body


def read_resp(mid: int, data: bytes) -> bytes:
    body = (17).to_bytes(2, "little") + bytes([80, 0]) + len(data).to_bytes(4, "little") + b"\x00" * 8
    return header(8, mid, response=True) + body + data


def close(mid: int, fid: bytes) -> bytes:
    return header(6, mid) + (24).to_bytes(2, "little") + b"\x00" * 6 + fid


def ok(cmd: int, mid: int, status: int = SUCCESS) -> bytes:
    return header(cmd, mid, response=True, status=status) + (9).to_bytes(2, "little") + b"\x00" * 7


def login(mid: int, domain: str, user: str, status: int = SUCCESS) -> tuple[bytes, bytes]:
    """A login with an NTLM AUTHENTICATE for DOMAIN\\user in one round trip: (request, response)."""
    return nb(session_setup(mid, b"\x60\x48" + ntlm_authenticate(domain, user))), nb(ok(1, mid, status))


def read_files(user: str, files: dict[str, bytes], unc: str = "\\\\fs\\finance") -> list[tuple[bytes, bytes]]:
    """A session's exchanges: login as CORP\\user, map ``unc``, and each file opened, read whole
    and closed."""
    ex = [login(1, "CORP", user), (nb(tree_connect(2, unc)), nb(tree_connect_response(2, 5, 1)))]
    mid = 3
    for i, (name, data) in enumerate(files.items()):
        fid = (i + 1).to_bytes(16, "little")
        ex += [(nb(create(mid, 5, name)), nb(create_response(mid, fid, size=len(data)))),
               (nb(read_req(mid + 1, fid, 0, len(data))), nb(read_resp(mid + 1, data))),
               (nb(close(mid + 2, fid)), nb(ok(6, mid + 2)))]
        mid += 3
    return ex


def write_file(unc: str, name: str, data: bytes, *, ipc: str | None = None) -> list[tuple[bytes, bytes]]:
    """A session's exchanges writing one file to the share ``unc`` (no login seen: it was earlier);
    with ``ipc`` (an IPC$ path), then mapping it (where PsExec reaches the service control manager)."""
    fid = b"\x09" * 16
    return [(nb(tree_connect(1, unc)), nb(tree_connect_response(1, 5, 1))),
            (nb(create(2, 5, name)), nb(create_response(2, fid))),
            (nb(write_req(3, fid, 0, data)), nb(ok(9, 3))), (nb(close(4, fid)), nb(ok(6, 4)))] + (
        [(nb(tree_connect(5, ipc)), nb(tree_connect_response(5, 6, 2)))] if ipc else [])


def smb_conn() -> Conn:
    return Conn("10.0.0.5", 49700, "10.0.0.9", 445, "tcp", 1000.0, uid="Csmb")


def talk(script: list[tuple[bool, bytes]], *, segment: int = 1460) -> ListOutput:
    """Feed a script of (is_orig, bytes) to the SMB parser in ``segment``-sized pieces."""
    out = ListOutput()
    p = SMB(smb_conn(), out)
    for i, (side, payload) in enumerate(script):
        for j in range(0, len(payload), segment):
            p.data(side, payload[j:j + segment], 1000.0 + i)
    p.end(2000.0)
    return out
