"""YAML files whose every problem is reported as path:line (behaviour rules, expected alerts)."""

from __future__ import annotations

from typing import Any


class YAMLSyntaxError(ValueError):
    """The text is not YAML: ``line`` (1-based) is where the parser gave up."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def load_yaml(text: str) -> tuple[Any, dict[tuple, int]]:
    """The data of ``text``, and the 1-based line of every mapping key and sequence item by its
    path: ``("alerts",)``, ``("alerts", 0)``, ``("alerts", 0, "sid")``, ``("params", "window")``."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise YAMLSyntaxError(f"invalid YAML: {problem}", mark.line + 1 if mark else 1) from None
    lines: dict[tuple, int] = {}

    def walk(n, path: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                p = (*path, str(k.value))
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    walk(node, ())
    return data, lines
