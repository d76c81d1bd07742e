"""``classification.config``: the classtypes a rule may name, with description and priority.

Format (Suricata's): ``config classification: shortname,short description,priority``; ``#``
comments and blank lines are ignored. The description becomes an alert's category.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.resources import classification_config
from recorder.core.errors import WiretrailError

SHIPPED = classification_config()


@dataclass(frozen=True, slots=True)
class Classtype:
    name: str
    description: str
    priority: int


class ClassificationError(WiretrailError):
    """A classification.config that cannot be read or has bad lines (every bad line listed)."""


def parse_classifications(text: str, path: str = "<classification.config>") -> dict[str, Classtype]:
    """Parse the file's text; raise ClassificationError listing every bad line."""
    out: dict[str, Classtype] = {}
    problems: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, body = line.partition(":")
        parts = [p.strip() for p in body.split(",")]
        if not sep or head.strip() != "config classification" or len(parts) != 3 or not parts[0] \
                or not parts[2].isdigit():
            problems.append(f"{path}:{lineno}: expected 'config classification: name,description,priority'")
            continue
        out[parts[0]] = Classtype(parts[0], parts[1], int(parts[2]))
    if problems:
        raise ClassificationError("; ".join(problems))
    return out


def load_classifications(path: Path | str = SHIPPED) -> dict[str, Classtype]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ClassificationError(f"cannot read classification file: {err.strerror}", path=str(path)) from err
    return parse_classifications(text, str(path))
