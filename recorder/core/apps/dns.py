"""DNS over UDP and TCP: dns.log with Zeek's meaning (base/protocols/dns).

One record per query/response pair, matched by transaction id in the order Zeek's ``set_session``
matches them (a fast-path pending query, then per-id queues of pending queries and replies);
replies without a query and queries without a reply are logged when the connection ends. Answers
are rendered as Zeek's scripts render each RR type (an address, a name, ``TXT <len> <text>``,
``RRSIG <type> <signer>``, ...); records of the authority and additional sections go to ``auth``
and ``addl`` (Zeek's protocols/dns/auth-addl). Every A/AAAA answer is also reported as an
address-to-name mapping. Names follow compression pointers with loop protection; a message cut
short yields what was complete.

Typed for Cython in pure-Python mode (see ``recorder.core.compiled``): the message and the record
being built are extension types with C integer fields, and name reading runs on C integer offsets
into ``bytes`` (indexes and slices bounds-checked as in Python). The same file runs as Python.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import deque
from typing import ClassVar

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Parser
from recorder.core.purecython import slotted

QUERY_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX",
    27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL",
    43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY",
    58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID",
    105: "L32", 106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG",
    251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "*", 256: "URI", 257: "CAA",
    32768: "TA", 32769: "DLV", 65281: "WINS", 65282: "WINS-R", 65422: "XPF", 65521: "INTEGRITY",
}
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSet", 9: "NOTAUTH", 10: "NOTZONE", 11: "unassigned-11", 12: "unassigned-12",
    13: "unassigned-13", 14: "unassigned-14", 15: "unassigned-15", 16: "BADVERS", 17: "BADKEY",
    18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
    3842: "BADSIG",
}
CLASSES = {1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY"}
OPCODES = {0: "query", 1: "iquery", 2: "server-status", 4: "notify", 5: "dynamic-update", 6: "dso"}

ANS, AUTH, ADDL = 0, 1, 2
MAX_PENDING = 50  # Zeek's DNS::max_pending_msgs and max_pending_query_ids
MAX_POINTERS = 64  # compression pointers followed in one name before it is declared a loop
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {0x5C}
_NONPRINT = re.compile(rb"[^\x20-\x5b\x5d-\x7e]")

DNS_FIELDS: LogFields = CONN_ID + (
        ("proto", "enum"), ("trans_id", "count"), ("rtt", "interval"), ("query", "string"),
    ("qclass", "count"), ("qclass_name", "string"), ("qtype", "count"), ("qtype_name", "string"),
    ("rcode", "count"), ("rcode_name", "string"), ("AA", "bool"), ("TC", "bool"), ("RD", "bool"),
    ("RA", "bool"), ("Z", "count"), ("answers", "vector[string]"), ("TTLs", "vector[interval]"),
    ("rejected", "bool"), ("opcode", "count"), ("opcode_name", "string"), ("auth", "set[string]"),
    ("addl", "set[string]"),
)


def qtype_name(t: int) -> str:
    return QUERY_TYPES.get(t, f"query-{t}")


def _text(b: bytes) -> str:
    """Bytes as Zeek's log shows them: printable ASCII as is, anything else as \\xNN."""
    if not _NONPRINT.search(b):
        return b.decode("ascii")
    return "".join(chr(c) if c in _PRINTABLE else f"\\x{c:02x}" for c in b)


class Malformed(Exception):
    """The message cannot be parsed further (internal to this module)."""


