"""Live detection in process: the plug-in found by its entry point, the behaviour rules over a
sliding window of a store holding demo-breach.pcap, each finding stored once across rounds and
restarts, tagged with the sensor, queued for notification; a rule that fails stops only itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.behaviour import evaluate, load_behaviour_rules
from analysis.behaviour.model import BehaviourRule
from recorder.core.config import load_config
from recorder.core.detection import load_detectors
from recorder.core.errors import ConfigError
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from recorder.detect import LiveDetection

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


@pytest.fixture(scope="module")
def breach_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("live") / "breach.db"
    with Store(str(db)) as store:
        store.ensure_schema()
        ingest([str(ROOT / "captures" / "demo-breach.pcap")], store)
        last = max(c["last_ts_ns"] for c in store.captures())
    return db, last


@pytest.fixture
def detectors_registered():
    """The installed package declares its detectors (pyproject.toml's ``wiretrail.detectors``
    entry points; ``make`` installs the project): the recorder finds them as a sensor would."""


def cfg(tmp_path, db, **extra):
    text = f'db = "{db}"\nsensor = "shop-gw"\nnotify_webhook = ["http://127.0.0.1:9/x"]\n'
    text += "".join(f"{k} = {v}\n" for k, v in extra.items())
    path = tmp_path / "r.toml"
    path.write_text(text)
    path.chmod(0o600)
    return load_config(str(path), {}, {})


def test_findings_stored_once_across_rounds_and_restarts(tmp_path, breach_db, detectors_registered):
    src, last = breach_db
    db = tmp_path / "w.db"
    db.write_bytes(src.read_bytes())
    config = cfg(tmp_path, db, detect_window='"2h"')
    dets = load_detectors(config, lambda m: None)
    assert [d.name for d in dets] == ["behaviour", "signature"] and dets[0].rules > 10
    with Store(str(db)) as store:
        rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour")])
        replayed = {(a.signature_id, a.src_ip, a.dest_ip, a.dest_port) for a in evaluate(store, rules)}
    live = LiveDetection(config, dets, "shop-gw", clock=lambda: last / NS + 1)
    live.store.ensure_schema()
    first = live.run_once()
    assert first == len(replayed) and live.run_once() == 0
    live.stop()
    restarted = LiveDetection(config, load_detectors(config, lambda m: None), "shop-gw", clock=lambda: last / NS + 600)
    assert restarted.run_once() == 0  # after a restart: the store remembers
    with Store(str(db)) as store:
        rows = list(store.query_alerts(kind="behaviour"))
        assert {(r["signature_id"], r["src_ip"], r["dest_ip"], r["dest_port"]) for r in rows} == replayed
        assert {json.loads(r["eve"])["host"] for r in rows} == {"shop-gw"}
        queued = store.pending_notifications(restarted.notifier.channels[0].name)
        assert len(queued) == sum(1 for r in rows if r["severity"] <= 2) > 0
    restarted.stop()


def test_window_limits_what_is_seen(tmp_path, breach_db, detectors_registered):
    src, last = breach_db
    db = tmp_path / "w.db"
    db.write_bytes(src.read_bytes())
    config = cfg(tmp_path, db, detect_window='"1h"')
    live = LiveDetection(config, load_detectors(config, lambda m: None), "shop-gw", clock=lambda: last / NS + 7200)
    assert live.run_once() == 0  # the breach is more than an hour old
    live.stop()


def test_a_failing_rule_stops_only_itself(tmp_path, breach_db, caplog):
    from analysis.live import BehaviourDetector

    src, _ = breach_db
    rules, _ = load_behaviour_rules([str(ROOT / "rules" / "behaviour")])
    broken = BehaviourRule(id=9999999, name="Broken", kind="port_scan", severity=2, tactic="t", technique="t",
                           description="d", params={"failed_states": 5}, path="broken.yaml")
    warnings: list[str] = []
    det = BehaviourDetector([broken, *rules], "shop-gw", 3600 * NS, warnings.append)
    with Store(str(src)) as store:
        rows = det.evaluate(store, 0)
    assert rows and len(warnings) == 1 and warnings[0].startswith("behaviour rule 9999999 (Broken, broken.yaml) failed")
    assert det.rules == len(rules)


def test_bad_rule_file_is_a_config_error(tmp_path, detectors_registered):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: 1\nname: x\nkind: no_such_kind\n")
    config = cfg(tmp_path, tmp_path / "w.db", rules=f'["{bad}"]')
    with pytest.raises(ConfigError, match=r"^rules: .*bad.yaml"):
        load_detectors(config, lambda m: None)


def test_check_config_exits_78_on_a_bad_behaviour_rule(tmp_path, detectors_registered):
    from click.testing import CliRunner

    from recorder.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("id: 1\nname: x\nkind: no_such_kind\n")
    result = CliRunner().invoke(main, ["check-config", "--interface", "eth0", "--db", str(tmp_path / "w.db"),
                                       "--rules", str(bad)])
    assert result.exit_code == 78
    assert len(result.output.splitlines()) == 1 and result.output.startswith(f"Error: rules: {bad}")


def test_signatures_on_each_sealed_file_equal_a_replay(tmp_path, detectors_registered):
    """The recorder's sealed file is matched by the same engine as `wiretrail replay` (in a worker
    process): the same alerts; after a restart, matched again, nothing is stored or queued twice."""
    from analysis.replay import SHIPPED_RULES, replay_captures
    from tests.analysis.behaviour.traffic import T0, Capture

    cap = Capture()
    req = b"GET /cgi-bin/view?file=../../etc/passwd HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    cap.session(0.0, "10.0.0.66", "10.0.0.20", 40000, 80, [(req, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")])
    pcap = cap.write(tmp_path / "test-eth1-20240501T100000Z-000000.pcap")
    db = tmp_path / "w.db"
    config = cfg(tmp_path, db, detect_window='"1h"', notify_min_severity=3)
    with Store(str(db)) as store:
        store.ensure_schema()
        store.add_capture(path=pcap, format="pcap", link_types="1", origin="recorder", interface="eth1",
                          sensor="shop-gw", sealed_at=int((T0 + 1) * NS), packets=len(cap.packets),
                          first_ts_ns=int(T0 * NS), last_ts_ns=int((T0 + 0.2) * NS))
    dets = load_detectors(config, lambda m: None)
    assert [d.name for d in dets] == ["behaviour", "signature"]
    live = LiveDetection(config, dets, "shop-gw", clock=lambda: T0 + 60)
    live.store.ensure_schema()
    live.run_once()
    live.stop()
    replay = replay_captures([pcap], rules=[str(SHIPPED_RULES / "wiretrail.rules")])
    assert replay.alerts, "the capture must set off a shipped signature"
    with Store(str(db)) as store:
        rows = list(store.query_alerts(kind="signature"))
        queued = len(store.pending_notifications("webhook:" + __import__("hashlib").sha256(
            b"http://127.0.0.1:9/x").hexdigest()[:16]))
    assert [(r["ts_ns"], r["signature_id"], r["src_ip"], r["dest_ip"], r["uid"]) for r in rows] == \
        [(a.ts_ns, a.signature_id, a.src_ip, a.dest_ip, a.uid) for a in replay.alerts]
    assert {json.loads(r["eve"])["host"] for r in rows} == {"shop-gw"} and queued == len(rows)
    again = LiveDetection(config, load_detectors(config, lambda m: None), "shop-gw", clock=lambda: T0 + 120)
    assert again.run_once() == 0
    again.stop()
    with Store(str(db)) as store:
        assert len(store.pending_notifications(again.notifier.channels[0].name)) == queued
