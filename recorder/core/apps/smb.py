"""SMB2/3 over TCP (445, or 139 after a NetBIOS session request): files and NTLM logins.

What an investigator needs from SMB is what moved and who moved it: files read from and written
to shares (files.log, source ``SMB``, as Zeek logs them) and the account of each session
(credentials, protocol ``NTLM``, user ``DOMAIN\\user``, outcome from the SESSION_SETUP status).

The stream is NetBIOS session messages (a 4-byte length) holding SMB2 messages, compounded by
``NextCommand``. The parser follows, per connection:

- TREE_CONNECT: the share mapped and its type, in smb_mapping.log (named pipes on IPC$ carry
  RPC, not files);
- CREATE: the name a file id was opened with (the path in the share, as Zeek's filename); an open
  on a disk share is an ``SMB::FILE_OPEN`` record in smb_files.log with the size and times the
  server gave (``<share_root>`` for the share itself), as Zeek logs it by default;
- SET_INFO: a file marked for deletion (or opened delete-on-close) is ``SMB::FILE_DELETE``, a
  rename ``SMB::FILE_RENAME`` (name the new one, prev_name the old);
- WRITE requests and READ responses (matched to their request by message id): the bytes at their
  offset in the file; each file is assembled from its pieces (within ``MAX_FILE`` per file and
  ``MAX_HELD`` per connection; what is not held counts as missing);
- CLOSE (or the end of the connection): the file is handed to ``out.file`` once per direction,
  is_orig true for what the client wrote. Holes (offsets never written or read) are counted as
  missing bytes, not filled, and a file with holes is not hashed (Zeek's hash analyzers stop at
  a gap).

A message longer than ``MAX_BUFFER`` is not held: a large WRITE or READ response is streamed
into its file, anything else skipped. SMB1 messages are read by ``apps.smb1`` into the same
records; encrypted (transform) messages are skipped: what they carry is not readable here.

Named pipes carry DCE-RPC (``apps.dcerpc``: dce_rpc.log): pipe WRITEs, READs and IOCTL
FSCTL_PIPE_TRANSCEIVE feed one RPC session per pipe. SESSION_SETUP security blobs also go to
ntlm.log (``apps.ntlm``) and, for Kerberos, to kerberos.log as an AP request.
"""

from __future__ import annotations

from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.dcerpc import DCE_RPC_LOG, RPCSession
from recorder.core.apps.kerberos import Kerberos, ap_request
from recorder.core.apps.littleendian import u16, u32, u64
from recorder.core.apps.ntlm import NTLM_LOG, NTLMLogins, authenticate_user
from recorder.core.apps.smb1 import SMB1
from recorder.core.apps.smbfile import OpenFile, filetime

MAX_HELD = 256 << 20  # bytes of file pieces one connection holds at once
MAX_PENDING = 1024  # requests awaiting a response per connection
MAX_DEFERRED = 16  # compounded WRITEs (at most MAX_BUFFER each) held until their CREATE's response
MAX_FILES = 1024  # files open at once per connection (and trees, and recent smb_files records)
RECENT = 180.0  # seconds an smb_files.log record is not repeated (our choice for Zeek's recent_files)

SMB2 = b"\xfeSMB"
HEADER = 64
SESSION_SETUP, TREE_CONNECT, CREATE, CLOSE, READ, WRITE, IOCTL, SET_INFO = 1, 3, 5, 6, 8, 9, 11, 17
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
STATUS_BUFFER_OVERFLOW = 0x80000005  # a pipe read or transceive with more to come
FLAG_RESPONSE, FLAG_ASYNC = 0x1, 0x2
STATUS_PENDING = 0x00000103
STATUS_MORE_PROCESSING = 0xC0000016
SHARE_PIPE = 0x02
SHARE_TYPES = {0x01: "DISK", 0x02: "PIPE", 0x03: "PRINT"}
DELETE_ON_CLOSE = 0x00001000  # CreateOptions
INFO_FILE = 1
RENAME_INFO, DISPOSITION_INFO, DISPOSITION_INFO_EX = 10, 13, 64  # FileInformationClass
ANY_FILE = b"\xff" * 16  # a compounded request's "the file the previous CREATE opened": such a
# request (WRITE, SET_INFO, CLOSE) is applied with its response, after the CREATE's has named the file


