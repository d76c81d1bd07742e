"""The story's Markdown tables (``--format md`` of timeline, incidents, accounts, data-at-risk)."""

from __future__ import annotations

from analysis.story.markdown import markdown_table


def test_cells_and_times():
    rows = [{"ts": 1_700_000_000.5, "kind": "alert", "desc": "a|b\nc", "hosts": ["10.0.0.1", "10.0.0.2"],
             "admin": True, "left": False, "last_ts": None}]
    assert markdown_table(rows, ["ts", "kind", "desc", "hosts", "admin", "left", "last_ts"], times=("ts", "last_ts")) == (
        "| ts | kind | desc | hosts | admin | left | last_ts |\n|---|---|---|---|---|---|---|\n"
        "| 2023-11-14T22:13:20.500000Z | alert | a\\|b c | 10.0.0.1; 10.0.0.2 | yes | no |  |\n")
    assert markdown_table([], ["a"]) == "| a |\n|---|\n"
