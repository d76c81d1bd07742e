"""The report's two pictures as inline SVG: a timeline chart (matplotlib's SVG backend) and a
graph of hosts with the attackers' movement (Graphviz ``dot -Tsvg``). Layout is the libraries'
business, not ours: this module only says what to draw.

Both are deterministic for the same input (matplotlib's ``svg.hashsalt`` fixed, no date in the
metadata; dot is deterministic) and keep text as text (``svg.fonttype: none``) so a printed PDF
stays searchable. matplotlib is imported inside the function that needs it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, datetime

from analysis.story.model import STAGE_ORDER, Story, TimelineEvent

STAGE_COLOURS = {
    "reconnaissance": "#8da0cb", "initial-access": "#e41a1c", "execution": "#ff7f00", "persistence": "#a65628",
    "privilege-escalation": "#f781bf", "credential-access": "#984ea3", "discovery": "#66c2a5",
    "lateral-movement": "#377eb8", "collection": "#4daf4a", "command-and-control": "#b15928",
    "exfiltration": "#000000", "impact": "#999999",
}
MAX_LANES = 10  # incidents drawn as lanes; other alerts share one lane
MAX_GRAPH_EDGES = 80
DOT_TIMEOUT_S = 60


class ChartError(Exception):
    """A picture could not be drawn (Graphviz missing or failing); the report says so in its place."""


def _dt(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)


def timeline_svg(story: Story, timeline: list[TimelineEvent]) -> str:
    """Incidents as lanes with their stages as coloured bars over time; alerts outside the drawn
    incidents as dots in an "other alerts" lane."""
    import matplotlib
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    incidents = list(story.incidents[:MAX_LANES])
    lanes = [i.id for i in incidents]
    drawn = set(lanes)
    others = [e for e in timeline if e.severity is not None and e.incident not in drawn]
    height = 1.2 + 0.45 * (len(lanes) + (1 if others else 0))
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "wiretrail", "font.size": 9,
                                "font.family": "sans-serif"}):
        fig = Figure(figsize=(10, height))
        ax = fig.add_subplot()
        used: list[str] = []
        for y, inc in enumerate(incidents):
            span = max(inc.last_ts_ns - inc.first_ts_ns, 1)
            ax.broken_barh([(mdates.date2num(_dt(inc.first_ts_ns)), span / 86400e9)], (y - 0.35, 0.7),
                           facecolors="#eeeeee", edgecolors="#bbbbbb")
            for st in inc.stages:
                width = max(st.last_ts_ns - st.first_ts_ns, span // 200, 1) / 86400e9
                ax.broken_barh([(mdates.date2num(_dt(st.first_ts_ns)), width)], (y - 0.25, 0.5),
                               facecolors=STAGE_COLOURS.get(st.name, "#666666"))
                if st.name not in used:
                    used.append(st.name)
        if others:
            y = len(lanes)
            lanes.append(f"other alerts ({sum(e.count for e in others)})")
            # one tick per slot of 1/500 of the time span: thousands of alerts stay a small picture
            lo = min(e.ts_ns for e in others)
            slot = max((max(e.ts_ns for e in others) - lo) // 500, 1)
            ticks = sorted({lo + (e.ts_ns - lo) // slot * slot for e in others})
            ax.scatter([_dt(t) for t in ticks], [y] * len(ticks), s=12, c="#d62728", marker="|")
        ax.set_yticks(range(len(lanes)), labels=lanes)
        ax.set_ylim(len(lanes) - 0.5, -0.5)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M", tz=UTC))
        ax.set_xlabel("time (UTC)")
        ax.grid(axis="x", color="#dddddd")
        for tick in ax.get_xticklabels():
            tick.set_rotation(20)
        used.sort(key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else 99)
        if used:
            ax.legend(handles=[Patch(color=STAGE_COLOURS.get(n, "#666666"), label=n) for n in used],
                      loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _inline(buf.getvalue())


def _inline(svg: str) -> str:
    """An SVG document as an element to put inside HTML: no XML prolog, DOCTYPE or comments."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _graph(story: Story, timeline: list[TimelineEvent]):
    """Each host's role and the arrows between hosts (source, destination) -> label counts."""
    incidents = list(story.incidents[:MAX_LANES])
    ids = {i.id for i in incidents}
    role: dict[str, str] = {}
    for inc in incidents:
        for h in inc.hosts:
            role.setdefault(h, "host")
        for v in inc.victims:
            role[v] = "victim"
    for inc in incidents:
        for x in inc.exfiltration:
            role.setdefault(x.destination, "exfil")
        for a in inc.attackers:
            role[a.address] = "attacker"
        if inc.patient_zero:
            role[inc.patient_zero] = "patient_zero"
    edges: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for e in timeline:
        if e.incident in ids and e.src and e.dst and e.src != e.dst:
            label = e.technique.split(" ", 1)[-1] if e.technique else e.kind
            edges[(e.src, e.dst)][label] += e.count
            role.setdefault(e.src, "host")
            role.setdefault(e.dst, "host")
    for inc in incidents:
        for x in inc.exfiltration:
            edges[(x.host, x.destination)][f"data out ({x.channel})"] += 1
        if inc.patient_zero:
            for a in inc.attackers:
                if (a.address, inc.patient_zero) not in edges and a.address != inc.patient_zero:
                    edges[(a.address, inc.patient_zero)]["attack"] += 1
    ranked = sorted(edges.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:MAX_GRAPH_EDGES]
    return role, sorted(ranked)


