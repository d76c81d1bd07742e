"""Builders for Windows-protocol test traffic: DCE-RPC PDUs, NTLM messages, SMB2 pipe calls, and
a PsExec-style session (SMB2 login with NTLM, svcctl over \\PIPE\\svcctl) as a capture built
with scapy."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.helpers.packets import tcp_session
from tests.helpers.smb import (
    create,
    create_response,
    header,
    nb,
    ntlm_authenticate,
    ntlm_challenge,
    ntlm_negotiate,
    ok,
    session_setup,
    tree_connect,
    tree_connect_response,
)

SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
NDR = "8a885d04-1ceb-11c9-9fe8-08002b104860"
OPEN_SCM, CREATE_SERVICE, START_SERVICE, QUERY_STATUS, CLOSE_HANDLE = 15, 12, 19, 6, 0


def pdu(ptype: int, call_id: int, body: bytes, *, flags: int = 3, auth: bytes = b"", auth_type: int = 10) -> bytes:
    verifier = bytes([auth_type, 2, 0, 0]) + b"\x00" * 4 + auth if auth else b""
    frag = 16 + len(body) + len(verifier)
    return (bytes([5, 0, ptype, flags]) + b"\x10\x00\x00\x00" + frag.to_bytes(2, "little")
            + len(auth).to_bytes(2, "little") + call_id.to_bytes(4, "little") + body + verifier)


def bind(call_id: int, iface: str, *, ctx: int = 0, auth: bytes = b"") -> bytes:
    body = (4280).to_bytes(2, "little") * 2 + b"\x00" * 4 + b"\x01\x00\x00\x00" + ctx.to_bytes(2, "little") \
        + b"\x01\x00" + uuid.UUID(iface).bytes_le + b"\x01\x00\x00\x00" + uuid.UUID(NDR).bytes_le + b"\x02\x00\x00\x00"
    return pdu(11, call_id, body, auth=auth)


def bind_ack(call_id: int, sec_addr: str, *, auth: bytes = b"") -> bytes:
    sec = sec_addr.encode() + b"\x00"
    body = (4280).to_bytes(2, "little") * 2 + b"\x01\x00\x00\x00" + len(sec).to_bytes(2, "little") + sec
    body += b"\x00" * (-(16 + len(body)) % 4) + b"\x01\x00\x00\x00" + b"\x00" * 24
    return pdu(12, call_id, body, auth=auth)


def request(call_id: int, opnum: int, stub: bytes = b"\x00" * 8, *, ctx: int = 0) -> bytes:
    return pdu(0, call_id, len(stub).to_bytes(4, "little") + ctx.to_bytes(2, "little") + opnum.to_bytes(2, "little")
               + stub)


def response(call_id: int, stub: bytes = b"\x00" * 8, *, ctx: int = 0) -> bytes:
    return pdu(2, call_id, len(stub).to_bytes(4, "little") + ctx.to_bytes(2, "little") + b"\x00\x00" + stub)


def fault(call_id: int, status: int = 5) -> bytes:
    return pdu(3, call_id, b"\x00" * 4 + b"\x00\x00\x00\x00" + status.to_bytes(4, "little") + b"\x00" * 4)


def spnego_result(state: int, token: bytes = b"") -> bytes:
    inner = b"\xa0\x03\x0a\x01" + bytes([state])
    if token:
        inner += b"\xa2" + _len(len(token) + 2 + len(_len(len(token)))) + b"\x04" + _len(len(token)) + token
    seq = b"\x30" + _len(len(inner)) + inner
    return b"\xa1" + _len(len(seq)) + seq


def _len(n: int) -> bytes:
    return bytes([n]) if n < 128 else b"\x82" + n.to_bytes(2, "big")


def ioctl(mid: int, fid: bytes, data: bytes) -> bytes:
    body = (57).to_bytes(2, "little") + b"\x00\x00" + (0x0011C017).to_bytes(4, "little") + fid \
        + (120).to_bytes(4, "little") + len(data).to_bytes(4, "little") + b"\x00" * 4 * 3 \
        + (4280).to_bytes(4, "little") + b"\x00" * 8
    return header(11, mid) + body + data


def ioctl_response(mid: int, fid: bytes, data: bytes) -> bytes:
    body = (49).to_bytes(2, "little") + b"\x00\x00" + (0x0011C017).to_bytes(4, "little") + fid \
        + (112).to_bytes(4, "little") + b"\x00" * 4 + (112).to_bytes(4, "little") + len(data).to_bytes(4, "little") \
        + b"\x00" * 8
    return header(11, mid, response=True) + body + data


def session_setup_response(mid: int, status: int, blob: bytes) -> bytes:
    body = (9).to_bytes(2, "little") + b"\x00\x00" + (72).to_bytes(2, "little") + len(blob).to_bytes(2, "little")
    return header(1, mid, response=True, status=status) + body + blob


PIPE = b"\x0a" * 16


def psexec_script(*, create_service: bool = True, user: str = "alice", iface: str = SVCCTL, pipe: str = "svcctl",
                  calls: tuple[int, ...] | None = None) -> list[tuple[bool, bytes]]:
    """SMB2: NTLM login, IPC$, open \\PIPE\\svcctl, bind svcctl, OpenSCManagerW, then
    CreateServiceW + StartServiceW (or, as a near miss, QueryServiceStatus only). ``iface``,
    ``pipe`` and ``calls`` (opnums after the first call) make other interfaces' sessions."""
    s = [(True, nb(session_setup(1, ntlm_negotiate()))),
         (False, nb(session_setup_response(1, 0xC0000016, spnego_result(1, ntlm_challenge("DC1", "dc1.corp.lan",
                                                                                            "corp.lan"))))),
         (True, nb(session_setup(2, ntlm_authenticate("CORP", user)))),
         (False, nb(session_setup_response(2, 0, spnego_result(0)))),
         (True, nb(tree_connect(3, "\\\\10.0.0.9\\IPC$"))), (False, nb(tree_connect_response(3, 1, 2))),
         (True, nb(create(4, 1, pipe))), (False, nb(create_response(4, PIPE))),
         (True, nb(ioctl(5, PIPE, bind(1, iface)))), (False, nb(ioctl_response(5, PIPE, bind_ack(1, f"\\PIPE\\{pipe}")))),
         (True, nb(ioctl(6, PIPE, request(2, OPEN_SCM)))), (False, nb(ioctl_response(6, PIPE, response(2))))]
    ops = [CREATE_SERVICE, START_SERVICE] if create_service else [QUERY_STATUS]
    for call_id, op in enumerate(ops if calls is None else calls, start=3):
        s += [(True, nb(ioctl(4 + call_id, PIPE, request(call_id, op, "PSEXESVC".encode("utf-16-le"))))),
              (False, nb(ioctl_response(4 + call_id, PIPE, response(call_id))))]
    s += [(True, nb(ioctl(9, PIPE, request(5, CLOSE_HANDLE)))), (False, nb(ioctl_response(9, PIPE, response(5)))),
          (True, nb(header(6, 10) + (24).to_bytes(2, "little") + b"\x00" * 6 + PIPE)), (False, nb(ok(6, 10)))]
    return s


def write_capture(path: Path, script: list[tuple[bool, bytes]], *, client: str = "10.0.0.5",
                  server: str = "10.0.0.9", t0: float = 1_700_000_000.0) -> Path:
    """The script as a TCP session on port 445 (handshake, data in segments of 1,400 bytes, FIN)."""
    return tcp_session(path, script, port=445, sport=49700, client=client, server=server, t0=t0, step=0.001,
                       segment=1400)
