"""PCRE, as Suricata's rules write it, rewritten for Python's ``re``: the constructs spelt
differently are translated, the ones ``re`` lacks are refused with the reason."""

from __future__ import annotations

import re
from collections.abc import Mapping

from analysis.rules.model import RuleSyntaxError

_POSIX_CLASSES: Mapping[str, str] = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r"\t\n\v\f\r ", "blank": r"\t ", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "word": r"\w", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
    "ascii": r"\x00-\x7f",
}


_UNSUPPORTED_ESCAPES = {"R": "\\R (any newline)", "K": "\\K (reset match start)", "X": "\\X",
                        "C": "\\C", "p": "\\p{} (Unicode property)", "P": "\\P{} (Unicode property)",
                        "G": "\\G"}


def pcre_to_python(src: str) -> str:
    """Rewrite the PCRE constructs Python's ``re`` spells differently; raise RuleSyntaxError for
    those it lacks. (?<name>, \\k<name>, \\z, \\Z, \\h, \\e, \\x{..}, \\Q..\\E, [:alpha:]."""
    out: list[str] = []
    i, n = 0, len(src)
    in_class = False
    while i < n:
        ch = src[i]
        if ch == "\\" and i + 1 < n:
            nxt = src[i + 1]
            if nxt == "Q":
                end = src.find("\\E", i + 2)
                end = n if end < 0 else end
                out.append(re.escape(src[i + 2:end]))
                i = end + 2
                continue
            if nxt == "E":
                i += 2
                continue
            if nxt in _UNSUPPORTED_ESCAPES:
                raise RuleSyntaxError(f"pcre: {_UNSUPPORTED_ESCAPES[nxt]} is not supported by Python re")
            if nxt == "z" and not in_class:
                out.append("\\Z")
            elif nxt == "Z" and not in_class:
                out.append("(?=\\n?\\Z)")
            elif nxt in "hH":
                body = "\\t \\xa0"
                out.append(body if in_class and nxt == "h" else (f"[{body}]" if nxt == "h" else f"[^{body}]"))
            elif nxt == "e":
                out.append("\\x1b")
            elif nxt == "x" and i + 2 < n and src[i + 2] == "{":
                end = src.find("}", i + 3)
                digits = src[i + 3:end] if end > 0 else ""
                if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits) or int(digits, 16) > 255:
                    raise RuleSyntaxError(f"pcre: invalid \\x{{{digits}}}")
                out.append(f"\\x{int(digits, 16):02x}")
                i = end + 1
                continue
            elif nxt == "x":
                j = i + 2
                while j < n and j < i + 4 and src[j] in "0123456789abcdefABCDEF":
                    j += 1
                out.append(f"\\x{int(src[i + 2:j] or '0', 16):02x}")
                i = j
                continue
            elif nxt == "g" and (m := re.match(r"\{?(\d+)\}?", src[i + 2:])):
                out.append(f"(?:\\{m.group(1)})")
                i += 2 + m.end()
                continue
            elif nxt == "k" and i + 2 < n and src[i + 2] in "<{'":
                close = {"<": ">", "{": "}", "'": "'"}[src[i + 2]]
                end = src.find(close, i + 3)
                if end < 0:
                    raise RuleSyntaxError("pcre: unterminated \\k")
                out.append(f"(?P={src[i + 3:end]})")
                i = end + 1
                continue
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "[" and src.startswith("[:", i):
                end = src.find(":]", i + 2)
                name = src[i + 2:end] if end > 0 else ""
                negate = name.startswith("^")
                if name.lstrip("^") in _POSIX_CLASSES and not negate:
                    out.append(_POSIX_CLASSES[name])
                    i = end + 2
                    continue
                raise RuleSyntaxError(f"pcre: POSIX class [:{name}:] is not supported")
            if ch == "[":
                out.append("\\[")
                i += 1
                continue
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and src[i] == "^":
                out.append("^")
                i += 1
            if i < n and src[i] == "]":  # a leading ] is a literal in PCRE
                out.append("\\]")
                i += 1
            continue
        elif ch == "(" and src.startswith("(?<", i) and i + 3 < n and src[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
            continue
        elif ch == "(" and src.startswith("(*", i):
            raise RuleSyntaxError("pcre: (*VERB) control is not supported by Python re")
        out.append(ch)
        i += 1
    return "".join(out)
