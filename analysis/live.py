"""The recorder's live detection plug-in (entry point ``wiretrail.detectors``: ``behaviour``).

The behaviour rules of the ``rules`` setting (default: the shipped rules/behaviour/) run over the
store's last ``detect_window`` every ``detect_interval``. A finding is stored once: a
behaviour alert's text carries counts that grow while an attack goes on ("probed 20 ports",
later "probed 100 ports"), so the live sensor keys a finding on (rule, source, target, target
port) and skips one already stored within two windows, whatever the text says now, also after a
restart (the store is the memory).

Signatures (``signature``: the *.rules of ``rules``, default the shipped rules/*.rules) are
matched live, in the recorder's protocol parsers' process as the packets pass, by the engine
``wiretrail replay`` runs beside its ingest (``LiveEngine``, handed over by
``SealedSignatures.inspector``; ``recorder.live_signatures`` runs it). The files whose packets
it did not all inspect (the parsers were behind and skipped batches) are matched again from the
sealed file by the catch-up (``SealedSignatures.evaluate``), whose alerts then stand for that
file: so a day's signature alerts are those of a replay of its files. Nothing is stored twice
(``Store.add_alerts`` skips an alert already stored), also across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.live_sigma import sigma_paths
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


class LiveEngine:
    """The signature engine as the recorder's live inspector (``recorder.live_signatures``: in its
    parsers' process): the ``EngineInspector`` replay uses, plus ``take()``, the alert rows found
    since the last call, tagged with the sensor. Identical alerts on one flow are one row, as
    replay stores them (``collapse_repeats``; the later ones are not counted here)."""

    def __init__(self, rules: list, sensor: str) -> None:
        self.rules, self.sensor = rules, sensor
        self.inspector = None
        self.seen: dict[tuple, None] = {}  # repeat keys of the flows' alerts so far (the newest kept)

    def _inspector(self):
        if self.inspector is None:
            from analysis.rules.engine import EngineInspector

            self.inspector = EngineInspector(self.rules)
        return self.inspector

    def feed(self, raw, dec, messages: list, recognised: list) -> None:
        self._inspector().feed(raw, dec, messages, recognised)

    def finish(self, messages: list) -> None:
        self._inspector().finish(messages)

    def take(self) -> list[dict]:
        from analysis.replay import alert_row

        engine = self._inspector().engine  # None until the first batch
        if engine is None:
            return []
        found, engine.alerts = engine.alerts, []
        rows = []
        for a in found:
            row = alert_row(a, "signature", None)
            if a.uid:
                key = (row["gid"], row["signature_id"], row["rev"], row["signature"], a.uid, a.src_ip, a.src_port,
                       a.dest_ip, a.dest_port)
                if key in self.seen:
                    continue
                self.seen[key] = None
                while len(self.seen) > MAX_REPEAT_KEYS:
                    del self.seen[next(iter(self.seen))]
            row["eve"]["host"] = self.sensor
            rows.append(row)
        return rows


MAX_REPEAT_KEYS = 200_000
CATCH_UP_GRACE_NS = 60 * NS  # a sealed file the live engine has given no count for after this long: caught up
CATCH_UP_SHORT_NS = 10 * NS  # a sealed file whose count is still short after this long: caught up
# An alert's time comes through float seconds (off by up to a few hundred ns at today's dates): one
# on a file's first packet may read a little earlier than the file's first_ts_ns, yet is the file's.
TS_SLACK_NS = 1000


@dataclass(slots=True)
class SealedSignatures:
    """Signatures for the live recorder: ``inspector()`` is the engine its parsers' process runs on
    every batch (``recorder.live_signatures``); ``evaluate`` is the catch-up, run by the
    detection thread: each sealed file of this sensor whose packets the live engine did not all
    inspect (``captures.inspected_live`` still short of its packets 10 s after it was sealed,
    or no count ``grace_ns`` after it: parsers off, a crash), and the file after such a file (the
    live engine met its connections midway), is matched again from the file, with the file before it
    as context (a connection begun there), in a worker process, and its alerts replace the live
    ones of that file. It stores them itself (``stores``) and returns the new ones.

    Capture first: while ``capture_behind()`` says a capture stream lags behind the wire (set by
    the recorder, ``recorder.lag``), no file is caught up (counted in ``deferred``; the next round
    tries again), and the worker runs at a lower priority (it reads files and matches; it holds no
    database lock, so no capture bookkeeping can wait on it)."""

    files: list[str]
    variables: dict[str, str]
    sensor: str
    warn: Callable[[str], None]
    signatures: list = field(default_factory=list)
    name: str = "signature"
    rules: int = 0
    stores: bool = True
    grace_ns: int = CATCH_UP_GRACE_NS
    done: set[int] = field(default_factory=set)
    pool: object = None
    started_ns: int = field(default_factory=time.time_ns)
    live_packets: int = 0  # packets of the files sealed since start that the live engine inspected
    packets: int = 0  # packets inspected by catch-up (the files' packet counts)
    files_caught_up: int = 0
    delay_s: float = 0.0  # the last caught-up file's: from its last packet to its alerts stored
    capture_behind: Callable[[], bool] | None = None
    deferred: int = 0  # rounds that left a file to catch up for later: capture was behind

    def inspector(self) -> LiveEngine:
        return LiveEngine(self.signatures, self.sensor)

    def evaluate(self, store, since_ns: int) -> list[dict]:
        from analysis.replay import alert_row, collapse_repeats

        if self.pool is None:  # the worker loads the rules now, not at the first file to catch up
            self._pool().submit(int)
        now_ns = time.time_ns()
        mine = [c for c in store.captures() if c["origin"] == "recorder" and c["sensor"] == self.sensor]
        self.live_packets = sum(c["inspected_live"] or 0 for c in mine if (c["sealed_at"] or 0) >= self.started_ns)
        fresh: list[dict] = []
        for c in mine:
            if (c["sealed_at"] is None or c["deleted_at"] is not None or c["id"] in self.done
                    or (c["last_ts_ns"] or 0) < since_ns):
                continue
            live = c["inspected_live"]
            before = _file_before(mine, c)
            if live is not None and live >= (c["packets"] or 0) and not _short(before):
                self.done.add(c["id"])  # every packet inspected as it passed, and the file before's too
                continue
            if now_ns - c["sealed_at"] < (self.grace_ns if live is None else CATCH_UP_SHORT_NS):
                continue  # the live engine may still be on it (its count comes at the next flush)
            if self.capture_behind is not None and self.capture_behind():
                self.deferred += 1
                break
            paths = [before["path"], c["path"]] if before is not None else [c["path"]]
            first = c["first_ts_ns"] or 0
            alerts = [a for a in self._pool().submit(match_files, paths).result() if a.ts_ns >= first - TS_SLACK_NS]
            rows = []
            for a in alerts:
                row = alert_row(a, "signature", c["id"])
                row["eve"]["host"] = self.sensor
                rows.append(row)
            store.replace_alerts(c["id"], "signature", collapse_repeats(rows), new_rows=fresh)
            self.done.add(c["id"])
            self.packets += c["packets"] or 0
            self.files_caught_up += 1
            self.delay_s = max(0.0, time.time() - (c["last_ts_ns"] or 0) / NS)
        return fresh

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_load_rules, initargs=(self.files, self.variables))
        return self.pool


def _short(c: dict | None) -> bool:
    """Whether the live engine missed packets of this file: then it met the connections going on
    into the next file midway, and may have missed their alerts there too (a request whose
    handshake it did not see), so the next file is caught up as well, with this one as context."""
    return c is not None and (c["inspected_live"] is None or c["inspected_live"] < (c["packets"] or 0))


def _file_before(captures: list[dict], c: dict) -> dict | None:
    """The file of the same stream sealed just before ``c``, if it ends within a minute of ``c``'s start."""
    before = [b for b in captures if b["id"] < c["id"] and b["interface"] == c["interface"]
              and b["sealed_at"] is not None and b["deleted_at"] is None]
    if not before or c["first_ts_ns"] is None:
        return None
    b = before[-1]
    return b if (b["last_ts_ns"] or 0) >= c["first_ts_ns"] - 60 * NS else None


