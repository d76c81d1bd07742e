"""The owner's report (issue 20): the breach story told for a shop owner, an insurer and the
police, and exported for other tools.

    render_html(story, timeline, meta)      one self-contained HTML file (inline CSS and SVG)
    render_markdown(story, timeline, meta)  the same content as Markdown
    render_json(story, timeline, meta)      the facts: Story.to_dict() plus the timeline
    to_stix(story)                          a STIX 2.1 bundle (stix2)
    attack_layer(story)                     an ATT&CK Navigator layer (dict)

Everything here works on ``analysis.story.model`` objects only; finding the story in a store is
``analysis.story``'s business. Heavy imports (Jinja2, matplotlib, stix2) happen inside the
functions that need them.
"""

from analysis.report.meta import ReportMeta
from analysis.report.render import EmptyReportError, render_html, render_json, render_markdown
from analysis.report.stix import attack_layer, to_stix
from analysis.report.write import ReportWriteError, write_atomically

__all__ = ["EmptyReportError", "ReportMeta", "ReportWriteError", "attack_layer", "render_html", "render_json",
           "render_markdown", "to_stix", "write_atomically"]