class SMB(Parser):
    service = "smb"
    ports = frozenset({445, 139})
    logs: ClassVar[dict[str, LogFields]] = {
        "smb_files": CONN_ID + (
            ("fuid", "string"), ("action", "enum"), ("path", "string"), ("name", "string"), ("size", "count"),
            ("prev_name", "string"), ("times.modified", "time"), ("times.accessed", "time"),
            ("times.created", "time"), ("times.changed", "time")),
        "smb_mapping": CONN_ID + (
            ("path", "string"), ("service", "string"), ("native_file_system", "string"), ("share_type", "string")),
        "dce_rpc": DCE_RPC_LOG,  # DCE-RPC over named pipes (apps.dcerpc)
        "ntlm": NTLM_LOG,
        "kerberos": Kerberos.logs["kerberos"],  # Kerberos AP-REQ in SESSION_SETUP
    }

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: bytearray(), False: bytearray()}
        # bytes of an over-long message still to pass: [count, file or None, file offset] in order
        self.passing: dict[bool, list[list]] = {True: [], False: []}
        self.lost = {True: False, False: False}  # framing lost (a gap): look for a message header
        self.pending: dict[int, tuple] = {}  # message id -> what the request asked
        self.trees: dict[int, tuple[str, bool]] = {}  # tree id -> (UNC path, is a named pipe share)
        self.files: dict[bytes, OpenFile] = {}
        self.last_created: bytes | None = None  # for compounded requests naming ANY_FILE
        self.recent: dict[tuple, float] = {}  # smb_files.log records written -> when
        self.held = 0  # bytes of file pieces held by this connection
        self.ntlm = NTLMLogins(conn, out, credentials=False)  # credentials: from SESSION_SETUP below
        self.kerberos_logged = False  # one AP record per connection, as Zeek
        self.smb1 = SMB1(self)

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if len(data) >= 8 and data[0] == 0 and data[4:8] in (SMB2, b"\xffSMB", b"\xfdSMB"):
            return True
        return is_orig and len(data) >= 4 and data[0] == 0x81 and conn.resp_p == 139  # NetBIOS session request

    # -- framing -----------------------------------------------------------------------------

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig]
        buf += data
        passing = self.passing[is_orig]
        pos = 0
        while pos < len(buf):
            if passing:
                item = passing[0]
                n = min(item[0], len(buf) - pos)
                if item[1] is not None:
                    self._add(item[1], is_orig, item[2], bytes(buf[pos:pos + n]), ts)
                    item[2] += n
                item[0] -= n
                pos += n
                if not item[0]:
                    passing.pop(0)
                continue
            if self.lost[is_orig]:
                at = buf.find(SMB2, pos + 4)
                while at >= 0 and buf[at - 4] != 0:
                    at = buf.find(SMB2, at + 1)
                if at < 0:
                    pos = max(pos, len(buf) - 7)
                    break
                pos, self.lost[is_orig] = at - 4, False
            if len(buf) - pos < 4:
                break
            length = int.from_bytes(buf[pos + 1:pos + 4], "big")
            if buf[pos] != 0:  # NetBIOS session request, response, keep-alive: no SMB inside
                passing.append([4 + length, None, 0])
                continue
            if length <= MAX_BUFFER:
                if len(buf) - pos < 4 + length:
                    break
                self._messages(bytes(buf[pos + 4:pos + 4 + length]), ts)
                pos += 4 + length
                continue
            head = bytes(buf[pos + 4:pos + 4 + HEADER + 48])  # an over-long message: stream or skip it
            if len(head) < HEADER + 48:
                break
            into = self._large(head)
            if into is None:
                passing.append([4 + length, None, 0])
                continue
            f, offset, data_off, data_len = into
            data_off = min(max(data_off, HEADER), length)
            data_len = min(data_len, length - data_off)
            passing.extend(([4 + data_off, None, 0], [data_len, f, offset],
                            [length - data_off - data_len, None, 0]))
            passing[:] = [item for item in passing if item[0] > 0]
        del buf[:pos]
        if len(buf) > MAX_BUFFER + 4:  # cannot be one message: framing is lost
            buf.clear()
            self.lost[is_orig] = True

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Framing is lost in this direction until a message header is found again."""
        self.buf[is_orig].clear()
        self.passing[is_orig].clear()
        self.lost[is_orig] = True

    def end(self, ts: float) -> None:
        for fid in list(self.files):
            self._close(fid, ts)
        self.ntlm.end(ts)
        for req in self.pending.values():  # a login whose answer was never seen: outcome unknown
            if req[0] == SESSION_SETUP and req[1]:
                self.out.credential(self.conn, ts=req[2], protocol="NTLM", user=req[1], secret=None, success=None)
        self.pending.clear()

    # -- messages ----------------------------------------------------------------------------

    def _messages(self, msg: bytes, ts: float) -> None:
        """One NetBIOS message: SMB2 messages chained by NextCommand, or one SMB1 message."""
        if msg[:4] == b"\xffSMB":
            self.smb1.message(msg, ts)
            return
        off = 0
        while off + HEADER <= len(msg) and msg[off:off + 4] == SMB2:
            nxt = u32(msg, off + 20)
            end = off + nxt if nxt and off + nxt <= len(msg) else len(msg)
            self._message(msg[off:end], ts)
            if not nxt or end <= off:
                break
            off = end

    def _message(self, m: bytes, ts: float) -> None:
        cmd = u16(m, 12)
        flags = u32(m, 16)
        mid = u64(m, 24)
        if flags & FLAG_RESPONSE:
            status = u32(m, 8)
            if status == STATUS_PENDING and flags & FLAG_ASYNC:
                return  # an interim response: the final one follows with the same message id
            req = self.pending.pop(mid, None)
            if req is not None and req[0] == cmd:
                self._response(cmd, m, status, req, ts)
            return
        tree = 0 if flags & FLAG_ASYNC else u32(m, 36)
        req = self._request(cmd, m, tree, ts)
        if req is not None and len(self.pending) < MAX_PENDING:
            self.pending[mid] = (cmd, *req)

    def _request(self, cmd: int, m: bytes, tree: int, ts: float) -> tuple | None:
        body = m[HEADER:]
        if cmd == SESSION_SETUP and len(body) >= 16:
            blob = m[u16(body, 12):u16(body, 12) + u16(body, 14)]
            self._security_blob(blob, ts)
            at = blob.find(b"NTLMSSP\x00")
            user = authenticate_user(blob[at:]) if at >= 0 else None
            return (user, ts)
        if cmd == TREE_CONNECT and len(body) >= 8:
            path = m[u16(body, 4):u16(body, 4) + u16(body, 6)].decode("utf-16-le", "replace")
            return (path, ts)
        if cmd == CREATE and len(body) >= 48:
            name = m[u16(body, 44):u16(body, 44) + u16(body, 46)].decode("utf-16-le", "replace")
            return (name, tree, ts, u32(body, 40))
        if cmd == SET_INFO and len(body) >= 32 and body[2] == INFO_FILE:
            args = (body[3], body[16:32], m[u16(body, 8):u16(body, 8) + u32(body, 4)], ts)
            if body[16:32] == ANY_FILE:
                return args  # in a compound after its CREATE: the file is known with the responses
            self._set_info(*args)
            return None
        if cmd == CLOSE and len(body) >= 24:
            if body[8:24] == ANY_FILE:
                return (ANY_FILE,)
            self._close(body[8:24], ts)
            return None
        if cmd == WRITE and len(body) >= 32:
            data_off, length = u16(body, 2), u32(body, 4)
            data = m[data_off:data_off + length]
            if body[16:32] == ANY_FILE:
                if sum(1 for p in self.pending.values() if p[0] == WRITE) >= MAX_DEFERRED:
                    return None
                return (ANY_FILE, u64(body, 8), data)
            f = self.files.get(body[16:32])
            if f is not None and f.rpc is not None:
                f.rpc.feed(True, data, ts)
            elif f is not None and not f.pipe:
                self._add(f, True, u64(body, 8), data, ts)
            return None
        if cmd == IOCTL and len(body) >= 32 and u32(body, 4) == FSCTL_PIPE_TRANSCEIVE:
            f = self.pipe_file(self._fid(body[8:24]))
            if f is not None and f.rpc is not None:
                f.rpc.feed(True, m[u32(body, 24):u32(body, 24) + u32(body, 28)], ts)
            return (body[8:24],)
        if cmd == READ and len(body) >= 32:
            return (body[16:32], u64(body, 8))  # the file id is resolved with the response (compounds)
        return None

    def _response(self, cmd: int, m: bytes, status: int, req: tuple, ts: float) -> None:
        body = m[HEADER:]
        if cmd == SESSION_SETUP:
            _, user, when = req
            if len(body) >= 8:
                blob = m[u16(body, 4):u16(body, 4) + u16(body, 6)]
                self.ntlm.message(blob, ts)
                self.ntlm.spnego(blob, ts)
            if status != STATUS_MORE_PROCESSING:
                self.ntlm.result(status == 0, ts)
            if user and status != STATUS_MORE_PROCESSING:
                self.out.credential(self.conn, ts=when, protocol="NTLM", user=user, secret=None,
                                    success=status == 0, note=None if status == 0 else f"status 0x{status:08x}")
        elif cmd == TREE_CONNECT and status == 0 and len(body) >= 3:
            _, path, when = req
            pipe = body[2] == SHARE_PIPE or path.rstrip("\\").upper().endswith("\\IPC$")
            if len(self.trees) < MAX_FILES:
                self.trees[u32(m, 36)] = (path, pipe)
            self.out.log("smb_mapping", {"ts": when, "path": path, "service": None, "native_file_system": None,
                                         "share_type": SHARE_TYPES.get(body[2])}, self.conn)
        elif cmd == CREATE and status == 0 and len(body) >= 80:
            _, name, tree, when, options = req
            path, pipe = self.trees.get(tree, (None, False))
            f = OpenFile(name=name or None, pipe=pipe, size=u64(body, 48), path=path)
            if pipe:
                f.rpc = RPCSession(self.conn, self.out, self.ntlm, pipe=name or None)
            self.last_created = None
            if len(self.files) < MAX_FILES:
                self.files[body[64:80]] = f
                self.last_created = body[64:80]
            if not pipe:
                times = {"times.modified": filetime(u64(body, 24)), "times.accessed": filetime(u64(body, 16)),
                         "times.created": filetime(u64(body, 8)), "times.changed": filetime(u64(body, 32))}
                f.times = times
                self._file_log("SMB::FILE_OPEN", f, when)
                if options & DELETE_ON_CLOSE:
                    self._file_log("SMB::FILE_DELETE", f, when)
        elif cmd == READ and status in (0, STATUS_BUFFER_OVERFLOW) and len(body) >= 8:
            _, fid, offset = req
            f = self._file(fid)
            data_off, length = body[2], u32(body, 4)
            if f is not None and f.rpc is not None:
                f.rpc.feed(False, m[data_off:data_off + length], ts)
            elif f is not None and not f.pipe and status == 0:
                self._add(f, False, offset, m[data_off:data_off + length], ts)
        elif cmd == IOCTL and status in (0, STATUS_BUFFER_OVERFLOW) and len(body) >= 40:
            f = self._file(req[1])
            if f is not None and f.rpc is not None:
                f.rpc.feed(False, m[u32(body, 32):u32(body, 32) + u32(body, 36)], ts)
        elif cmd == WRITE:
            _, fid, offset, data = req
            f = self._file(fid)
            if f is not None and f.rpc is not None:
                f.rpc.feed(True, data, ts)
            elif status == 0 and f is not None and not f.pipe:
                self._add(f, True, offset, data, ts)
        elif cmd == SET_INFO and status == 0:
            self._set_info(*req[1:])
        elif cmd == CLOSE:
            self._close(self._fid(req[1]), ts)

    def _large(self, head: bytes) -> tuple[OpenFile, int, int, int] | None:
        """A message too long to hold, from its first bytes: (file, file offset, data offset, data
        length) to stream a WRITE request's or READ response's data into; None to skip it."""
        if head[:4] != SMB2 or u32(head, 20):
            return None
        cmd, flags, mid = u16(head, 12), u32(head, 16), u64(head, 24)
        body = head[HEADER:]
        if cmd == WRITE and not flags & FLAG_RESPONSE:
            f = self.files.get(body[16:32])  # not ANY_FILE: a compound's CREATE would come first
            return None if f is None or f.pipe else (f, u64(body, 8), u16(body, 2), u32(body, 4))
        if cmd == READ and flags & FLAG_RESPONSE and u32(head, 8) == 0:
            req = self.pending.pop(mid, None)
            f = self._file(req[1]) if req is not None and req[0] == READ else None
            return None if f is None or f.pipe else (f, req[2], body[2], u32(body, 4))
        return None

    def _set_info(self, info_class: int, fid: bytes, buf: bytes, ts: float) -> None:
        f = self._file(fid)
        if f is None or f.pipe:
            return
        if (info_class == DISPOSITION_INFO and buf[:1] == b"\x01") or \
                (info_class == DISPOSITION_INFO_EX and len(buf) >= 4 and u32(buf, 0) & 1):
            self._file_log("SMB::FILE_DELETE", f, ts)
        elif info_class == RENAME_INFO and len(buf) >= 20:
            new = buf[20:20 + u32(buf, 16)].decode("utf-16-le", "replace")
            self._file_log("SMB::FILE_RENAME", f, ts, name=new, prev_name=f.name)
            f.name = new or f.name

    def _file_log(self, action: str, f: OpenFile, ts: float, **changes) -> None:
        """An smb_files.log record; the same action on the same file (name, path, size, times) seen
        again within RECENT seconds is not logged again, as Zeek keeps ``recent_files`` per
        connection against overlogging (a directory listing reopens the share root many times)."""
        rec = {"ts": ts, "fuid": None, "action": action, "path": f.path, "name": f.name or "<share_root>",
               "size": f.size, "prev_name": None, **f.times}
        rec.update(changes)
        ident = (action, rec["name"], rec["path"], rec["size"], rec["prev_name"], tuple(f.times.values()))
        seen = self.recent.get(ident)
        if seen is not None and ts - seen < RECENT:
            return
        if len(self.recent) >= MAX_FILES:
            self.recent.clear()
        self.recent[ident] = ts
        self.out.log("smb_files", rec, self.conn)

    # -- files -------------------------------------------------------------------------------

    def _fid(self, fid: bytes) -> bytes:
        return self.last_created if fid == ANY_FILE and self.last_created is not None else fid

    def _file(self, fid: bytes) -> OpenFile | None:
        return self.files.get(self._fid(fid))

    def _add(self, f: OpenFile, is_orig: bool, offset: int, data: bytes, ts: float) -> None:
        self.held += f.add(is_orig, offset, data, ts, MAX_HELD - self.held)

    def pipe_file(self, fid: bytes) -> OpenFile | None:
        """The file a pipe-only request names (FSCTL_PIPE_TRANSCEIVE, SMB1 TransactNmPipe): made a
        named pipe with its RPC session when its CREATE was not seen (a capture started after it)."""
        f = self.files.get(fid)
        if f is None and len(self.files) < MAX_FILES:
            f = self.files[fid] = OpenFile(name=None, pipe=True, size=None)
        if f is not None and f.rpc is None:
            f.pipe = True
            f.rpc = RPCSession(self.conn, self.out, self.ntlm)
        return f

    def _security_blob(self, blob: bytes, ts: float) -> None:
        """A client's SESSION_SETUP security blob: NTLM to ntlm.log, a Kerberos AP-REQ to
        kerberos.log (request type AP, the ticket's service and realm, as Zeek logs it)."""
        if self.ntlm.message(blob, ts) is not None or self.kerberos_logged:
            return
        ap = ap_request(blob)
        if ap is not None:
            self.kerberos_logged = True
            realm, service = ap
            self.out.log("kerberos", {"ts": ts, "request_type": "AP", "client": f"/{realm or ''}",
                                      "service": service, "success": True, "error_msg": None}, self.conn)

    def _close(self, fid: bytes, ts: float) -> None:
        f = self.files.pop(fid, None)
        if f is not None and f.rpc is not None:
            f.rpc.end(ts)
        if f is None or f.pipe:
            return
        for is_orig in (True, False):
            if is_orig not in f.first:
                continue
            data, missing = f.assemble(is_orig)
            self.held -= sum(len(d) for _, d in f.pieces[is_orig])
            total = f.size if not is_orig and f.size else None
            self.out.file(self.conn, ts=f.first[is_orig], data=data, is_orig=is_orig, source="SMB",
                          filename=f.name, total_bytes=total, missing_bytes=missing)