def _label(labels: Counter) -> str:
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in labels.most_common(3))


def graph_edges(story: Story, timeline: list[TimelineEvent]) -> list[dict[str, str]]:
    """The host graph's arrows as rows (``src``, ``dst``, ``label``): the Markdown report's table."""
    return [{"src": s, "dst": d, "label": _label(labels)} for (s, d), labels in _graph(story, timeline)[1]]


def graph_dot(story: Story, timeline: list[TimelineEvent]) -> str:
    """The host graph in Graphviz's language: attackers red, patient zero orange, other victims
    yellow, destinations of data that left black; arrows for what went from one host to another."""
    role, edges = _graph(story, timeline)
    style = {"attacker": 'fillcolor="#e41a1c" fontcolor="white"', "patient_zero": 'fillcolor="#ff7f00"',
             "victim": 'fillcolor="#ffd92f"', "exfil": 'fillcolor="#333333" fontcolor="white"',
             "host": 'fillcolor="#eeeeee"'}
    words = {"attacker": "attacker", "patient_zero": "patient zero", "victim": "taken over", "exfil": "data sent to",
             "host": ""}
    lines = ["digraph hosts {", '  rankdir=LR; bgcolor="transparent";',
             '  node [shape=box style="filled,rounded" fontname="Helvetica" fontsize=10];',
             '  edge [fontname="Helvetica" fontsize=8 color="#555555"];']
    for host in sorted(role):
        label = _q(host)[:-1] + (f"\\n{words[role[host]]}" if words[role[host]] else "") + '"'
        lines.append(f"  {_q(host)} [label={label} {style[role[host]]}];")
    for (src, dst), labels in edges:
        colour = ' color="#e41a1c" penwidth=2' if role.get(src) == "attacker" else ""
        lines.append(f"  {_q(src)} -> {_q(dst)} [label={_q(_label(labels))}{colour}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def host_graph_svg(story: Story, timeline: list[TimelineEvent]) -> str:
    """The host graph laid out by Graphviz's dot, as inline SVG; ChartError when dot is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise ChartError("Graphviz's dot is not installed (Debian package graphviz)")
    try:
        done = subprocess.run([dot, "-Tsvg"], input=graph_dot(story, timeline), capture_output=True, text=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ChartError(f"Graphviz's dot took longer than {DOT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise ChartError(f"Graphviz's dot failed: {done.stderr.strip().splitlines()[-1:]}")
    return _inline(done.stdout)
