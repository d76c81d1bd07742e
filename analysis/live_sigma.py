"""The recorder's live Sigma detection plug-in (entry point ``wiretrail.detectors``: ``sigma``).

The Sigma rule files named in the recorder's ``rules`` setting (a YAML file with a ``logsource:``
or ``correlation:``; named one by one, as `wiretrail replay --rules` takes them, so the shipped
rules alone load no pySigma) run every ``detect_interval`` over the log events of the recorder's
store (``wiretrail logs ingest --db`` puts them there) from the last ``detect_window``, by the same
code as `wiretrail logs detect` (``analysis.logs.detect.detect(..., since_ns=)``). An alert on
one event is stored once (``Store.add_alerts``: same time, rule and endpoints); a correlation
(ten failed logins from one address...) fires again in every window while its events are in it,
so it is kept once per rule and group within two windows, also after a restart (the store is
the memory). A rule that fails at run time is reported once and the others go on.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.core.errors import ConfigError

NS = 1_000_000_000


def sigma_paths(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """The Sigma rule files named in ``paths``, and the other paths (signatures, behaviour rules)."""
    from analysis.behaviour.model import is_sigma

    sigma, other = [], []
    for p in paths:
        path = Path(p)
        (sigma if path.is_file() and path.suffix in (".yml", ".yaml") and is_sigma(path) else other).append(p)
    return sigma, other


@dataclass(slots=True)
class SigmaDetector:
    ruleset: Any  # analysis.logs.sigma.RuleSet
    sensor: str
    window_ns: int
    warn: Callable[[str], None]
    name: str = "Sigma"
    reported: set[tuple[str, str]] = field(default_factory=set)

    @property
    def rules(self) -> int:
        return len(self.ruleset.rules)

    def evaluate(self, store, since_ns: int) -> list[dict]:
        from analysis.logs.detect import alert_row, detect

        found = detect(store, self.ruleset, joined=False, keep=False, since_ns=since_ns)
        for path, reason in found.failed:
            if (path, reason) not in self.reported:
                self.reported.add((path, reason))
                self.warn(f"Sigma rule {path} failed: {reason.splitlines()[0] if reason else ''}")
        if not found.alerts:
            return []
        groups = {(a.signature_id, _group(eve)) for a, eve in found.alerts if _group(eve)}
        stored = set()
        if groups:
            for row in store.query_alerts(kind="log", since=since_ns - 2 * self.window_ns,
                                          sids={sid for sid, _ in groups}):
                stored.add((row["signature_id"], _group(json.loads(row["eve"]))))
        rows = []
        for a, eve in found.alerts:
            group = _group(eve)
            if group:
                if (a.signature_id, group) in stored:
                    continue
                stored.add((a.signature_id, group))
            eve["sensor"] = self.sensor
            rows.append(alert_row(a, eve))
        return rows


def _group(eve: dict) -> str | None:
    """A correlation alert's group (its group-by fields' values) as text; None for one event's alert."""
    group = (eve.get("log") or {}).get("group")
    return json.dumps(group, sort_keys=True) if group else None


def sigma_detector(config, warn: Callable[[str], None]) -> SigmaDetector | None:
    """The entry point: the Sigma rule files of ``config.rules``, loaded and converted now
    (ConfigError naming a file that cannot be); None when there are none."""
    files, _ = sigma_paths(config.rules)
    if not files:
        return None
    from analysis.logs.sigma import load_rules

    ruleset = load_rules(files)
    if ruleset.rejected:
        path, reason = ruleset.rejected[0]
        raise ConfigError(f"rules: {path}: {reason}")
    return SigmaDetector(ruleset, config.sensor or socket.gethostname(), config.detect_window * NS, warn)
