"""The owner's report as one self-contained HTML file, as Markdown, or as the JSON facts behind it.

    html = render_html(story, timeline, meta)      # inline CSS and SVG, no network fetch
    text = render_markdown(story, timeline, meta)  # the same content for a ticket or an e-mail
    data = render_json(story, timeline, meta)      # Story.to_dict() plus the timeline

Templates are package data (``analysis/report/templates``) loaded through Jinja2's PackageLoader,
so an installed wheel finds them. Every string the templates print passes through
``mask_pans``: a card number never reaches the report whole, whatever the story holds.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from analysis.report.charts import ChartError, graph_edges, host_graph_svg, timeline_svg
from analysis.report.facts import build_view, mask_pans
from analysis.report.meta import ReportMeta
from analysis.story.model import Story, TimelineEvent, rfc3339
from recorder.core.errors import WiretrailError


class EmptyReportError(WiretrailError):
    """Nothing was recorded in the store (or in the time range asked for): no report to write."""


def _finalize(value: Any) -> Any:
    """Every printed value: None as nothing, plain text with card numbers masked. Markup (the
    pictures, macro output made of values already finalized) passes as it is."""
    from markupsafe import Markup

    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return mask_pans(value) if isinstance(value, str) else value


def _md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipe, no line break."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _environment(autoescape: bool):
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("analysis.report", "templates"),
                             autoescape=autoescape, finalize=_finalize, undefined=jinja2.StrictUndefined,
                             trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
    env.filters["cell"] = _md_cell
    return env


def check_not_empty(story: Story, meta: ReportMeta) -> None:
    """Raise EmptyReportError when the story rests on no recorded traffic at all."""
    if story.first_ts_ns is None and not story.incidents and not story.data_at_risk:
        span = ""
        if meta.since_ns or meta.until_ns:
            span = f" between {rfc3339(meta.since_ns) or 'the start'} and {rfc3339(meta.until_ns) or 'the end'}"
        raise EmptyReportError(f"{meta.database}: nothing recorded{span}: no report written")


def render_html(story: Story, timeline: list[TimelineEvent], meta: ReportMeta) -> str:
    """The report as one HTML document with its CSS and pictures inline (opens from a USB stick)."""
    check_not_empty(story, meta)
    view = build_view(story, timeline, meta)
    css = resources.files("analysis.report").joinpath("templates/report.css").read_text(encoding="utf-8")
    graph_svg, graph_error = "", ""
    if story.incidents:
        try:
            graph_svg = host_graph_svg(story, timeline)
        except ChartError as err:
            graph_error = str(err)
    else:
        graph_error = "no incident, so no attacker movement to draw"
    chart = timeline_svg(story, timeline) if story.incidents or timeline else ""
    return _environment(True).get_template("report.html.j2").render(
        v=view, css=css, timeline_svg=chart, graph_svg=graph_svg, graph_error=graph_error)


def render_markdown(story: Story, timeline: list[TimelineEvent], meta: ReportMeta) -> str:
    """The same content as Markdown (tables for the pictures), for a ticket or an e-mail."""
    check_not_empty(story, meta)
    view = build_view(story, timeline, meta)
    return _environment(False).get_template("report.md.j2").render(v=view, edges=graph_edges(story, timeline))


def render_json(story: Story, timeline: list[TimelineEvent], meta: ReportMeta) -> str:
    """The facts behind the report: ``Story.to_dict()``, the timeline and the report's meta."""
    check_not_empty(story, meta)
    doc = story.to_dict()
    doc["timeline"] = [e.to_dict() for e in timeline]
    doc["report"] = {"wiretrail_version": meta.version, "generated": rfc3339(meta.generated_ns),
                     "database": meta.database, "since": rfc3339(meta.since_ns), "until": rfc3339(meta.until_ns),
                     "chain_check": meta.chain_check, "chain_ok": meta.chain_ok, "commands": list(meta.commands)}
    return json.dumps(_masked(doc), indent=1, ensure_ascii=False) + "\n"


def _masked(obj: Any) -> Any:
    """``obj`` with card numbers masked in every string (the JSON facts never hold one whole either)."""
    if isinstance(obj, str):
        return mask_pans(obj)
    if isinstance(obj, dict):
        return {k: _masked(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_masked(v) for v in obj]
    return obj
