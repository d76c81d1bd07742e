"""A minimal X.509 reader: the few certificate fields ssl.log needs, from DER, without OpenSSL.

``parse_certificate(der)`` returns a ``Certificate`` (subject and issuer rendered as Zeek
renders them, RFC 2253 style with the most specific part first: ``CN=example.com,O=Example,C=US``;
validity as epoch seconds; the SHA-256 fingerprint Zeek puts in ``cert_chain_fps``; the DNS names
of the subjectAltName extension) or ``None`` when the bytes are not a certificate it can read.
It never raises on hostile input. Signatures are not verified and nothing is validated.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass

# Short names OpenSSL prints for the attribute types of a distinguished name.
_ATTR_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
    "2.5.4.13": "description", "2.5.4.15": "businessCategory", "2.5.4.17": "postalCode",
    "2.5.4.42": "GN", "2.5.4.43": "initials", "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym", "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL", "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}
_SAN_OID = "2.5.29.17"
_MAX_DEPTH = 8  # certificates nest a handful of levels; deeper means garbage


@dataclass(frozen=True, slots=True)
class Certificate:
    sha256: str  # hex of SHA-256 over the whole DER certificate (Zeek's cert_chain_fps entry)
    subject: str | None
    issuer: str | None
    not_before: float | None  # epoch seconds
    not_after: float | None
    san_dns: tuple[str, ...] = ()
    # as Suricata's tls.cert_subject / tls.cert_issuer buffers show them: first RDN first,
    # ", " between RDNs, values unescaped ("C=US, O=Example, CN=www.example.com")
    subject_dn: str | None = None
    issuer_dn: str | None = None


class _DerError(ValueError):
    pass


def _tlv(buf: bytes, off: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at ``off``; raises _DerError when it does not fit."""
    if off + 2 > end:
        raise _DerError("short header")
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        raise _DerError("multi-byte tag")
    first = buf[off + 1]
    pos = off + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise _DerError("bad length")
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise _DerError("value overruns its container")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    off = start
    while off < end:
        tag, vs, ve = _tlv(buf, off, end)
        out.append((tag, vs, ve))
        off = ve
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        return ""
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", errors="replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", errors="replace")
    if tag == 0x0C:
        return raw.decode("utf-8", errors="replace")
    return raw.decode("latin-1")


