"""Internet messages (RFC 5322 / MIME): the one home of MIME parsing, for mail and for HTTP bodies.

``split_headers`` reads the top-level header block the way Zeek's MIME analyzer reports it
(names upper-cased, folded lines joined, values stripped); ``leaf_entities`` walks a message's
MIME tree and yields every leaf body decoded from base64 / quoted-printable, with the file name
from Content-Disposition or Content-Type. A message whose header block never ends (no empty
line) has no body, so no entities, as in Zeek.

One walk (``walk``) takes both kinds of body apart: it finds a multipart entity's boundary,
splits its parts, reads their headers and walks into nested multiparts, yielding each leaf as
raw bytes (``Part``: header block and content, no transfer decoding, line ends kept). The bytes
are read in one of two dialects (``Dialect``), which read a malformed body differently (so
neither replaces the other without changing records): mail (``MAIL``, as Zeek's MIME analyzer)
takes a delimiter only as a whole line and ends a part's headers at its first empty line; HTTP
(``HTTP``) takes ``--boundary`` anywhere in the bytes, ends the headers at the first CRLFCRLF
(else LFLF), takes the first of a repeated header, and walks into message/* entities. Each
caller then does its own small step: ``leaf_entities`` rebuilds lines with CRLF and decodes
base64 / quoted-printable as Zeek's SMTP files are; ``body_leaves`` keeps the raw slices (a
carved binary upload keeps its hash) with the part's file name.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator
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


# -- the walk: one tree walk, two dialects of the bytes it reads --


@dataclass(frozen=True, slots=True)
class Part:
    """One leaf of a MIME tree as it lies in the bytes: no transfer decoding, line ends kept."""

    head: bytes  # the entity's header block (b"" when the headers were the carrier's)
    content_type: str  # its Content-Type value as written (parameters included)
    body: bytes | None  # its content, the line end before a delimiter left out (mail: its CR stays);
    # None: the header block never ended, or nothing followed it
    depth: int
    to_end: bool  # the content runs to the end of the walked bytes (no delimiter closed it)
    wrapped: bool  # the entity is the body of a message/* entity walked into


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a multipart body is read: where delimiters are, where a part's headers end, which
    header value counts; and how deep the walk goes. MAIL and HTTP below are the two in use."""

    split: Callable[[bytes, str], list[tuple[bytes, bytes | None, bool]]]  # -> [(head, content, to end)]
    content_type: Callable[[bytes], str]  # a header block -> its Content-Type value
    params: Callable[[str], tuple[str, str | None]]  # a Content-Type value -> (type lower case, boundary)
    split_head: Callable[[bytes], tuple[bytes, bytes]] | None  # walks into message/* when given
    max_depth: int  # a multipart (or walked message/*) entity this deep is not split ...
    deep_leaf: bool  # ... but taken as a leaf (True) or dropped (False)


def walk(head: bytes, content_type: str, body: bytes | None, dialect: Dialect, depth: int) -> Iterator[Part]:
    """The leaves of the entity (``head``, ``body``), in order: multipart entities split on their
    boundary (preamble and epilogue dropped) and walked into, message/* ones too when the dialect
    says so, every other entity a leaf (empty ones included: the caller decides)."""
    stack = [(head, content_type, body, depth, True, False)]
    while stack:
        head, ctype, body, depth, to_end, wrapped = stack.pop()
        kind, boundary = dialect.params(ctype)
        multipart = kind.startswith("multipart/")
        message = dialect.split_head is not None and kind.startswith("message/")
        if (multipart or message) and depth >= dialect.max_depth:
            if not dialect.deep_leaf:
                continue
        elif message and body is not None:
            inner, content = dialect.split_head(body)
            stack.append((inner, dialect.content_type(inner), content, depth + 1, to_end, True))
            continue
        elif multipart and boundary:
            if body is not None:
                children = [(h, dialect.content_type(h), c, depth + 1, to_end and last, False)
                            for h, c, last in dialect.split(body, boundary)]
                stack.extend(reversed(children))
            continue
        yield Part(head, ctype, body, depth, to_end, wrapped)


# -- mail (Zeek's MIME analyzer): delimiters and the end of a part's headers are whole lines --


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _cr_stripped_lines(text: bytes) -> list[bytes]:
    """``text``'s lines, each without the CR ending it (one)."""
    lines = text.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1].endswith(b"\r"):
        lines[-1] = lines[-1][:-1]
    return lines


def _mail_entity(text: bytes, start: int, stop: int) -> tuple[bytes, bytes | None]:
    """The whole lines ``text[start:stop]`` (``stop`` at the LF ending the last one, or the end)
    as (header block, content): the headers end at the first empty line; each runs to the LF
    ending its last line, left out with what follows (a delimiter line, the empty line); a CR
    before that LF stays, as every line keeps its own until the mail step."""
    if start > stop:  # no line at all
        return b"", None
    pos = start
    while True:
        end = text.find(b"\n", pos, stop)
        end = stop if end < 0 else end
        if pos == end or (end - pos == 1 and text[pos] == 13):  # an empty line (a CR at most)
            return (text[start:pos - 1] if pos > start else b""), (text[end + 1:stop] if end < stop else None)
        if end >= stop:
            return text[start:stop], None
        pos = end + 1


