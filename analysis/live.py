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

from recorder.core.errors import ConfigError, WiretrailError

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
    """The signature engine over each sealed capture file of this sensor, in a worker process the
    detector owns (started at the first file; the engine lives in that process, loaded once)."""

    files: list[str]
    variables: dict[str, str]
    sensor: str
    warn: Callable[[str], None]
    name: str = "signature"
    rules: int = 0
    done: set[int] = field(default_factory=set)
    worker: object = None  # the matching process (multiprocessing, spawned: the recorder has threads)
    conn: object = None  # the detector's end of the pipe to it
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
            alerts = self._match(c["path"])
            self.done.add(c["id"])
            self.packets += c["packets"] or 0
            self.delay_s = max(0.0, time.time() - (c["last_ts_ns"] or 0) / NS)
            for a in alerts:
                row = alert_row(a, "signature", c["id"])
                row["eve"]["host"] = self.sensor
                rows.append(row)
        return rows

    def close(self) -> None:
        if self.worker is None:
            return
        try:
            self.conn.send(None)  # the worker ends after the file it is matching, if any
        except OSError:
            pass  # it has ended already
        self.conn.close()
        self.worker.join(5)
        if self.worker.is_alive():
            self.worker.terminate()
            self.worker.join()
        self.worker = self.conn = None

    def _match(self, path: str) -> list:
        """The alerts of one capture file, matched by the worker; its error raised here again."""
        if self.worker is None:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            self.conn, theirs = ctx.Pipe()
            self.worker = ctx.Process(target=serve_matches, args=(self.files, self.variables, theirs),
                                      name="wiretrail-signatures", daemon=True)
            self.worker.start()
            theirs.close()
        self.conn.send(path)
        try:
            kind, value = self.conn.recv()
        except EOFError:
            raise WiretrailError(f"the signature worker ended (exit status {self.worker.exitcode}) while "
                                 "matching this file", path=path) from None
        if kind == "error":
            raise value
        return value


def serve_matches(files: list[str], variables: dict[str, str], conn) -> None:
    """The signature worker's loop (in its own process): load the engine once, then answer each
    path sent with ("alerts", [Alert]) or ("error", exception), until None or the pipe's end."""
    from analysis.rules import Variables, load_rules
    from analysis.rules.engine import Engine

    engine = None
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        if path is None:
            return
        try:
            if engine is None:
                engine = Engine(load_rules(files, Variables.with_overrides(variables)).rules)
            conn.send(("alerts", engine.run([path])))
        except Exception as err:  # noqa: BLE001 - relayed to the detector, which raises it again
            try:
                conn.send(("error", err))
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its one line
                conn.send(("error", WiretrailError(f"{type(err).__name__}: {err}", path=path)))


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
