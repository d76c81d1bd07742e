"""Reading Zeek's expected logs and comparing with them the way the shared scorer does
(compare_app.py's norm(), reimplemented: the scorer itself is not imported into the project)."""

from __future__ import annotations


def parse_zeek(text: str) -> list[dict]:
    """Rows of a Zeek ASCII log, as dicts of field name -> text."""
    fields, rows = None, []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("#") or not line.strip():
            continue
        elif fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def norm(v: object) -> str | None:
    """Unset and empty alike; booleans as Zeek writes them; sets compared sorted."""
    if v is None or v in ("-", "(empty)", ""):
        return None
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, list):
        return ",".join(sorted(str(x) for x in v)) or None
    if isinstance(v, str) and "," in v:
        return ",".join(sorted(v.split(",")))
    return str(v)
