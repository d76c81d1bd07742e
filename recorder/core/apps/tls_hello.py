"""Reading and naming a TLS hello: the length-prefixed vectors and extensions of hello messages,
version and cipher names as Zeek writes them, GREASE values (RFC 8701), and the client and server
fingerprints JA3/JA3S (Salesforce) and JA4 (FoxIO). ``apps.tls`` parses the handshake with them.

Typed for Cython in pure-Python mode (see ``recorder.core.compiled``): vectors and extensions are
read on C integer offsets into ``bytes`` (indexes and slices bounds-checked as in Python), without
a slice and an ``int.from_bytes`` call per length field. The same file runs as Python."""

from __future__ import annotations

import functools
import hashlib
import struct

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.tls_tables import CIPHERS, JA4_VERSIONS, VERSIONS


def version_name(v: int) -> str:
    """Zeek's SSL::version_strings, with its default for TLS 1.3 drafts and unknown values."""
    if v in VERSIONS:
        return VERSIONS[v]
    if v // 0xFF == 0x7F:
        return f"TLSv13-draft{v % 0x7F}"
    return f"unknown-{v}"


def cipher_name(code: int) -> str:
    return CIPHERS.get(code, f"unknown-{code}")


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE values (0x0A0A, 0x1A1A, ... 0xFAFA)."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def u16s(raw: bytes) -> list[int]:
    n = len(raw) // 2
    return list(struct.unpack(f">{n}H", raw[:2 * n]))


@cython.locals(raw=bytes, off=cython.Py_ssize_t, width=cython.int, end=cython.Py_ssize_t)
def vec(raw: bytes, off: int, width: int) -> tuple[bytes, int]:
    """A length-prefixed vector at ``off``: (contents, offset after it); raises ValueError if short."""
    end = _vec_end(raw, off, width)
    return raw[off + width:end], end


@cython.cfunc
@cython.locals(raw=bytes, off=cython.Py_ssize_t, width=cython.int, n=cython.Py_ssize_t, end=cython.Py_ssize_t)
@cython.returns(cython.Py_ssize_t)
@cython.exceptval(-1)
def _vec_end(raw: bytes, off: int, width: int) -> cython.Py_ssize_t:
    """The offset after the length-prefixed vector at ``off`` (its contents start at ``off + width``);
    raises ValueError if short."""
    if off + width > len(raw):
        raise ValueError("short vector length")
    if width == 1:
        n = raw[off]
    elif width == 2:
        n = (raw[off] << 8) | raw[off + 1]
    elif width == 3:
        n = (raw[off] << 16) | (raw[off + 1] << 8) | raw[off + 2]
    else:
        n = int.from_bytes(raw[off:off + width], "big")
    end = off + width + n
    if end > len(raw):
        raise ValueError("vector overruns")
    return end


@cython.locals(raw=bytes, off=cython.Py_ssize_t, pos=cython.Py_ssize_t, stop=cython.Py_ssize_t,
               end=cython.Py_ssize_t, etype=cython.int, out=list)
def extensions(raw: bytes, off: int) -> list[tuple[int, bytes]]:
    out = []
    if off + 2 > len(raw):
        return out
    stop = _vec_end(raw, off, 2)  # the extensions block: raw[off + 2:stop]
    pos = off + 2
    while pos + 4 <= stop:
        etype = (raw[pos] << 8) | raw[pos + 1]
        end = pos + 4 + ((raw[pos + 2] << 8) | raw[pos + 3])
        if end > stop:
            raise ValueError("vector overruns")
        out.append((etype, raw[pos + 4:end]))
        pos = end
    return out


def alpn_names(data: bytes) -> list[str]:
    names: list[str] = []
    try:
        block, _ = vec(data, 0, 2)
        pos = 0
        while pos < len(block):
            name, pos = vec(block, pos, 1)
            names.append(name.decode("latin-1"))
    except ValueError:
        pass
    return names


def ja3_string(version: int, ciphers: list[int], extensions: list[int], groups: list[int],
               point_formats: list[int]) -> str:
    """Salesforce JA3 (or JA3S with groups/point formats omitted by the caller): decimal, GREASE removed."""
    def dash(values: list[int]) -> str:
        return "-".join(str(v) for v in values if not is_grease(v))
    return ",".join([str(version), dash(ciphers), dash(extensions), dash(groups), dash(point_formats)])


def ja4(*, transport: str, version: int, supported_versions: list[int], sni: bool, ciphers: list[int],
        extensions: list[int], alpn: list[str], sig_algs: list[int]) -> str:
    """FoxIO JA4 for a ClientHello (``transport`` "t" TCP, "q" QUIC, "d" DTLS)."""
    offered = [v for v in supported_versions if not is_grease(v)]
    best = max(offered) if offered else version
    ver = JA4_VERSIONS.get(best, "00")
    ciph = [c for c in ciphers if not is_grease(c)]
    exts = [e for e in extensions if not is_grease(e)]
    if alpn and alpn[0]:
        first = alpn[0]
        if first[0].isascii() and first[0].isalnum() and first[-1].isascii() and first[-1].isalnum():
            alpn_part = first[0] + first[-1]
        else:
            hexed = first.encode("latin-1").hex()
            alpn_part = hexed[0] + hexed[-1]
    else:
        alpn_part = "00"
    a = f"{transport}{ver}{'d' if sni else 'i'}{min(len(ciph), 99):02d}{min(len(exts), 99):02d}{alpn_part}"

    def trunc(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    b = trunc(",".join(sorted(f"{c:04x}" for c in ciph))) if ciph else "000000000000"
    ext_list = ",".join(sorted(f"{e:04x}" for e in exts if e not in (0x0000, 0x0010)))
    sigs = ",".join(f"{s:04x}" for s in sig_algs if not is_grease(s))
    c = trunc(f"{ext_list}_{sigs}" if sigs else ext_list) if exts else "000000000000"
    return f"{a}_{b}_{c}"


@functools.lru_cache(maxsize=4096)
def client_fingerprints(version: int, ciphers: tuple[int, ...], ext_types: tuple[int, ...], groups: tuple[int, ...],
                         points: tuple[int, ...], versions: tuple[int, ...], sni: bool, alpn: tuple[str, ...],
                         sig_algs: tuple[int, ...]) -> tuple[str, str]:
    """(JA3 as its MD5, JA4) of a ClientHello; cached, since a network's clients repeat themselves."""
    ja3 = ja3_string(version, list(ciphers), list(ext_types), list(groups), list(points))
    return (hashlib.md5(ja3.encode()).hexdigest(),
            ja4(transport="t", version=version, supported_versions=list(versions), sni=sni, ciphers=list(ciphers),
                extensions=list(ext_types), alpn=list(alpn), sig_algs=list(sig_algs)))
