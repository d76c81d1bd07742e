"""From a story to a report file: the format chosen, the report's own facts gathered (the
evidence-chain check, the commands that reproduce it), the file written whole or not at all.
Shared by ``wiretrail report`` and ``wiretrail replay --report``."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Sequence

from analysis.report.meta import ReportMeta
from analysis.report.render import check_not_empty, render_html, render_json, render_markdown
from analysis.report.stix import attack_layer, to_stix
from analysis.report.write import ReportWriteError, write_atomically
from analysis.story.build import build_story
from analysis.story.model import Story, TimelineEvent, rfc3339
from analysis.story.timeline import build_timeline

FORMATS = ("html", "md", "json", "stix")


def guess_format(path: str) -> str:
    """The format a file name asks for: ``.md`` Markdown, ``.json`` the JSON facts, else HTML."""
    lower = path.lower()
    if lower.endswith((".md", ".markdown")):
        return "md"
    if lower.endswith(".stix.json"):
        return "stix"
    if lower.endswith(".json"):
        return "json"
    return "html"


def check_writable(path: str) -> None:
    """Fail before any work when ``path`` cannot be written (its folder missing or read-only)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ReportWriteError(f"{path}: cannot write: is a directory")
    if not os.path.isdir(folder):
        raise ReportWriteError(f"{path}: cannot write: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportWriteError(f"{path}: cannot write: permission denied on {folder}")


def chain_check(captures: list[dict]) -> tuple[str, bool | None]:
    """The evidence-chain check (`wiretrail verify`) over the store's capture rows, as one line."""
    from recorder.core.evidence import verify

    report = verify(captures, check_files=True)
    if not report.links_checked:
        return ("no capture in this store was sealed by the recorder (ingested or replayed files): "
                "their SHA-256 above is what was read", None)
    summary = (f"{report.links_checked} sealed file record(s) in the chain, {report.files_checked} file(s) "
               f"re-hashed, {report.files_deleted} deleted by retention")
    if report.ok:
        return f"verified: {summary}", True
    return f"NOT verified: {len(report.problems)} problem(s): {'; '.join(report.problems[:5])}; {summary}", False


def reproduce_commands(database: str, out: str, fmt: str, story: Story, *, since_ns: int | None,
                       until_ns: int | None, local_nets: Sequence[str]) -> tuple[str, ...]:
    """The commands that make this report again from the same captures."""
    q = shlex.quote
    opts = [f"--format {fmt}"]
    if since_ns is not None:
        opts.append(f"--since {rfc3339(since_ns)}")
    if until_ns is not None:
        opts.append(f"--until {rfc3339(until_ns)}")
    opts += [f"--local-net {q(n)}" for n in local_nets]
    cmds = []
    unsealed = [c.path for c in story.captures if not c.sealed]
    if unsealed:
        nets = "".join(f" --local-net {q(n)}" for n in local_nets)
        cmds.append(f"wiretrail replay --db case.db{nets} {' '.join(q(p) for p in unsealed)}")
        cmds.append(f"wiretrail report --db case.db --out {q(out)} {' '.join(opts)}")
    else:
        cmds.append(f"wiretrail verify --db {q(database)}")
        cmds.append(f"wiretrail report --db {q(database)} --out {q(out)} {' '.join(opts)}")
    return tuple(cmds)


def make_meta(database: str, out: str, fmt: str, story: Story, captures: list[dict], *,
              since_ns: int | None = None, until_ns: int | None = None, local_nets: Sequence[str] = (),
              company: str | None = None) -> ReportMeta:
    from recorder import __version__

    line, ok = chain_check(captures)
    return ReportMeta(version=__version__, generated_ns=time.time_ns(), database=database, since_ns=since_ns,
                      until_ns=until_ns, chain_check=line, chain_ok=ok, company=company,
                      commands=reproduce_commands(database, out, fmt, story, since_ns=since_ns, until_ns=until_ns,
                                                  local_nets=local_nets))


def render(story: Story, timeline: list[TimelineEvent], meta: ReportMeta, fmt: str) -> str:
    """The report in ``fmt`` (html, md, json or stix) as text."""
    if fmt == "html":
        return render_html(story, timeline, meta)
    if fmt == "md":
        return render_markdown(story, timeline, meta)
    if fmt == "json":
        return render_json(story, timeline, meta)
    if fmt == "stix":
        check_not_empty(story, meta)
        return to_stix(story).serialize(pretty=True) + "\n"
    raise ValueError(f"unknown report format {fmt!r}")


def write_report(story: Story, timeline: list[TimelineEvent], meta: ReportMeta, out: str, fmt: str,
                 attack_layer_path: str | None = None) -> None:
    """Render and write the report (and the ATT&CK layer), each file whole or not at all."""
    text = render(story, timeline, meta, fmt)
    layer = json.dumps(attack_layer(story), indent=1) + "\n" if attack_layer_path else None
    write_atomically(out, text)
    if attack_layer_path and layer is not None:
        write_atomically(attack_layer_path, layer)


def write_from_store(store, out: str, fmt: str | None, *, attack_layer_path: str | None = None,
                     since_ns: int | None = None, until_ns: int | None = None, local_nets: tuple[str, ...] = (),
                     company: str | None = None) -> str:
    """Find the story in ``store`` and write the report; returns the format written."""
    fmt = fmt or guess_format(out)
    check_writable(out)
    if attack_layer_path:
        check_writable(attack_layer_path)
    story = build_story(store, since_ns=since_ns, until_ns=until_ns, local_nets=local_nets)
    timeline = build_timeline(store, since_ns=since_ns, until_ns=until_ns, local_nets=local_nets)
    meta = make_meta(store.display, out, fmt, story, store.captures(), since_ns=since_ns, until_ns=until_ns,
                     local_nets=local_nets, company=company)
    write_report(story, timeline, meta, out, fmt, attack_layer_path)
    return fmt