_WORKER: dict = {}  # the worker process's rules (set once by its initializer; never in the recorder)


CATCH_UP_NICE = 10  # the catch-up worker's: capture and the live parsers first when the CPU is short


def _load_rules(files: list[str], variables: dict[str, str]) -> None:
    import os

    from analysis.rules import Variables, load_rules

    os.nice(CATCH_UP_NICE)

    _WORKER["rules"] = load_rules(files, Variables.with_overrides(variables)).rules


def match_files(paths: list[str]) -> list:
    from analysis.rules.engine import Engine

    return Engine(_WORKER["rules"]).run(paths)  # a new engine: nothing carried over from the last file


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

    other = sigma_paths(config.rules)[1]
    if config.rules and not other:
        return None  # Sigma rules only (analysis.live_sigma)
    _, files, missing = split_rules(other or [str(SHIPPED_RULES)])
    if missing:
        raise ConfigError(f"rules: {missing[0]}: no such rule file or folder")
    if not files:
        return None
    ruleset = load_rules(files, Variables.with_overrides(_variables(config)))
    if ruleset.errors and not config.skip_invalid:
        raise ConfigError(f"rules: {ruleset.errors[0]}" + (f" (and {len(ruleset.errors) - 1} more; skip_invalid "
                                                           "skips them)" if len(ruleset.errors) > 1 else ""))
    if ruleset.errors:
        warn(f"{len(ruleset.errors)} of {len(ruleset.rules) + len(ruleset.errors)} signatures not supported and "
             f"skipped (skip_invalid), the first: {ruleset.errors[0]}")
    return SealedSignatures(files, _variables(config), config.sensor or socket.gethostname(), warn,
                            signatures=list(ruleset.rules), rules=len(ruleset.rules))


def behaviour_detector(config, warn: Callable[[str], None]) -> BehaviourDetector | None:
    """The entry point: load and check ``config.rules`` (ConfigError on a bad file)."""
    import socket

    from analysis.behaviour import load_behaviour_rules
    from analysis.replay import SHIPPED_RULES, split_rules

    other = sigma_paths(config.rules)[1]
    if config.rules and not other:
        return None  # Sigma rules only (analysis.live_sigma)
    paths = other or [str(SHIPPED_RULES / "behaviour")]
    behaviour, _signature_files, missing = split_rules(paths)
    if missing:
        raise ConfigError(f"rules: {missing[0]}: no such rule file or folder")
    rules, errors = load_behaviour_rules(behaviour)
    if errors:
        raise ConfigError(f"rules: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return BehaviourDetector(rules, config.sensor or socket.gethostname(), config.detect_window * NS, warn)
