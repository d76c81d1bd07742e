"""The recorder's live detection plug-in (entry point ``wiretrail.detectors``: ``behaviour``).

The behaviour rules of the ``rules`` setting (default: the shipped rules/behaviour/) run over the
store's last ``detect_window`` every ``detect_interval``. A finding is stored once: a
behaviour alert's text carries counts that grow while an attack goes on ("probed 20 ports",
later "probed 100 ports"), so the live sensor keys a finding on (rule, source, target, target
port) and skips one already stored within two windows, whatever the text says now, also after a
restart (the store is the memory). Signature files in ``rules`` are checked at start (a bad one
exits 78) but matched by ``wiretrail replay`` of the sealed files, not live (README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from recorder.core.errors import ConfigError

NS = 1_000_000_000


@dataclass(slots=True)
class BehaviourDetector:
    rules_list: list
    sensor: str
    window_ns: int
    warn: Callable[[str], None]
    name: str = "behaviour"
    failed: set[int] = field(default_factory=set)

    @property
    def rules(self) -> int:
        return len(self.rules_list) - len(self.failed)

    def _failed(self, rule, err: Exception) -> None:
        self.failed.add(rule.id)
        self.warn(f"behaviour rule {rule.id} ({rule.name}, {rule.path}) failed and is off until restart: "
                  f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")

    def evaluate(self, store, since_ns: int) -> list[dict]:
        from analysis.behaviour import evaluate
        from analysis.replay import alert_row

        active = [r for r in self.rules_list if r.id not in self.failed]
        found = evaluate(store, active, since_ns=since_ns, on_error=self._failed)
        if not found:
            return []
        stored = {finding_key(a) for a in store.query_alerts(
            kind="behaviour", since=since_ns - 2 * self.window_ns, sids={a.signature_id for a in found})}
        captures = store.flow_captures({a.uid for a in found if a.uid})
        rows, seen = [], set()
        for a in found:
            key = (a.signature_id, a.src_ip, a.dest_ip, a.dest_port)
            if key in stored or key in seen:
                continue
            seen.add(key)
            row = alert_row(a, "behaviour", captures.get(a.uid) if a.uid else None)
            row["eve"]["host"] = self.sensor  # EVE's sensor name field, as Suricata writes it
            rows.append(row)
        return rows


def finding_key(row: dict) -> tuple:
    return (row["signature_id"], row["src_ip"], row["dest_ip"], row["dest_port"])


def behaviour_detector(config, warn: Callable[[str], None]) -> BehaviourDetector:
    """The entry point: load and check ``config.rules`` (ConfigError on a bad file)."""
    import socket

    from analysis.behaviour import load_behaviour_rules
    from analysis.replay import SHIPPED_RULES, split_rules
    from analysis.rules import Variables, load_rules

    paths = list(config.rules) or [str(SHIPPED_RULES / "behaviour")]
    behaviour, signature_files, missing = split_rules(paths)
    if missing:
        raise ConfigError(f"rules: {missing[0]}: no such rule file or folder")
    rules, errors = load_behaviour_rules(behaviour)
    if errors:
        raise ConfigError(f"rules: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    if signature_files:  # checked now, so a bad file stops the start, not the day's replay
        overrides = dict(v.split("=", 1) for v in config.var)
        ruleset = load_rules(signature_files, Variables.with_overrides(overrides))
        if ruleset.errors:
            raise ConfigError(f"rules: {ruleset.errors[0]}")
    return BehaviourDetector(rules, config.sensor or socket.gethostname(), config.detect_window * NS, warn)
