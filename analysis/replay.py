"""Replay as a library: ingest captures, match the signatures and evaluate the behaviour rules
over them, and store the alerts. ``wiretrail replay``, the pytest plugin (``analysis.pytest_plugin``)
and any other caller share this one function.

    outcome = replay_captures(["case.pcap"], rules=["rules/"], variables={"HOME_NET": "10.0.0.0/8"})
    outcome.alerts          # Alert objects, signature and behaviour merged in time order

``replay_captures`` never prints (warnings go to ``on_warning``) and raises ``ReplayError`` listing
every problem of the rule files (path:line: reason).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.resources import ruleset
from recorder.core.errors import ProblemsError

SHIPPED_RULES = ruleset()  # the shipped rules, installed or in a checkout


class ReplayError(ProblemsError):
    """Rule files that cannot be used: ``errors`` holds every problem, one ``path:line: reason`` each."""


@dataclass
class ReplayOutcome:
    """What a replay found: the alerts in time order, each alert's kind and capture id (same order)."""

    alerts: list = field(default_factory=list)  # analysis.alerts.Alert
    kinds: list[str] = field(default_factory=list)  # signature | behaviour
    capture_ids: list[int | None] = field(default_factory=list)
    stats: Any = None  # recorder.core.pipeline.ingest.IngestStats
    behaviour_rules: int = 0
    sigma_rules: int = 0  # Sigma rules given with --rules, run over the store's log events
    signatures: int = 0
    signatures_matched: bool = False  # False when there were none
    stored: int = 0  # alerts new to the store (a replay into the same --db again adds none)
    repeats: int = 0  # signature alerts stored as a count on an identical alert of the same flow

    def eve(self) -> list[dict]:
        return [a.to_eve() for a in self.alerts]


