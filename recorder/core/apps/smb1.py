"""SMB1 (MS-CIFS/MS-SMB) messages for ``apps.smb``: the same records as SMB2/3.

Old worms and old devices still speak SMB1. ``SMB1`` reads, for the SMB parser that owns it:

- SESSION_SETUP_ANDX: the security blob (NTLM to ntlm.log, a Kerberos AP-REQ to kerberos.log)
  or, without extended security, the account and domain in clear; the account as an NTLM login
  in credentials, outcome from the response status;
- TREE_CONNECT_ANDX: the share (smb_mapping.log: path, service, native file system, type);
- NT_CREATE_ANDX: a file or named pipe opened (smb_files.log ``SMB::FILE_OPEN`` with size and
  times; a pipe gets a DCE-RPC session, ``apps.dcerpc``);
- READ_ANDX, WRITE_ANDX: file bytes at their offset (files.log at CLOSE) or pipe bytes;
- TRANSACTION TransactNmPipe: a DCE-RPC request and its response on a pipe;
- CLOSE.

AndX chains are followed. Anything else is skipped; a block that does not fit its message is
counted in ``malformed``.
"""

from __future__ import annotations

from typing import Any

from recorder.core.apps.dcerpc import RPCSession
from recorder.core.apps.littleendian import u16, u32, u64
from recorder.core.apps.ntlm import authenticate_user
from recorder.core.apps.smbfile import OpenFile, filetime

CLOSE, TRANSACTION, READ_ANDX, WRITE_ANDX = 0x04, 0x25, 0x2E, 0x2F
SESSION_SETUP_ANDX, TREE_CONNECT_ANDX, NT_CREATE_ANDX = 0x73, 0x75, 0xA2
ANDX = frozenset({READ_ANDX, WRITE_ANDX, SESSION_SETUP_ANDX, TREE_CONNECT_ANDX, NT_CREATE_ANDX})
HEADER = 32
FLAGS_REPLY = 0x80
FLAGS2_UNICODE = 0x8000
STATUS_MORE_PROCESSING = 0xC0000016
STATUS_BUFFER_OVERFLOW = 0x80000005
TRANSACT_NM_PIPE = 0x0026
SHARE_TYPES = {"A:": "DISK", "IPC": "PIPE", "LPT1:": "PRINT", "COMM": "COMM"}
PIPE_RESOURCES = (1, 2)  # NT_CREATE_ANDX ResourceType: byte-mode and message-mode named pipes
MAX_PENDING = 1024


def _string(m: bytes, off: int, unicode: bool) -> tuple[str, int]:
    """A NUL-terminated string at ``off`` of message ``m`` (Unicode ones 2-aligned from the
    header): (text, offset after it)."""
    if unicode:
        if off % 2:
            off += 1
        end = off
        while end + 1 < len(m) and m[end:end + 2] != b"\x00\x00":
            end += 2
        return m[off:end].decode("utf-16-le", "replace"), end + 2
    end = m.find(b"\x00", off)
    end = len(m) if end < 0 else end
    return m[off:end].decode("latin-1"), end + 1