@cython.locals(msg=bytes, off=cython.Py_ssize_t)
def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``off``: (text, offset after it in the message).

    Lower case, as Zeek logs names."""
    raw, off = raw_name(msg, off)
    return _text(raw).lower(), off


@cython.locals(msg=bytes, off=cython.Py_ssize_t, end=cython.Py_ssize_t, jumps=cython.int, n=cython.Py_ssize_t,
               total=cython.Py_ssize_t, ln=cython.int, kind=cython.int, labels=list, label=bytes)
def raw_name(msg: bytes, off: int) -> tuple[bytes, int]:
    """A domain name at ``off`` as its labels joined by dots, case kept (Suricata's dns.query)."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    n = len(msg)
    total = 0
    while True:
        if off >= n:
            raise Malformed("name runs past the message")
        ln = msg[off]
        if ln == 0:
            off += 1
            break
        kind = ln & 0xC0
        if kind == 0xC0:
            if off + 1 >= n:
                raise Malformed("truncated pointer")
            if end < 0:
                end = off + 2
            jumps += 1
            if jumps > MAX_POINTERS:
                raise Malformed("compression loop")
            off = ((ln & 0x3F) << 8) | msg[off + 1]
            continue
        if kind:
            raise Malformed("unknown label type")
        label = msg[off + 1:off + 1 + ln]
        if len(label) < ln:
            raise Malformed("truncated label")
        total += ln + 1
        if total > 1024:
            raise Malformed("name too long")
        labels.append(label)
        off += 1 + ln
    return b".".join(labels), (end if end >= 0 else off)


NBNS_CLAIMS = frozenset({5, 6, 8, 9})  # NetBIOS name registration, release, refresh (RFC 1002 4.2.1.1)


def decode_netbios_name(name: str) -> str:
    """Zeek's decode_netbios_name: 32 letters 'A'..'P' -> 16 bytes, trailing spaces and NULs cut."""
    first = name.split(".", 1)[0]
    if len(first) != 32 or any(not ("A" <= ch <= "P") for ch in first.upper()):
        return ""
    up = first.upper()
    raw = bytes(((ord(up[i]) - 65) << 4) | (ord(up[i + 1]) - 65) for i in range(0, 32, 2))
    return _text(raw[:15].rstrip(b" \x00"))


@cython.cclass
class Message:
    """One parsed DNS message (header, questions and the records that could be read)."""

    id = cython.declare(cython.int, visibility="public")
    qr = cython.declare(cython.bint, visibility="public")
    opcode = cython.declare(cython.int, visibility="public")
    aa = cython.declare(cython.bint, visibility="public")
    tc = cython.declare(cython.bint, visibility="public")
    rd = cython.declare(cython.bint, visibility="public")
    ra = cython.declare(cython.bint, visibility="public")
    z = cython.declare(cython.int, visibility="public")
    rcode = cython.declare(cython.int, visibility="public")
    qd = cython.declare(cython.int, visibility="public")
    an = cython.declare(cython.int, visibility="public")
    ns = cython.declare(cython.int, visibility="public")
    ar = cython.declare(cython.int, visibility="public")
    questions = cython.declare(list, visibility="public")
    rrs = cython.declare(list, visibility="public")

    @cython.locals(msg=bytes, flags=cython.int, off=cython.Py_ssize_t, n=cython.Py_ssize_t,
                   qtype=cython.int, qclass=cython.int, rtype=cython.int, rclass=cython.int, rdlen=cython.Py_ssize_t,
                   section=cython.int, count=cython.int, _i=cython.int)
    def __init__(self, msg: bytes) -> None:
        if len(msg) < 12:
            raise Malformed("short header")
        self.id, flags, self.qd, self.an, self.ns, self.ar = struct.unpack_from("!HHHHHH", msg)
        self.qr = bool(flags & 0x8000)
        self.opcode = (flags >> 11) & 0xF
        self.aa = bool(flags & 0x0400)
        self.tc = bool(flags & 0x0200)
        self.rd = bool(flags & 0x0100)
        self.ra = bool(flags & 0x0080)
        self.z = (flags >> 4) & 0x7
        self.rcode = flags & 0xF
        self.questions: list[tuple[str, int, int]] = []
        self.rrs: list[tuple[int, str, int, int, int, bytes, bytes, int]] = []
        off = 12
        n = len(msg)
        try:
            for _i in range(self.qd):
                name, off = read_name(msg, off)
                if off + 4 > n:
                    raise Malformed("truncated question")
                if cython.compiled:  # C integers from checked byte reads; one struct call as Python
                    qtype = (msg[off] << 8) | msg[off + 1]
                    qclass = (msg[off + 2] << 8) | msg[off + 3]
                else:
                    qtype, qclass = struct.unpack_from("!HH", msg, off)
                off += 4
                self.questions.append((name, qtype, qclass))
            for section, count in ((ANS, self.an), (AUTH, self.ns), (ADDL, self.ar)):
                for _i in range(count):
                    name, off = read_name(msg, off)
                    if off + 10 > n:
                        raise Malformed("truncated record")
                    rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
                    off += 10
                    rdata = msg[off:off + rdlen]
                    self.rrs.append((section, name, rtype, rclass, ttl, rdata, msg, off))
                    off += rdlen
                    if off > n:
                        raise Malformed("truncated rdata")
        except Malformed:
            pass  # keep what was complete, as Zeek does with a message cut short


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    Message = slotted(Message)


@cython.locals(rtype=cython.int, rdata=bytes, msg=bytes, off=cython.Py_ssize_t, i=cython.Py_ssize_t, ln=cython.int)
def render(rtype: int, name: str, rdata: bytes, msg: bytes, off: int) -> str | None:
    """An answer as Zeek's dns scripts render it; "" for records Zeek logs without text (WKS);
    None for records Zeek's scripts do not log (HINFO, OPT, TSIG) or that do not parse."""
    try:
        if rtype == 1:
            return str(ipaddress.IPv4Address(rdata[:4])) if len(rdata) >= 4 else None
        if rtype == 28:
            return str(ipaddress.IPv6Address(rdata[:16])) if len(rdata) >= 16 else None
        if rtype in (2, 5, 12, 39):  # NS, CNAME, PTR, DNAME
            return read_name(msg, off)[0]
        if rtype == 15:  # MX: preference, exchange
            return read_name(msg, off + 2)[0]
        if rtype == 6:  # SOA: mname first
            return read_name(msg, off)[0]
        if rtype == 33:  # SRV: priority, weight, port, target
            return read_name(msg, off + 6)[0]
        if rtype in (16, 99):  # TXT, SPF: character-strings
            tag = "TXT" if rtype == 16 else "SPF"
            parts = []
            i = 0
            while i < len(rdata):
                ln = rdata[i]
                s = rdata[i + 1:i + 1 + ln]
                parts.append(f"{tag} {len(s)} {_text(s)}")
                i += 1 + ln
            return " ".join(parts)
        if rtype == 11:
            return ""
        if rtype == 46:  # RRSIG: type covered, algorithm, labels, ttl, expiration, inception, tag, signer
            if len(rdata) < 18:
                return None
            covered = struct.unpack_from("!H", rdata)[0]
            signer = read_name(msg, off + 18)[0]
            return f"RRSIG {covered} {signer or '<Root>'}"
        if rtype == 48:  # DNSKEY: flags, protocol, algorithm
            return f"DNSKEY {rdata[3]}" if len(rdata) >= 4 else None
        if rtype == 43:  # DS: key tag, algorithm, digest type
            return f"DS {rdata[2]} {rdata[3]}" if len(rdata) >= 4 else None
        if rtype == 47:
            return f"NSEC {name} {read_name(msg, off)[0]}"
        if rtype == 50:
            return "NSEC3"
        if rtype == 51:
            return "NSEC3PARAM"
        if rtype == 44:  # SSHFP: algorithm, fingerprint type, fingerprint
            return "SSHFP: " + rdata[2:].hex() if len(rdata) >= 2 else None
        if rtype == 29:  # LOC: version, size, horizontal and vertical precision
            return f"LOC:  {rdata[1]} {rdata[2]} {rdata[3]}" if len(rdata) >= 4 else None
        if rtype == 65534:
            return "BIND9 signing signal"
        if rtype in (13, 41, 250, 257, 64, 65):  # HINFO, OPT, TSIG, CAA, SVCB, HTTPS: no log text
            return None
        return f"<unknown type={rtype}>"
    except Malformed:
        return None


def render_update(section: int, rtype: int, rclass: int, name: str, rdata: bytes, msg: bytes,
                  off: int) -> str | None:
    """A record of a dynamic UPDATE (RFC 2136): its prerequisite (``pre:``) or update (``add:``,
    ``del:``) as Zeek logs it among the answers."""
    tname = qtype_name(rtype)
    value = render(rtype, name, rdata, msg, off) if rdata else None
    if section == ANS:  # prerequisites
        if rclass == 255:
            return f"pre: NameInUse {name}" if rtype == 255 else f"pre: RRSet {tname} {name}"
        if rclass == 254:
            return f"pre: NameNotInUse {name}" if rtype == 255 else f"pre: NoRRSet {tname} {name}"
        return f"pre: RRSet {tname} {name} {value or ''}".rstrip()
    if rclass == 255:
        return "del: AllRRSets" if rtype == 255 else f"del: RRSet {tname}"
    if rclass == 254:
        return f"del: RR {tname} {name} {value or ''}".rstrip()
    return f"add: {tname} {name} {value or ''}".rstrip()


@cython.locals(msg=bytes, flags=cython.int, qd=cython.int, an=cython.int, ns=cython.int, ar=cython.int,
               opcode=cython.int, off=cython.Py_ssize_t, _i=cython.int)
def plausible(data: bytes) -> bool:
    """Does ``data`` look like a DNS message (a sane header whose question section parses)?"""
    msg = data if type(data) is bytes else bytes(data)
    if len(msg) < 12:
        return False
    _, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg)
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 1, 2, 4, 5, 6) or qd > 16 or an + ns + ar > 512:
        return False
    if qd == 0 and not flags & 0x8000:
        return False
    off = 12
    try:
        for _i in range(qd):
            _, off = read_name(msg, off)
            off += 4
            if off > len(msg):
                return False
    except Malformed:
        return False
    return True


