"""Internet messages (RFC 5322 / MIME): the one home of MIME parsing, for mail and for HTTP bodies.

``split_headers`` reads the top-level header block the way Zeek's MIME analyzer reports it
(names upper-cased, folded lines joined, values stripped); ``leaf_entities`` walks a message's
MIME tree and yields every leaf body decoded from base64 / quoted-printable, with the file name
from Content-Disposition or Content-Type. A message whose header block never ends (no empty
line) has no body, so no entities, as in Zeek.

HTTP bodies (``body_leaves``, ``multipart_parts``, ``param``): the headers come apart (the HTTP
message's Content-Type), parts are raw byte slices (no transfer decoding, line ends kept, so a
carved binary upload keeps its hash), message/* parts are walked into. The mail walk rebuilds
lines with CRLF and decodes base64 / quoted-printable as Zeek's SMTP files are; the two are not
merged because their outputs differ in exactly these ways.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_PARTS = 1000  # leaf entities taken from one message
MAX_DEPTH = 20  # nesting of multipart entities followed

_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)
_EMAIL = re.compile(r"(?:^|[<,:\s])([^<,:\s@]+@[^>,;\s]+)(?=[>,;\s]|$)")
_MIME_ADDR = re.compile(r'\s*(?:"[^"]*"[^,]*|[^,]+)')
_PARAM = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_IPV4 = re.compile(r"(?<![\d.])((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3})(?![\d.])")


@dataclass(frozen=True, slots=True)
class Entity:
    """One leaf of a message's MIME tree, its body decoded."""

    body: bytes
    mime_type: str | None  # from Content-Type, lower case, no parameters
    filename: str | None
    depth: int  # 1 for a single-part message, more inside multiparts


def header_end(raw: bytes) -> int:
    """Index where the body starts (after the empty line), or -1 while the header block goes on."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        return 2 if raw.startswith(b"\r\n") else 1
    return m.end() if m else -1


def split_headers(raw: bytes) -> list[tuple[str, str]]:
    """The header fields of a message or entity: [(NAME, value)], folded lines unfolded."""
    end = header_end(raw)
    block = raw if end < 0 else raw[:end]
    fields: list[tuple[str, str]] = []
    for line in re.split(rb"\r?\n", block):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, (value + " " + _text(line).strip()).strip())
            continue
        m = _HEADER_NAME.match(line)
        if m:
            fields.append((_text(m.group(1)).upper(), _text(m.group(2)).strip()))
    return fields


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def email_addrs(text: str) -> list[str]:
    """Zeek's ``extract_email_addrs_vec``: bare addresses in order of appearance."""
    return [m.group(1).strip("<>,:; \t") for m in _EMAIL.finditer(text)]


def mime_addresses(value: str) -> list[str]:
    """Zeek's ``split_mime_email_addresses``: the comma-separated parts of an address header
    (a comma inside a quoted display name does not split, also after a space, unlike Zeek)."""
    seen: list[str] = []
    for m in _MIME_ADDR.finditer(value):
        part = m.group(0).strip()
        if part and part not in seen:
            seen.append(part)
    return seen


def ipv4_addresses(text: str) -> list[str]:
    return _IPV4.findall(text)


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=1; b="x;y"`` -> ("type/subtype", {"a": "1", "b": "x;y"}), names lower case."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        val = m.group(2)
        params.setdefault(m.group(1).lower(), val[1:-1].replace('\\"', '"') if val.startswith('"') else val)
    return main.strip().lower(), params


def _filename(fields: dict[str, str]) -> str | None:
    for header, key in (("CONTENT-DISPOSITION", "filename"), ("CONTENT-TYPE", "name")):
        params = header_params(fields.get(header, ""))[1]
        if params.get(key):
            return params[key]
        star = params.get(key + "*")
        if star:  # RFC 2231: charset'language'percent-encoded
            charset, _, rest = star.partition("'")
            return _unquote(rest.partition("'")[2], charset)
        joined = _continued(params, key)
        if joined:
            return joined
    return None