class SMB1:
    """The SMB1 side of one SMB connection; state it shares with SMB2 lives in ``host``."""

    def __init__(self, host: Any) -> None:  # the apps.smb.SMB parser that owns it (no import: no cycle)
        self.host = host
        self.pending: dict[tuple[int, int], tuple] = {}  # (mid, command) -> what the request asked
        self.trees: dict[int, tuple[str, bool]] = {}  # tid -> (path, is IPC$)
        self.malformed = 0

    def message(self, m: bytes, ts: float) -> None:
        if len(m) < HEADER + 3:
            self.malformed += 1
            return
        cmd, status, reply = m[4], u32(m, 5), bool(m[9] & FLAGS_REPLY)
        unicode = bool(u16(m, 10) & FLAGS2_UNICODE)
        tid, mid = u16(m, 24), u16(m, 30)
        off = HEADER
        for _ in range(8):  # an AndX chain is short
            if off + 3 > len(m):
                self.malformed += 1
                return
            wc = m[off]
            words = m[off + 1:off + 1 + 2 * wc]
            bc_at = off + 1 + 2 * wc
            if bc_at + 2 > len(m) or len(words) < 2 * wc:
                self.malformed += 1
                return
            data_at = bc_at + 2
            if reply:
                self._reply(cmd, m, words, data_at, status, tid, mid, unicode, ts)
            else:
                self._request(cmd, m, words, data_at, tid, mid, unicode, ts)
            if cmd not in ANDX or wc < 2 or words[0] == 0xFF:
                return
            nxt = u16(words, 2)
            if nxt <= off or nxt >= len(m):
                return
            cmd, off = words[0], nxt

    # -- requests ----------------------------------------------------------------------------

    def _request(self, cmd: int, m: bytes, w: bytes, at: int, tid: int, mid: int, uni: bool, ts: float) -> None:
        host = self.host
        req: tuple | None = None
        if cmd == SESSION_SETUP_ANDX and len(w) >= 24:
            if len(w) == 24:  # extended security: a SPNEGO/NTLM/Kerberos blob
                blob = m[at:at + u16(w, 14)]
                host._security_blob(blob, ts)
                at_ntlm = blob.find(b"NTLMSSP\x00")
                req = (authenticate_user(blob[at_ntlm:]) if at_ntlm >= 0 else None, ts)
            elif len(w) >= 26:  # account and domain in clear (the passwords are not kept)
                pos = at + u16(w, 14) + u16(w, 16)
                account, pos = _string(m, pos, uni)
                domain, _ = _string(m, pos, uni)
                req = ((f"{domain}\\{account}" if domain else account) or None, ts)
        elif cmd == TREE_CONNECT_ANDX and len(w) >= 8:
            path, _ = _string(m, at + u16(w, 6), uni)
            req = (path, ts)
        elif cmd == NT_CREATE_ANDX and len(w) >= 48:
            name, _ = _string(m, at, uni)
            req = (name.lstrip("\\"), tid, ts, u32(w, 39))
        elif cmd == WRITE_ANDX and len(w) >= 24:
            f = host.files.get(b"1" + w[4:6])
            data = m[u16(w, 22):u16(w, 22) + u16(w, 20) + (u16(w, 18) << 16)]
            offset = u32(w, 6) + ((u32(w, 24) << 32) if len(w) >= 28 else 0)
            if f is not None and f.rpc is not None:
                f.rpc.feed(True, data, ts)
            elif f is not None and not f.pipe:
                host._add(f, True, offset, data, ts)
        elif cmd == READ_ANDX and len(w) >= 20:
            offset = u32(w, 6) + ((u32(w, 20) << 32) if len(w) >= 24 else 0)
            req = (b"1" + w[4:6], offset)
        elif cmd == TRANSACTION and len(w) >= 32 and w[26] >= 2:
            if u16(w, 28) == TRANSACT_NM_PIPE:
                fid = b"1" + w[30:32]
                f = host.pipe_file(fid)
                if f is not None and f.rpc is not None:
                    f.rpc.feed(True, m[u16(w, 24):u16(w, 24) + u16(w, 22)], ts)
                req = (fid,)
        elif cmd == CLOSE and len(w) >= 2:
            host._close(b"1" + w[0:2], ts)
        if req is not None and len(self.pending) < MAX_PENDING:
            self.pending[(mid, cmd)] = req

    # -- replies -----------------------------------------------------------------------------

    def _reply(self, cmd: int, m: bytes, w: bytes, at: int, status: int, tid: int, mid: int, uni: bool,
               ts: float) -> None:
        host = self.host
        if cmd == SESSION_SETUP_ANDX:
            req = self.pending.pop((mid, cmd), None)
            if len(w) >= 8:
                blob = m[at:at + u16(w, 6)]
                host.ntlm.message(blob, ts)
                host.ntlm.spnego(blob, ts)
            if status != STATUS_MORE_PROCESSING:
                host.ntlm.result(status == 0, ts)
                if req is not None and req[0]:
                    host.out.credential(host.conn, ts=req[1], protocol="NTLM", user=req[0], secret=None,
                                        success=status == 0,
                                        note=None if status == 0 else f"status 0x{status:08x}")
            return
        req = self.pending.pop((mid, cmd), None)
        if req is None or status not in (0, STATUS_BUFFER_OVERFLOW):
            return
        if cmd == TREE_CONNECT_ANDX and len(w) >= 6:
            path, when = req
            service, pos = _string(m, at, False)
            native, _ = _string(m, pos, uni)
            pipe = service == "IPC" or path.rstrip("\\").upper().endswith("\\IPC$")
            if len(self.trees) < 1024:
                self.trees[tid] = (path, pipe)
            host.out.log("smb_mapping", {"ts": when, "path": path, "service": service or None,
                                         "native_file_system": native or None,
                                         "share_type": SHARE_TYPES.get(service)}, host.conn)
        elif cmd == NT_CREATE_ANDX and len(w) >= 68:
            name, tree, when, _options = req
            path, pipe = self.trees.get(tree, (None, False))
            pipe = pipe or u16(w, 63) in PIPE_RESOURCES
            f = OpenFile(name=name or None, pipe=pipe, size=u64(w, 55), path=path)
            if pipe:
                f.rpc = RPCSession(host.conn, host.out, host.ntlm, pipe=name or None)
            if len(host.files) < 1024:
                host.files[b"1" + w[5:7]] = f
            if not pipe:
                f.times = {"times.modified": filetime(u64(w, 27)), "times.accessed": filetime(u64(w, 19)),
                           "times.created": filetime(u64(w, 11)), "times.changed": filetime(u64(w, 35))}
                host._file_log("SMB::FILE_OPEN", f, when)
        elif cmd == READ_ANDX and len(w) >= 14:
            fid, offset = req
            f = host.files.get(fid)
            data = m[u16(w, 12):u16(w, 12) + u16(w, 10)]
            if f is not None and f.rpc is not None:
                f.rpc.feed(False, data, ts)
            elif f is not None and not f.pipe and status == 0:
                host._add(f, False, offset, data, ts)
        elif cmd == TRANSACTION and len(w) >= 16:
            f = host.files.get(req[0])
            if f is not None and f.rpc is not None:
                f.rpc.feed(False, m[u16(w, 14):u16(w, 14) + u16(w, 12)], ts)