def split_rules(paths: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Behaviour rule files and folders, Suricata *.rules files found, paths that do not exist."""
    behaviour, signatures, missing = [], [], []
    for p in map(Path, paths):
        if not p.exists():
            missing.append(str(p))
        elif p.is_dir():
            signatures += sorted(str(f) for f in p.rglob("*.rules"))
            behaviour.append(str(p))
        elif p.suffix == ".rules":
            signatures.append(str(p))
        else:
            behaviour.append(str(p))
    return behaviour, signatures, missing


def replay_captures(captures: Sequence[str], *, rules: Sequence[str] | None = None,
                    variables: Mapping[str, str] | None = None, db: str | None = None,
                    local_nets: Sequence[str] = (), skip_invalid: bool = False, midstream: bool = False,
                    on_warning: Callable[[str], None] | None = None) -> ReplayOutcome:
    """Ingest ``captures`` into ``db`` (a temporary SQLite database when None), match the
    signatures of the *.rules files and evaluate the behaviour rules in ``rules`` (default: the
    shipped rules/: rules/*.rules and rules/behaviour/), store the alerts tagged with their capture, and return them.

    ``variables`` (NAME -> VALUE) override Suricata's address and port variables; ``HOME_NET``
    defaults to the private ranges plus ``local_nets``. Raises
    ReplayError for missing or bad rule files (before reading any capture) and CaptureError or
    StoreError as an ingest does. With ``skip_invalid``, rejected signatures are skipped instead,
    each reported through ``on_warning`` (missing files and bad behaviour rules still raise).
    ``midstream``: inspect TCP sessions picked up without their handshake (Suricata's
    ``stream.midstream: true``), as when a capture starts while connections are open.
    """
    from analysis.behaviour import load_behaviour_rules
    from analysis.behaviour.model import is_sigma
    from analysis.behaviour.model import rule_files as yaml_files
    from analysis.rules import Variables, load_rules

    warn = on_warning or (lambda _msg: None)
    # Sigma rules (a YAML file with a logsource) run over the store's log events (`wiretrail logs
    # ingest`); only when named with --rules, so a default replay does not load pySigma.
    sigma_files = [f for f in yaml_files(rules or ()) if is_sigma(Path(f))]
    paths = rules if rules is not None else (str(SHIPPED_RULES),)
    behaviour, signature_files, missing = split_rules(p for p in paths if Path(p) not in sigma_files)
    errors = [f"{path}: no such file or directory" for path in missing]
    sigma = None
    if sigma_files:
        from analysis.logs.sigma import load_rules as load_sigma

        sigma = load_sigma([str(f) for f in sigma_files])
        errors += [f"{path}: {reason}" for path, reason in sigma.rejected]
    behaviour_rules, behaviour_errors = load_behaviour_rules(behaviour)
    errors += [str(e) for e in behaviour_errors]
    signatures: Sequence = ()
    if signature_files:
        overrides = dict(variables or {})
        if local_nets and not any(k.lstrip("$") == "HOME_NET" for k in overrides):
            # the signatures' home is the site's: the --local-net networks plus the private ranges
            overrides["HOME_NET"] = "[" + ",".join(["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12", *local_nets]) + "]"
        ruleset = load_rules(signature_files, Variables.with_overrides(overrides))
        if skip_invalid:
            for e in ruleset.errors:
                warn(f"skipped: {e}")
        else:
            errors += [str(e) for e in ruleset.errors]
        signatures = ruleset.rules
    if errors:
        raise ReplayError(errors)
    outcome = ReplayOutcome(behaviour_rules=len(behaviour_rules), signatures=len(signatures),
                            signatures_matched=bool(signatures), sigma_rules=len(sigma.rules) if sigma else 0)
    with tempfile.TemporaryDirectory(prefix="wiretrail-replay-") as tmp:
        _run(outcome, list(captures), db or os.path.join(tmp, "replay.db"), behaviour_rules, signatures,
             list(local_nets), warn, midstream, sigma)
    return outcome


def _run(outcome: ReplayOutcome, captures: list[str], db: str, behaviour_rules, signatures,
         local_nets: list[str], warn: Callable[[str], None], midstream: bool = False, sigma=None) -> None:
    from analysis.behaviour import evaluate
    from analysis.rules.engine import Engine, EngineInspector
    from recorder.core.pipeline.ingest import ingest
    from recorder.core.store import Store

    with Store(db) as store:
        store.ensure_schema()
        # The engine matches in the ingest's own pass (on its decoded batches and parser messages)
        engine = EngineInspector(signatures, midstream=midstream) if signatures else None
        stats = ingest(captures, store, local_nets=local_nets, on_warning=warn, inspector=engine)
        found = [(a, "behaviour") for a in evaluate(store, behaviour_rules)]
        if sigma is not None and sigma.rules:
            from analysis.logs.detect import detect as detect_logs

            found += [(a, "log") for a, _eve in detect_logs(store, sigma, joined=False, keep=False).alerts]
        if engine is not None:
            matched = stats.inspected
            if any(f.skipped_reason for f in stats.files):
                # a file already in the store was not read: the engine reads them all itself, and
                # what the ingest already reported is not repeated
                told = set(stats.warnings)
                matched = Engine(signatures, midstream=midstream).run([f.path for f in stats.files],
                                                 on_warning=lambda w: None if w in told else warn(w))
            found += [(a, "signature") for a in matched]
        found.sort(key=lambda p: (p[0].ts_ns, p[0].signature_id, p[0].src_ip, p[0].dest_ip))
        alerts = [a for a, _ in found]
        capture_ids = alert_capture_ids(store, alerts, [f.capture_id for f in stats.files])
        rows = collapse_repeats([alert_row(a, kind, cid) for (a, kind), cid in zip(found, capture_ids)])
        outcome.repeats = len(found) - len(rows)
        outcome.stored = store.add_alerts(rows)
    outcome.alerts, outcome.kinds, outcome.capture_ids = alerts, [k for _, k in found], capture_ids
    outcome.stats = stats


def collapse_repeats(rows: list[dict]) -> list[dict]:
    """Identical signature alerts on one flow (same rule and text, same flow uid and endpoints) as
    ONE row: the first, its EVE ``alert.metadata`` gaining ``wiretrail_count`` (how many) and
    ``wiretrail_last_seen`` (the last one's EVE timestamp), as Suricata's metadata lists of
    strings, so the stored EVE stays EVE. Alerts with no flow, and behaviour and log alerts (one
    per finding already), are kept as they are. The EVE output of a replay is not collapsed."""
    from analysis.alerts import eve_timestamp

    out: list[dict] = []
    first: dict[tuple, tuple[dict, int, int]] = {}  # key -> (row, count, last ts)
    for row in rows:
        if row["kind"] != "signature" or not row["uid"]:
            out.append(row)
            continue
        key = (row["gid"], row["signature_id"], row["rev"], row["signature"], row["uid"], row["src_ip"],
               row["src_port"], row["dest_ip"], row["dest_port"])
        if key in first:
            kept, n, _last = first[key]
            first[key] = (kept, n + 1, row["ts_ns"])
            continue
        first[key] = (row, 1, row["ts_ns"])
        out.append(row)
    for kept, n, last in first.values():
        if n > 1:
            eve = dict(kept["eve"])
            alert = dict(eve.get("alert") or {})
            meta = dict(alert.get("metadata") or {})
            meta["wiretrail_count"] = [str(n)]
            meta["wiretrail_last_seen"] = [eve_timestamp(last)]
            alert["metadata"] = meta
            eve["alert"] = alert
            kept["eve"] = eve
    return out


def alert_capture_ids(store, alerts: list, replayed: list[int | None]) -> list[int | None]:
    """Each alert's capture: its flow's (by uid), else the replayed capture whose time span holds it."""
    by_uid = store.flow_captures({a.uid for a in alerts if a.uid})
    ids = {i for i in replayed if i is not None}
    spans = [(c["first_ts_ns"], c["last_ts_ns"], c["id"]) for c in store.captures()
             if c["id"] in ids and c["first_ts_ns"] is not None]
    out: list[int | None] = []
    for a in alerts:
        cid = by_uid.get(a.uid) if a.uid else None
        if cid is None:
            cid = next((i for lo, hi, i in spans if lo <= a.ts_ns <= (hi if hi is not None else lo)), None)
        out.append(cid)
    return out


def _meta(alert, *keys: str) -> str | None:
    """A signature's metadata values for ``keys`` (``mitre_tactic_id TA0001`` ...), joined."""
    pairs = dict(getattr(alert, "metadata", ()) or ())
    values = [pairs[k] for k in keys if pairs.get(k)]
    return " ".join(values) or None


def alert_row(alert, kind: str, capture_id: int | None) -> dict[str, Any]:
    """An Alert as a row of the store's ``alerts`` table (``Store.add_alerts``)."""
    proto = (alert.proto or "").lower() or None
    return {
        "capture_id": capture_id, "ts_ns": alert.ts_ns, "uid": alert.uid, "flow_id": alert.flow_id,
        "community_id": alert.community_id, "src_ip": alert.src_ip, "src_port": alert.src_port,
        "dest_ip": alert.dest_ip, "dest_port": alert.dest_port,
        "proto": "icmp" if proto in ("ipv6-icmp", "icmp6") else proto, "app_proto": alert.app_proto,
        "gid": alert.gid, "signature_id": alert.signature_id, "rev": alert.rev, "signature": alert.signature,
        "category": alert.category or None, "severity": alert.severity, "action": alert.action, "kind": kind,
        "tactic": alert.tactic or _meta(alert, "mitre_tactic_id", "mitre_tactic_name"),
        "technique": alert.technique or _meta(alert, "mitre_technique_id", "mitre_technique_name"),
        "eve": alert.to_eve(),
    }