def _escape(value: str) -> str:
    """RFC 2253 escaping as OpenSSL's XN_FLAG_RFC2253 does it (non-ASCII left as UTF-8)."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def _name(buf: bytes, start: int, end: int, suricata: bool = False) -> str:
    """A Name (SEQUENCE OF RDN) as Zeek shows it, 'CN=..,O=..,C=..': last RDN first, multi-valued
    RDNs joined by '+', values escaped (RFC 2253); with ``suricata``, as Suricata's certificate
    buffers show it, 'C=.., O=.., CN=..': first RDN first, ' + ' within an RDN, values as they are."""
    rdns = []
    for tag, vs, ve in _children(buf, start, end):
        if tag != 0x31:
            raise _DerError("RDN is not a SET")
        parts = []
        for atag, avs, ave in _children(buf, vs, ve):
            if atag != 0x30:
                raise _DerError("attribute is not a SEQUENCE")
            kids = _children(buf, avs, ave)
            if len(kids) < 2 or kids[0][0] != 0x06:
                raise _DerError("bad attribute")
            oid = _oid(buf[kids[0][1]:kids[0][2]])
            vtag, vvs, vve = kids[1]
            key = _ATTR_NAMES.get(oid, oid)
            if key == oid:  # unknown type: RFC 2253 says hex of the DER value
                parts.append(f"{oid}=#" + bytes([vtag]).hex() + _der_len(vve - vvs).hex() + buf[vvs:vve].hex())
            elif suricata:
                parts.append(f"{key}={_string(vtag, buf[vvs:vve])}")
            else:
                parts.append(f"{key}={_escape(_string(vtag, buf[vvs:vve]))}")
        rdns.append((" + " if suricata else "+").join(parts))
    return ", ".join(rdns) if suricata else ",".join(reversed(rdns))


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _time(tag: int, raw: bytes) -> float | None:
    text = raw.decode("ascii", errors="replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]Z
            year = int(text[0:2])
            year += 1900 if year >= 50 else 2000
            rest = text[2:]
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMM[SS][.fff]Z
            year = int(text[0:4])
            rest = text[4:]
        else:
            return None
        month, day, hour, minute = (int(rest[i:i + 2]) for i in (0, 2, 4, 6))
        second = int(rest[8:10]) if len(rest) >= 10 else 0
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            return None
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except ValueError:
        return None


def _san_dns(buf: bytes, start: int, end: int) -> tuple[str, ...]:
    names = []
    for tag, vs, ve in _children(buf, start, end):
        if tag == 0x30:  # the OCTET STRING holds GeneralNames, a SEQUENCE
            for gtag, gvs, gve in _children(buf, vs, ve):
                if gtag == 0x82:  # [2] dNSName
                    names.append(buf[gvs:gve].decode("latin-1"))
    return tuple(names)


def _extensions(buf: bytes, start: int, end: int) -> tuple[str, ...]:
    for tag, vs, ve in _children(buf, start, end):
        if tag != 0x30:
            continue
        for etag, evs, eve in _children(buf, vs, ve):
            if etag != 0x30:
                continue
            kids = _children(buf, evs, eve)
            if kids and kids[0][0] == 0x06 and _oid(buf[kids[0][1]:kids[0][2]]) == _SAN_OID:
                value = kids[-1]
                if value[0] == 0x04:
                    return _san_dns(buf, value[1], value[2])
    return ()


def parse_certificate(der: bytes) -> Certificate | None:
    """The fields of one DER certificate, or None when it cannot be read (never raises)."""
    der = bytes(der)
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        tag, vs, ve = _tlv(der, 0, len(der))
        if tag != 0x30:
            return None
        ttag, tvs, tve = _tlv(der, vs, ve)  # tbsCertificate
        if ttag != 0x30:
            return None
        fields = _children(der, tvs, tve)
        if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
            fields = fields[1:]
        if len(fields) < 6:
            return None
        # serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo, [extras]
        issuer = _name(der, fields[2][1], fields[2][2]) if fields[2][0] == 0x30 else None
        subject = _name(der, fields[4][1], fields[4][2]) if fields[4][0] == 0x30 else None
        not_before = not_after = None
        if fields[3][0] == 0x30:
            times = _children(der, fields[3][1], fields[3][2])
            if len(times) == 2:
                not_before = _time(times[0][0], der[times[0][1]:times[0][2]])
                not_after = _time(times[1][0], der[times[1][1]:times[1][2]])
        san: tuple[str, ...] = ()
        for etag, evs, eve in fields[6:]:
            if etag == 0xA3:  # [3] EXPLICIT extensions
                san = _extensions(der, evs, eve)
        issuer_dn = _name(der, fields[2][1], fields[2][2], True) if fields[2][0] == 0x30 else None
        subject_dn = _name(der, fields[4][1], fields[4][2], True) if fields[4][0] == 0x30 else None
        return Certificate(fingerprint, subject, issuer, not_before, not_after, san, subject_dn, issuer_dn)
    except (_DerError, IndexError, UnicodeDecodeError):
        return None


def name_matches(hostname: str, pattern: str) -> bool:
    """True if ``hostname`` matches a certificate name, with a leftmost '*' label as a wildcard."""
    host = hostname.lower().rstrip(".")
    pat = pattern.lower().rstrip(".")
    if pat.startswith("*."):
        head, _, tail = host.partition(".")
        return bool(head) and tail == pat[2:]
    return host == pat
