"""The recorder's live detection plug-in (entry point ``wiretrail.detectors``: ``behaviour``).

The behaviour rules of the ``rules`` setting (default: the shipped rules/behaviour/) run over the
store's last ``detect_window`` every ``detect_interval``. A finding is stored once: a
behaviour alert's text carries counts that grow while an attack goes on ("probed 20 ports",
later "probed 100 ports"), so the live sensor keys a finding on (rule, source, target, target
port) and skips one already stored within two windows, whatever the text says now, also after a
restart (the store is the memory).

Signatures (``signatures``: the *.rules of ``rules``, default the shipped rules/*.rules) are
matched on each capture file the recorder seals, by the same engine and the same code path as
``wiretrail replay`` of that file (``Engine.run``), in a worker process of its own (the matching
is CPU work that must not take the capture process's interpreter); the alerts are those of a
replay of the day's files by construction, and arrive at most ``rotate_interval`` (or
``rotate_size``) after their packets. Re-matching a file after a restart stores nothing twice
(``Store.add_alerts`` skips an alert already stored).
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


@dataclass(slots=True)
class SealedSignatures:
    """The signature engine over each sealed capture file of this sensor, in a worker process."""

    files: list[str]
    variables: dict[str, str]
    sensor: str
    warn: Callable[[str], None]
    name: str = "signature"
    rules: int = 0
    done: set[int] = field(default_factory=set)
    pool: object = None
    packets: int = 0  # packets matched (files' packet counts)
    delay_s: float = 0.0  # the last file's: from its last packet to its alerts stored

    def evaluate(self, store, since_ns: int) -> list[dict]:
        import time

        from analysis.replay import alert_row

        todo = [c for c in store.captures() if c["origin"] == "recorder" and c["sealed_at"] is not None
                and c["deleted_at"] is None and c["id"] not in self.done and (c["last_ts_ns"] or 0) >= since_ns
                and c["sensor"] == self.sensor]
        rows: list[dict] = []
        for c in todo:
            alerts = self._pool().submit(_match_file, c["path"]).result()
            self.done.add(c["id"])
            self.packets += c["packets"] or 0
            self.delay_s = max(0.0, time.time() - (c["last_ts_ns"] or 0) / NS)
            for a in alerts:
                row = alert_row(a, "signature", c["id"])
                row["eve"]["host"] = self.sensor
                rows.append(row)
        return rows

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_load_engine, initargs=(self.files, self.variables))
        return self.pool


_WORKER: dict = {}  # the worker process's engine (set once by its initializer; never in the recorder)


def _load_engine(files: list[str], variables: dict[str, str]) -> None:
    from analysis.rules import Variables, load_rules
    from analysis.rules.engine import Engine

    _WORKER["engine"] = Engine(load_rules(files, Variables.with_overrides(variables)).rules)


def _match_file(path: str) -> list:
    return _WORKER["engine"].run([path])


def finding_key(row: dict) -> tuple:
    return (row["signature_id"], row["src_ip"], row["dest_ip"], row["dest_port"])


def _variables(config) -> dict[str, str]:
    overrides = dict(v.split("=", 1) for v in config.var)
    if config.local_net and not any(k.lstrip("$") == "HOME_NET" for k in overrides):  # as replay does
        overrides["HOME_NET"] = "[" + ",".join(["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12",
                                                *map(str, config.local_net)]) + "]"
    return overrides


def signature_detector(config, warn: Callable[[str], None]) -> SealedSignatures | None:
    """The entry point for signatures: the *.rules of ``config.rules`` (default the shipped ones),
    checked now (ConfigError on a bad rule)."""
    import socket

    from analysis.replay import SHIPPED_RULES, split_rules
    from analysis.rules import Variables, load_rules

    _, files, missing = split_rules(list(config.rules) or [str(SHIPPED_RULES)])
    if missing:
        raise ConfigError(f"rules: {missing[0]}: no such rule file or folder")
    if not files:
        return None
    ruleset = load_rules(files, Variables.with_overrides(_variables(config)))
    if ruleset.errors:
        raise ConfigError(f"rules: {ruleset.errors[0]}")
    return SealedSignatures(files, _variables(config), config.sensor or socket.gethostname(), warn,
                            rules=len(ruleset.rules))


def behaviour_detector(config, warn: Callable[[str], None]) -> BehaviourDetector:
    """The entry point: load and check ``config.rules`` (ConfigError on a bad file)."""
    import socket

    from analysis.behaviour import load_behaviour_rules
    from analysis.replay import SHIPPED_RULES, split_rules

    paths = list(config.rules) or [str(SHIPPED_RULES / "behaviour")]
    behaviour, _signature_files, missing = split_rules(paths)
    if missing:
        raise ConfigError(f"rules: {missing[0]}: no such rule file or folder")
    rules, errors = load_behaviour_rules(behaviour)
    if errors:
        raise ConfigError(f"rules: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return BehaviourDetector(rules, config.sensor or socket.gethostname(), config.detect_window * NS, warn)
