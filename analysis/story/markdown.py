"""The story's listings (timeline, incidents, accounts, data at risk) as a Markdown table, as
``--format md`` prints them: one header row, one row per record, times as RFC 3339.

    text = markdown_table(rows, ["ts", "kind", "description"], times=("ts",))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from analysis.story.model import rfc3339


def markdown_cell(value) -> str:
    """One value as a table cell: empty for None, yes/no, lists joined by "; ", pipes escaped,
    newlines as spaces."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        value = "; ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[dict], columns: Sequence[str], *, times: Iterable[str] = ()) -> str:
    """``rows`` as a Markdown table of ``columns``; the ``times`` fields (epoch seconds) as RFC 3339."""
    times = tuple(times)
    out = ["| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"]
    for row in rows:
        row = {**row, **{k: rfc3339(round(row[k] * 1e9)) for k in times if row.get(k) is not None}}
        out.append("| " + " | ".join(markdown_cell(row.get(c)) for c in columns) + " |\n")
    return "".join(out)
