"""Live detection plug-ins: what the recorder runs over its store every ``detect_interval``.

The recorder does not import the rule engines (they live in ``analysis``, which imports
``recorder.core``, never the reverse). It finds them by the importlib.metadata entry-point group
``wiretrail.detectors``; the wiretrail distribution registers its own there (pyproject.toml:
``behaviour = "analysis.live:behaviour_detector"``) and another package may add more. An entry
point names a factory::

    factory(config: recorder.core.config.Config, warn: Callable[[str], None]) -> LiveDetector | None

which raises ``ConfigError`` for a bad rule file (the daemon exits 78) and returns None when it
has nothing to run, else an object with

    name: str                                        for the log
    rules: int                                       how many rules it evaluates
    evaluate(store, since_ns: int) -> list[dict]     alert rows (``Store.add_alerts``), kind set,
                                                     over the records at or after ``since_ns``

``evaluate`` reports a rule that fails through ``warn`` and goes on without it; it may return
rows already stored (the recorder keeps only the new ones), unless it has ``stores = True``: then
it stores its alerts itself and returns only the new ones (to log and notify). An optional
``close()`` is called at shutdown. An optional ``inspector()`` returns a fresh inspector for the
recorder's protocol parsers' process (``recorder.live_signatures``: the signatures matched live).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol

from recorder.core.errors import ConfigError

GROUP = "wiretrail.detectors"


class LiveDetector(Protocol):
    name: str
    rules: int

    def evaluate(self, store: Any, since_ns: int) -> list[dict]: ...


def load_detectors(config: Any, warn: Callable[[str], None], group: str = GROUP) -> list[LiveDetector]:
    """Every registered detector, built for ``config``; ConfigError names a plug-in that fails to load."""
    out = []
    # one plug-in per name and target: an installed package seen twice on the path (an editable
    # install beside a wheel, say) must not run its rules twice
    unique = {(ep.name, ep.value): ep for ep in entry_points(group=group)}
    for ep in sorted(unique.values(), key=lambda e: e.name):
        try:
            factory = ep.load()
        except Exception as err:  # noqa: BLE001 - a broken plug-in is a configuration problem
            raise ConfigError(f"detector {ep.name} ({ep.value}): cannot load: {type(err).__name__}: {err}") from None
        detector = factory(config, warn)
        if detector is not None:
            out.append(detector)
    return out
