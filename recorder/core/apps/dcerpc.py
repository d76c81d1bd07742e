"""DCE-RPC (MS-RPCE, connection-oriented) over TCP and SMB named pipes: Zeek's dce_rpc.log.

Remote service creation (PsExec: svcctl CreateServiceW/StartServiceW), scheduled tasks (atsvc,
ITaskSchedulerService), registry edits (winreg), DCSync (drsuapi DRSGetNCChanges) and account
enumeration (samr, lsarpc) are calls of named operations on named interfaces. One record per
call, as Zeek writes it: ``ts`` of the request, ``rtt`` to its response, ``named_pipe`` (the
secondary address the server gave in its BIND_ACK: ``\\PIPE\\lsass``, or a TCP port such as
``49676``), ``endpoint`` (the interface bound, by UUID: ``svcctl``) and ``operation`` (its opnum:
``CreateServiceW``); names in ``apps.dcerpc_names``.

``RPCSession`` follows one association (a TCP connection, or one SMB pipe's file id): PDUs are
framed by their 16-byte header (version 5.0, fragment length), BIND and ALTER_CONTEXT map each
presentation context to its interface, REQUEST and RESPONSE are paired by call id (a call split
in fragments is taken from its first request fragment to its last response fragment). The auth
verifier of BIND, BIND_ACK, ALTER_CONTEXT(_RESP) and AUTH3 carries NTLM (raw or in SPNEGO),
written to ntlm.log by ``apps.ntlm.NTLMLogins``. Stub data is not decoded (often encrypted).
When signatures are matched (``out.inspecting``), each request fragment hands Suricata's
``dce.iface`` (the context's interface UUID, its major version, whether it is the first
fragment), ``dce.opnum`` and ``dce.stub_data`` to the engine, and each response its stub data,
one transaction per call id.

Where we differ from Zeek, on purpose: a call answered by a FAULT, and a request never answered
(at the end of the connection), are logged too, with ``rtt`` unset for the latter (Zeek's field
documentation: unset when the response was not seen): a refused CreateServiceW is evidence.
Zeek's ignored operations (noisy winreg, spoolss and wkssvc calls) are not logged, as in Zeek.

``DCERPC`` is the TCP parser (port 135 and the dynamic ports the endpoint mapper hands out):
detected by content, a version 5.0 PDU header of a known type. ``apps.smb`` feeds pipe traffic to
an ``RPCSession`` per pipe. Bytes that cannot be a PDU are counted in ``malformed`` and the
session resynchronises at the next plausible header.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, Conn, LogFields, Output, Parser
from recorder.core.apps.dcerpc_names import IGNORED, PIPE_INTERFACES, endpoint, operation
from recorder.core.apps.ntlm import NTLM_LOG, NTLMLogins

REQUEST, RESPONSE, FAULT, BIND, BIND_ACK, BIND_NAK, ALTER, ALTER_RESP, AUTH3 = 0, 2, 3, 11, 12, 13, 14, 15, 16
SHUTDOWN, CO_CANCEL, ORPHANED = 17, 18, 19
PTYPES = frozenset({REQUEST, RESPONSE, FAULT, BIND, BIND_ACK, BIND_NAK, ALTER, ALTER_RESP, AUTH3,
                    SHUTDOWN, CO_CANCEL, ORPHANED})
FIRST_FRAG, LAST_FRAG, OBJECT_UUID = 0x01, 0x02, 0x80
HEADER = 16
MAX_FRAG = 1 << 16  # frag_length is 16 bits: a PDU is never longer
MAX_CALLS = 1024  # requests awaiting their response per session
MAX_CONTEXTS = 256
AUTH_SPNEGO, AUTH_NTLM = 9, 10

DCE_RPC_LOG: LogFields = CONN_ID + (("rtt", "interval"), ("named_pipe", "string"), ("endpoint", "string"),
                                    ("operation", "string"))


def _u16(b: bytes, off: int, le: bool) -> int:
    return int.from_bytes(b[off:off + 2], "little" if le else "big")


def _u32(b: bytes, off: int, le: bool) -> int:
    return int.from_bytes(b[off:off + 4], "little" if le else "big")


def header_ok(b: bytes) -> bool:
    """True if ``b`` starts with a plausible connection-oriented DCE-RPC v5.0 PDU header."""
    if len(b) < HEADER or b[0] != 5 or b[1] not in (0, 1) or b[2] not in PTYPES:
        return False
    if b[4] & 0xEE or b[5] > 3 or b[6] or b[7]:  # data representation: integer/char/float formats
        return False
    le = bool(b[4] & 0x10)
    frag, auth = _u16(b, 8, le), _u16(b, 10, le)
    return frag >= HEADER and auth + HEADER <= frag


def _uuid(raw: bytes, le: bool) -> str:
    return str(uuidlib.UUID(bytes_le=raw) if le else uuidlib.UUID(bytes=raw))


class RPCSession:
    """One DCE-RPC association; ``feed`` takes its bytes per direction (in order), ``end`` once."""

    def __init__(self, conn: Conn, out: Output, ntlm: NTLMLogins, pipe: str | None = None) -> None:
        self.conn = conn
        self.out = out
        self.ntlm = ntlm
        self.pipe = pipe  # the SMB pipe's file name, for a call whose bind was not seen
        self.buf = {True: bytearray(), False: bytearray()}
        self.contexts: dict[int, str] = {}  # presentation context id -> interface uuid
        self.versions: dict[int, int] = {}  # presentation context id -> interface major version
        self._inspect = out.inspect if getattr(out, "inspecting", False) else None
        self.last_uuid: str | None = None
        self.named_pipe: str | None = None
        self.calls: dict[int, tuple[float, int, int]] = {}  # call id -> (ts, context id, opnum)
        self.malformed = 0
        self.pdus = 0

    # -- framing -----------------------------------------------------------------------------

    def feed(self, direction: bool, data: bytes, ts: float) -> None:
        buf = self.buf[direction]
        buf += data
        pos = 0
        while len(buf) - pos >= HEADER:
            if not header_ok(buf[pos:pos + HEADER]):
                self.malformed += 1
                at = buf.find(b"\x05", pos + 1)
                while at >= 0 and len(buf) - at >= HEADER and not header_ok(buf[at:at + HEADER]):
                    at = buf.find(b"\x05", at + 1)
                pos = at if at >= 0 else len(buf)
                continue
            frag = _u16(buf, pos + 8, bool(buf[pos + 4] & 0x10))
            if len(buf) - pos < frag:
                break
            self.pdu(bytes(buf[pos:pos + frag]), ts)
            pos += frag
        del buf[:pos]

    def gap(self, direction: bool) -> None:
        """Bytes lost in one direction: drop the partial PDU; the next header resynchronises."""
        self.buf[direction].clear()

    # -- PDUs --------------------------------------------------------------------------------

    def pdu(self, p: bytes, ts: float) -> None:
        """One whole PDU (header included)."""
        if not header_ok(p):
            self.malformed += 1
            return
        self.pdus += 1
        le = bool(p[4] & 0x10)
        ptype, flags = p[2], p[3]
        frag, auth_len, call_id = _u16(p, 8, le), _u16(p, 10, le), _u32(p, 12, le)
        body_end = frag - (auth_len + 8 if auth_len else 0)
        if body_end < HEADER:
            self.malformed += 1
            return
        if auth_len and ptype in (BIND, BIND_ACK, ALTER, ALTER_RESP, AUTH3):
            self._auth(p[body_end:frag], ptype, ts)
        if ptype == REQUEST:
            if len(p) < HEADER + 8:
                self.malformed += 1
                return
            if flags & FIRST_FRAG and len(self.calls) < MAX_CALLS:
                self.calls[call_id] = (ts, _u16(p, 20, le), _u16(p, 22, le))
            if self._inspect is not None:
                self._inspect_request(p, le, flags, call_id, body_end, ts)
        elif ptype in (RESPONSE, FAULT):
            if len(p) < HEADER + 8:
                self.malformed += 1
                return
            if self._inspect is not None and ptype == RESPONSE:
                self._inspect(self.conn, False, ts, call_id, {"dce.stub_data": p[HEADER + 8:body_end]})
            if flags & LAST_FRAG or ptype == FAULT:
                call = self.calls.pop(call_id, None)
                if call is not None:
                    self._log(call, ts)
        elif ptype in (BIND, ALTER):
            self._bind(p, le, body_end)
        elif ptype == BIND_ACK:
            if len(p) < HEADER + 10:
                self.malformed += 1
                return
            n = _u16(p, 24, le)
            sec = p[26:26 + n].rstrip(b"\x00").decode("latin-1")
            if sec:
                self.named_pipe = sec

    def _bind(self, p: bytes, le: bool, end: int) -> None:
        if end < HEADER + 12:
            self.malformed += 1
            return
        n = p[24]
        pos = 28
        for _ in range(n):
            if pos + 24 > end:
                self.malformed += 1
                return
            ctx_id, n_syntax = _u16(p, pos, le), p[pos + 2]
            iface = _uuid(p[pos + 4:pos + 20], le)
            if len(self.contexts) < MAX_CONTEXTS or ctx_id in self.contexts:
                self.contexts[ctx_id] = iface
                self.versions[ctx_id] = _u16(p, pos + 20, le)
            self.last_uuid = iface
            pos += 24 + 20 * n_syntax

    def _inspect_request(self, p: bytes, le: bool, flags: int, call_id: int, body_end: int, ts: float) -> None:
        ctx_id, opnum = _u16(p, 20, le), _u16(p, 22, le)
        stub_at = HEADER + 8 + (16 if flags & OBJECT_UUID else 0)
        bufs = {"dce.opnum": str(opnum).encode(), "dce.stub_data": p[stub_at:body_end]}
        iface = self.contexts.get(ctx_id)
        if iface is not None:
            first = 1 if flags & FIRST_FRAG else 0
            bufs["dce.iface"] = f"{iface} {self.versions.get(ctx_id, 0)} {first}".encode()
        assert self._inspect is not None
        self._inspect(self.conn, True, ts, call_id, bufs)

    def _auth(self, verifier: bytes, ptype: int, ts: float) -> None:
        if len(verifier) < 8 or verifier[0] not in (AUTH_SPNEGO, AUTH_NTLM):
            return
        token = verifier[8:]
        self.ntlm.message(token, ts)
        if verifier[0] == AUTH_SPNEGO and ptype in (BIND_ACK, ALTER_RESP):
            self.ntlm.spnego(token, ts)

    def _log(self, call: tuple[float, int, int], ts: float | None) -> None:
        when, ctx_id, opnum = call
        iface = self.contexts.get(ctx_id) or self.last_uuid
        if iface is None and self.pipe:
            name = self.pipe.replace("/", "\\").lower().rsplit("\\", 1)[-1]
            iface = PIPE_INTERFACES.get(name)
        if iface is None:
            return  # no bind seen: the interface (and so the operation) is unknown, as in Zeek
        ep, op = endpoint(iface), operation(iface, opnum)
        if op in IGNORED.get(ep, ()):
            return
        self.out.log("dce_rpc", {"ts": when, "rtt": None if ts is None else max(ts - when, 0.0),
                                 "named_pipe": self.named_pipe or self.pipe, "endpoint": ep,
                                 "operation": op}, self.conn)

    def end(self, ts: float) -> None:
        """Requests never answered are logged without rtt."""
        for call in sorted(self.calls.values()):
            self._log(call, None)
        self.calls.clear()


class DCERPC(Parser):
    """DCE-RPC directly over TCP (port 135, and the dynamic ports of the endpoint mapper)."""

    service = "dce_rpc"
    ports = frozenset({135})
    logs: ClassVar[dict[str, LogFields]] = {"dce_rpc": DCE_RPC_LOG, "ntlm": NTLM_LOG}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.ntlm = NTLMLogins(conn, out, credentials=True)
        self.session = RPCSession(conn, out, self.ntlm)

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return header_ok(data) and data[2] in (BIND, BIND_ACK, ALTER, ALTER_RESP, REQUEST, RESPONSE)

    @property
    def malformed(self) -> int:
        return self.session.malformed

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        self.session.feed(is_orig, data, ts)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        self.session.gap(is_orig)

    def end(self, ts: float) -> None:
        self.session.end(ts)
        self.ntlm.end(ts)