def _unquote(text: str, charset: str) -> str:
    from urllib.parse import unquote

    try:
        return unquote(text, encoding=charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return unquote(text, errors="replace")


def _continued(params: dict[str, str], key: str) -> str | None:
    """An RFC 2231 parameter continued over ``key*0``, ``key*1``... (``key*N*``: percent-encoded,
    the charset given by the first part), as mail clients split a long file name."""
    parts: list[tuple[int, bool, str]] = []
    for name, value in params.items():
        head, star, rest = name.partition("*")
        if head != key or not star:
            continue
        number, encoded = (rest[:-1], True) if rest.endswith("*") else (rest, False)
        if number.isdigit():
            parts.append((int(number), encoded, value))
    if not parts:
        return None
    parts.sort()
    charset = ""
    out = []
    for number, encoded, value in parts:
        if encoded and number == 0:
            charset, _, rest = value.partition("'")
            value = rest.partition("'")[2]
        out.append(_unquote(value, charset) if encoded else value)
    return "".join(out) or None


def _decode(lines: list[bytes], encoding: str, last_crlf: bool) -> bytes:
    """A leaf body as Zeek's MIME analyzer delivers it: base64 decoded; quoted-printable decoded
    with CRLF after every hard line break; anything else with CRLF between lines and after the
    last one only when the body ends with the message (the CRLF before a boundary is the
    boundary's)."""
    if encoding == "base64":
        text = re.sub(rb"[^A-Za-z0-9+/]", b"", b"".join(lines).split(b"=", 1)[0])
        text = text[:-1] if len(text) % 4 == 1 else text + b"=" * (-len(text) % 4)
        try:
            return binascii.a2b_base64(text)
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        out = bytearray()
        for line in lines:
            line = line.rstrip(b" \t")
            soft = line.endswith(b"=")
            out += binascii.a2b_qp(line[:-1] if soft else line)
            if not soft:
                out += b"\r\n"
        return bytes(out)
    return b"\r\n".join(lines) + (b"\r\n" if last_crlf else b"")


def leaf_entities(raw: bytes) -> Iterator[Entity]:
    """Every non-empty leaf body of the message ``raw`` (headers included), decoded.

    Multipart entities are split on their boundary (preamble and epilogue dropped); message/*
    parts are leaves, as in Zeek.
    """
    if header_end(raw) < 0:
        return
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in raw.split(b"\n")]
    ends_with_newline = bool(lines) and not lines[-1]
    if ends_with_newline:
        lines.pop()
    stack = [(0, len(lines), 1)]
    count = 0
    while stack and count < MAX_PARTS:
        start, stop, depth = stack.pop()
        k = start
        while k < stop and lines[k]:
            k += 1
        fields = dict(split_headers(b"\r\n".join(lines[start:k])))
        ctype, params = header_params(fields.get("CONTENT-TYPE", ""))
        body = (k + 1, stop)
        boundary = params.get("boundary")
        if ctype.startswith("multipart/") and boundary and depth < MAX_DEPTH:
            delim = b"--" + boundary.encode("utf-8", "replace")
            children: list[tuple[int, int, int]] = []
            begin = None
            for i in range(*body):
                line = lines[i]
                if not line.startswith(delim):
                    continue
                rest = line[len(delim):].rstrip(b" \t")
                if rest not in (b"", b"--"):
                    continue
                if begin is not None:
                    children.append((begin, i, depth + 1))
                begin = None if rest == b"--" else i + 1
                if rest == b"--":
                    break
            if begin is not None:
                children.append((begin, stop, depth + 1))
            stack.extend(reversed(children))
            continue
        if body[0] >= stop:
            continue
        data = _decode(lines[body[0]:stop], fields.get("CONTENT-TRANSFER-ENCODING", "").strip().lower(),
                       ends_with_newline and stop == len(lines))
        if not data:
            continue
        count += 1
        yield Entity(body=data, mime_type=ctype or None, filename=_filename(fields), depth=depth)


# -- bodies as HTTP carries them (headers apart, no transfer decoding) --

MAX_BODY_DEPTH = 30  # nested multipart/message entities followed into a body


def param(value: str, name: str) -> str | None:
    m = re.search(r'(?:^|;)\s*' + re.escape(name) + r'\s*=\s*(?:"([^"]*)"|([^;\s]*))', value, re.I)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def body_leaves(ctype: str, body: bytes, depth: int) -> list[tuple[bytes, str | None]]:
    """The leaf entities of a MIME body (multipart parts, message/* inside): (content, filename)."""
    low = ctype.lower()
    if depth >= MAX_BODY_DEPTH:
        return []
    if low.startswith("message/"):
        head, content = split_head(body)
        return body_leaves(head_value(head, b"content-type"), content, depth + 1)
    boundary = param(ctype, "boundary") if low.startswith("multipart/") else None
    if not boundary:
        return [(body, None)]
    leaves: list[tuple[bytes, str | None]] = []
    for disp, head, content in multipart_parts(body, boundary):
        sub = head_value(head, b"content-type")
        if sub.lower().startswith(("multipart/", "message/")):
            leaves += body_leaves(sub, content, depth + 1)
        elif content:
            leaves.append((content, param(disp, "filename")))
    return leaves


def split_head(piece: bytes) -> tuple[bytes, bytes]:
    head, sep, content = piece.partition(b"\r\n\r\n")
    if not sep:
        head, sep, content = piece.partition(b"\n\n")
    return (head, content) if sep else (piece, b"")


def head_value(head: bytes, name: bytes) -> str:
    for hline in re.split(rb"\r?\n", head):
        hname, _, value = hline.partition(b":")
        if hname.strip().lower() == name:
            return value.strip().decode("utf-8", "replace")
    return ""


def multipart_parts(body: bytes, boundary: str) -> list[tuple[str, bytes, bytes]]:
    """The parts of a multipart body: (Content-Disposition, headers, content)."""
    delim = b"--" + boundary.encode("latin-1", "replace")
    parts = []
    for piece in body.split(delim)[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece.startswith(b"\n") else piece
        head, content = split_head(piece)
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        parts.append((head_value(head, b"content-disposition"), head, content))
    return parts