@cython.cclass
class _Info:
    """One dns.log record being built (Zeek's DNS::Info)."""

    rec = cython.declare(dict, visibility="public")
    saw_query = cython.declare(cython.bint, visibility="public")
    saw_reply = cython.declare(cython.bint, visibility="public")

    def __init__(self, ts: float, trans_id: int, proto: str) -> None:
        self.rec: dict = {"ts": ts, "proto": proto, "trans_id": trans_id, "rtt": None, "query": None,
                          "qclass": None, "qclass_name": None, "qtype": None, "qtype_name": None,
                          "rcode": None, "rcode_name": None, "AA": False, "TC": False, "RD": False,
                          "RA": False, "Z": 0, "answers": None, "TTLs": None, "rejected": False,
                          "opcode": None, "opcode_name": None, "auth": None, "addl": None}
        self.saw_query = False
        self.saw_reply = False


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    _Info = slotted(_Info)


class DNS(Parser):
    """DNS over UDP: one message per datagram."""

    service: ClassVar[str] = "dns"
    transport: ClassVar[str] = "udp"
    logs: ClassVar[dict[str, LogFields]] = {"dns": DNS_FIELDS}
    ports: ClassVar[frozenset[int]] = frozenset({53, 137, 5353, 5355})

    def __init__(self, conn: Conn, out, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.pending_query: _Info | None = None
        self.pending_queries: dict[int, deque[_Info]] = {}
        self.pending_replies: dict[int, deque[_Info]] = {}
        self._inspect = out.inspect if getattr(out, "inspecting", False) else None
        self._tx = 0

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return plausible(data)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        self.message(data, ts)

    def end(self, ts: float) -> None:
        if self.pending_query is not None:
            self._write(self.pending_query)
            self.pending_query = None
        for table in (self.pending_queries, self.pending_replies):
            for q in table.values():
                for info in q:
                    self._write(info)
            table.clear()

    # ------------------------------------------------------------------ one message
    @cython.locals(m=Message, info=_Info, rec=dict, netbios=cython.bint, off=cython.Py_ssize_t,
                   qtype=cython.int, qclass=cython.int, section=cython.int, rtype=cython.int)
    def message(self, data: bytes, ts: float) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        try:
            m = Message(data)
        except Malformed:
            return
        info = self._session(m, ts)
        if self._inspect is not None and not m.qr:
            off = 12
            for _ in m.questions:
                qname, off = raw_name(data, off)
                off += 4
                self._inspect(self.conn, True, ts, self._tx, {"dns.query": qname})
            self._tx += 1
        rec = info.rec
        rec["opcode"] = m.opcode
        rec["opcode_name"] = OPCODES.get(m.opcode, f"opcode-{m.opcode}")
        netbios = self.conn.resp_p == 137
        if m.questions and m.opcode != 5:  # an UPDATE's question section names the zone
            qname, qtype, qclass = m.questions[0]
            if not m.qr:
                rec["RD"] = m.rd
                rec["TC"] = m.tc
                rec["qclass"] = qclass
                rec["qclass_name"] = CLASSES.get(qclass, f"qclass-{qclass}")
                rec["qtype"] = qtype
                rec["qtype_name"] = qtype_name(qtype)
                rec["Z"] = m.z
                query = qname
                if netbios:
                    query = decode_netbios_name(qname) or query
                    if qtype == 33:
                        rec["qtype_name"] = "NBSTAT"
                rec["query"] = query
            elif not (m.an or m.ns or m.ar):  # Zeek's dns_rejected: a reply with nothing in it
                rec["rejected"] = True
        if netbios and (m.rcode == 0 if m.qr else m.opcode in NBNS_CLAIMS):
            self._netbios_names(m, ts)
        if m.qr:
            rec["rcode"] = m.rcode
            rec["rcode_name"] = RCODES.get(m.rcode, f"rcode-{m.rcode}")
            if m.rcode != 0 and not m.questions:
                rec["rejected"] = True
            for section, name, rtype, _rclass, ttl, rdata, msg, off in m.rrs:
                if m.opcode == 5 and section != ADDL:
                    text = render_update(section, rtype, _rclass, name, rdata, msg, off)
                    section = ANS
                else:
                    text = render(rtype, name, rdata, msg, off)
                if text is None:
                    continue
                if section == ANS:
                    if rec["query"] is None:
                        rec["query"] = name
                    rec["AA"] = m.aa
                    rec["RA"] = m.ra
                    if rec["rtt"] is None:
                        rtt = ts - rec["ts"]
                        rec["rtt"] = rtt if rtt != 0 else None
                    if text:
                        if rec["answers"] is None:
                            rec["answers"] = []
                            rec["TTLs"] = []
                        rec["answers"].append(text)
                        rec["TTLs"].append(float(ttl))
                        if rtype in (1, 28):
                            self.out.name(text, rec["query"] or name, ts=ts, source="dns")
                elif text:
                    key = "auth" if section == AUTH else "addl"
                    if rec[key] is None:
                        rec[key] = []
                    if text not in rec[key]:
                        rec[key].append(text)
            info.saw_reply = True
        else:
            info.saw_query = True
        if info.saw_query and info.saw_reply:
            self._write(info)

    def _netbios_names(self, m: Message, ts: float) -> None:
        """The hosts NetBIOS names: NB records (flags, IPv4 address per entry) of a positive
        answer or of a host's own registration, refresh or release."""
        for _section, name, rtype, _rclass, _ttl, rdata, _msg, _off in m.rrs:
            nbname = decode_netbios_name(name) if rtype == 32 else ""
            if not nbname or not rdata or len(rdata) % 6:
                continue
            for i in range(0, len(rdata), 6):
                addr = rdata[i + 2:i + 6]
                if addr != b"\0\0\0\0":
                    self.out.name(str(ipaddress.IPv4Address(addr)), nbname, ts=ts, source="netbios")

    def _write(self, info: _Info) -> None:
        self.out.log("dns", info.rec, self.conn)

    def _session(self, m: Message, ts: float) -> _Info:
        """Zeek's set_session: the record a message belongs to (matched by transaction id)."""
        tid = m.id
        if not m.qr:
            q = self.pending_replies.get(tid)
            if q:
                info = q.popleft()
                if not q:
                    del self.pending_replies[tid]
                return info
            info = _Info(ts, tid, self.conn.proto)
            if self.pending_query is None:
                self.pending_query = info
            else:
                self._enqueue(self.pending_queries, tid, info)
            return info
        pq = self.pending_query
        if pq is not None and pq.rec["trans_id"] == tid:
            self.pending_query = None
            if self.pending_queries:
                key = tid if tid in self.pending_queries else next(iter(self.pending_queries))
                self.pending_query = self._pop(self.pending_queries, key)
            return pq
        q = self.pending_queries.get(tid)
        if q:
            return self._pop(self.pending_queries, tid)
        info = _Info(ts, tid, self.conn.proto)
        self._enqueue(self.pending_replies, tid, info)
        return info

    @staticmethod
    def _pop(table: dict[int, deque[_Info]], tid: int) -> _Info:
        q = table[tid]
        info = q.popleft()
        if not q:
            del table[tid]
        return info

    def _enqueue(self, table: dict[int, deque[_Info]], tid: int, info: _Info) -> None:
        q = table.get(tid)
        if q is None:
            if len(table) > MAX_PENDING:  # give up matching: log everything unmatched so far
                for old in table.values():
                    for i in old:
                        self._write(i)
                table.clear()
            q = table[tid] = deque()
        elif len(q) > MAX_PENDING:
            for i in q:
                self._write(i)
            q.clear()
        q.append(info)


class DNSTCP(DNS):
    """DNS over TCP: messages framed by a 2-byte length, per direction."""

    transport: ClassVar[str] = "tcp"
    ports: ClassVar[frozenset[int]] = frozenset({53})

    def __init__(self, conn: Conn, out, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: bytearray(), False: bytearray()}
        self.lost = {True: False, False: False}  # after a gap: look for the next framed message

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if len(data) < 14:
            return False
        n = struct.unpack_from("!H", data)[0]
        return n >= 12 and plausible(data[2:2 + n])

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig]
        buf += data
        if self.lost[is_orig] and not self._resync(buf):
            return
        self.lost[is_orig] = False
        while len(buf) >= 2:
            n = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2:2 + n])
            del buf[:2 + n]
            self.message(msg, ts)
        if len(buf) > MAX_BUFFER:
            buf.clear()

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """The framing is lost: go on at the next length prefix followed by a whole plausible
        message (a sane header whose question section parses), as Zeek's analyzer resumes at the
        next valid header."""
        self.buf[is_orig].clear()
        self.lost[is_orig] = True

    @staticmethod
    def _resync(buf: bytearray) -> bool:
        """Drop bytes up to the next framed plausible message; False if none is whole yet."""
        for p in range(0, max(len(buf) - 13, 0)):
            n = (buf[p] << 8) | buf[p + 1]
            if n >= 12 and p + 2 + n <= len(buf) and plausible(bytes(buf[p + 2:p + 2 + n])):
                del buf[:p]
                return True
        if len(buf) > MAX_BUFFER:
            buf.clear()
        return False
