"""Sigma rules named in the recorder's ``rules`` setting, run live over the log events of its
store (``analysis.live_sigma``): what `wiretrail logs detect` finds, stored once across rounds and
restarts, within the window only; a bad Sigma file is a configuration error."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.live import behaviour_detector, signature_detector
from analysis.live_sigma import sigma_detector
from analysis.replay import SHIPPED_RULES
from recorder.core.config import load_config
from recorder.core.errors import ConfigError
from recorder.core.store import Store
from recorder.detect import LiveDetection
from tests.analysis.behaviour.traffic import T0

pytest.importorskip("sigma")
SSH = SHIPPED_RULES / "sigma" / "linux_ssh_password_guessing.yml"


def _config(tmp_path, db, rules: list[str]):
    path = tmp_path / "r.toml"
    path.write_text(f'db = "{db}"\nsensor = "shop-gw"\ndetect_window = "1h"\n'
                    f'rules = [{", ".join(repr(str(r)).replace(chr(39), chr(34)) for r in rules)}]\n')
    return load_config(str(path), {}, {})


def _auth_log_db(tmp_path, db):
    auth = tmp_path / "auth.log"
    auth.write_text("".join(
        f"{datetime.fromtimestamp(T0 + 100 + i, UTC).strftime('%b %e %H:%M:%S')} srv sshd[{i}]: Failed password "
        f"for root from 203.0.113.5 port {40000 + i} ssh2\n" for i in range(12)))
    os.utime(auth, (T0 + 600, T0 + 600))
    r = CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(auth)])
    assert r.exit_code == 0, r.output
    return db


def _log_alerts(db) -> list[tuple]:
    with Store(str(db)) as store:
        return [(r["signature_id"], r["signature"], r["src_ip"]) for r in store.query_alerts(kind="log")]


def test_sigma_rules_over_the_stores_logs_once(tmp_path, db_url):
    db = _auth_log_db(tmp_path, db_url)
    config = _config(tmp_path, db, [SSH])
    assert behaviour_detector(config, print) is None and signature_detector(config, print) is None
    det = sigma_detector(config, print)
    assert det is not None and det.rules >= 2
    live = LiveDetection(config, [det], "shop-gw", clock=lambda: T0 + 700)
    live.store.ensure_schema()
    assert live.run_once() >= 1
    assert live.run_once() == 0  # the same window again: nothing new
    live.stop()
    stored = _log_alerts(db)
    assert ("SSH password guessing from one address" in {s for _, s, _ in stored}
            and {ip for *_, ip in stored} == {"203.0.113.5"}), stored
    # what `wiretrail logs detect` finds over the whole store
    from analysis.logs.detect import detect
    from analysis.logs.sigma import load_rules

    with Store(str(db)) as store:
        offline = detect(store, load_rules([str(SSH)]), joined=False, keep=False)
    assert sorted((a.signature_id, a.signature, a.src_ip) for a, _ in offline.alerts) == sorted(stored)
    # a restart: the store remembers
    again = LiveDetection(config, [sigma_detector(config, print)], "shop-gw", clock=lambda: T0 + 900)
    assert again.run_once() == 0
    again.stop()
    assert _log_alerts(db) == stored


def test_sigma_window_limits_what_is_seen(tmp_path, db_url):
    db = _auth_log_db(tmp_path, db_url)
    config = _config(tmp_path, db, [SSH])
    live = LiveDetection(config, [sigma_detector(config, print)], "shop-gw", clock=lambda: T0 + 3 * 3600)
    assert live.run_once() == 0  # the failed logins are more than an hour old
    live.stop()


def test_bad_sigma_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("title: broken\nlogsource:\n    product: linux\ndetection:\n    sel:\n        a: 1\n"
                   "    condition: nosuch\n")
    with pytest.raises(ConfigError, match=r"^rules: .*bad.yml"):
        sigma_detector(_config(tmp_path, tmp_path / "w.db", [bad]), print)