def _mail_split(text: bytes, boundary: str) -> list[tuple[bytes, bytes | None, bool]]:
    """The parts between delimiter lines (``--boundary``, ``--boundary--`` closing; trailing
    blanks allowed, the rest of such a line must be empty)."""
    delim = b"--" + boundary.encode("utf-8", "replace")
    size = len(text)
    spans: list[tuple[int, int, bool]] = []
    begin = -1  # where the open part starts, -1: none open
    pos = 0
    while pos <= size:
        i = text.find(delim, pos)
        if i < 0:
            break
        if i > 0 and text[i - 1] != 10:  # not at a line's start
            pos = i + 1
            continue
        end = text.find(b"\n", i)
        end = size if end < 0 else end
        pos = end + 1
        line = _strip_cr(text[i:end])
        if not line.startswith(delim):
            continue
        rest = line[len(delim):].rstrip(b" \t")
        if rest not in (b"", b"--"):
            continue
        if begin >= 0:
            spans.append((begin, i - 1, False))
        if rest == b"--":
            begin = -1
            break
        begin = end + 1
    if begin >= 0:
        spans.append((begin, size, True))
    out: list[tuple[bytes, bytes | None, bool]] = []
    for start, stop, last in spans:
        head, content = _mail_entity(text, start, stop)
        out.append((head, content, last))
    return out


def _mail_content_type(head: bytes) -> str:
    return dict(split_headers(head)).get("CONTENT-TYPE", "")


def _mail_params(ctype: str) -> tuple[str, str | None]:
    kind, params = header_params(ctype)
    return kind, params.get("boundary")


MAIL = Dialect(split=_mail_split, content_type=_mail_content_type, params=_mail_params, split_head=None,
               max_depth=MAX_DEPTH, deep_leaf=True)


def leaf_entities(raw: bytes) -> Iterator[Entity]:
    """Every non-empty leaf body of the message ``raw`` (headers included), decoded.

    Multipart entities are split on their boundary (preamble and epilogue dropped); message/*
    parts are leaves, as in Zeek. Bodies come back as Zeek's SMTP files are: lines rebuilt with
    CRLF, base64 / quoted-printable decoded.
    """
    if header_end(raw) < 0:
        return
    trailing = raw.endswith((b"\n", b"\n\r"))  # a last line ending the message ends with CRLF
    text = raw[:-1] if raw.endswith(b"\n") else raw[:-2] if trailing else raw
    head, body = _mail_entity(text, 0, len(text))
    count = 0
    for part in walk(head, _mail_content_type(head), body, MAIL, 1):
        if part.body is None:
            continue
        fields = dict(split_headers(part.head))
        data = _decode(_cr_stripped_lines(part.body),
                       fields.get("CONTENT-TRANSFER-ENCODING", "").strip().lower(), trailing and part.to_end)
        if not data:
            continue
        count += 1
        yield Entity(body=data, mime_type=header_params(part.content_type)[0] or None,
                     filename=_filename(fields), depth=part.depth)
        if count >= MAX_PARTS:
            return


# -- HTTP bodies (as Suricata reads them): a delimiter anywhere in the bytes, the headers apart
# (the HTTP message's Content-Type), parts as raw byte slices so a carved upload keeps its hash --

MAX_BODY_DEPTH = 30  # nested multipart/message entities followed into a body


def param(value: str, name: str) -> str | None:
    m = re.search(r'(?:^|;)\s*' + re.escape(name) + r'\s*=\s*(?:"([^"]*)"|([^;\s]*))', value, re.I)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


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


def _http_split(body: bytes, boundary: str) -> list[tuple[bytes, bytes | None, bool]]:
    delim = b"--" + boundary.encode("latin-1", "replace")
    parts: list[tuple[bytes, bytes | None, bool]] = []
    for piece in body.split(delim)[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece.startswith(b"\n") else piece
        head, content = split_head(piece)
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        parts.append((head, content, False))
    return parts


def _http_content_type(head: bytes) -> str:
    return head_value(head, b"content-type")


def _http_params(ctype: str) -> tuple[str, str | None]:
    low = ctype.lower()
    return low, (param(ctype, "boundary") if low.startswith("multipart/") else None)


HTTP = Dialect(split=_http_split, content_type=_http_content_type, params=_http_params, split_head=split_head,
               max_depth=MAX_BODY_DEPTH, deep_leaf=False)


def multipart_parts(body: bytes, boundary: str) -> list[tuple[str, bytes, bytes]]:
    """The parts of a multipart body, not walked into: (Content-Disposition, headers, content)."""
    return [(head_value(head, b"content-disposition"), head, content or b"")
            for head, content, _ in _http_split(body, boundary)]


def body_leaves(ctype: str, body: bytes) -> list[tuple[bytes, str | None]]:
    """The non-empty leaf entities of an HTTP body of type ``ctype`` (multipart parts, message/*
    inside): (content, file name). A name comes from a multipart's own part headers only (not
    from inside a message/* walked into, nor for a multipart part without boundary)."""
    leaves: list[tuple[bytes, str | None]] = []
    for part in walk(b"", ctype, body, HTTP, 0):
        if not part.body:
            continue
        name = None
        if part.head and not part.wrapped and not part.content_type.lower().startswith("multipart/"):
            name = param(head_value(part.head, b"content-disposition"), "filename")
        leaves.append((part.body, name))
    return leaves
