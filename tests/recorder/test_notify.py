"""Notifications against a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1:
aggregation, queued while the server is down then delivered, nothing lost or repeated across a
restart (a new Store and Notifier on the same database), rate limit, test-notify."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("aiosmtpd")

from recorder.core.config import load_config  # noqa: E402
from recorder.core.store import Store  # noqa: E402
from recorder.notify import Notifier  # noqa: E402
from tests.recorder.notifyservers import HTTPReceiver, SMTPServer, free_port  # noqa: E402

T0 = 1_793_696_400_000_000_000


def config(tmp_path, smtp_port: int, http_port: int, **extra):
    lines = [f'notify_smtp_url = "smtp://127.0.0.1:{smtp_port}"',
             'notify_to = ["owner@shop.example", "it@shop.example"]', 'notify_from = "sensor@shop.example"',
             f'notify_webhook = ["http://127.0.0.1:{http_port}/hook/secret-token"]',
             f'db = "{tmp_path / "w.db"}"', 'sensor = "shop-gw"']
    lines += [f"{k} = {v}" for k, v in {"notify_aggregate": '"0"', **extra}.items()]
    path = tmp_path / "recorder.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return load_config(str(path), {}, {})


def brute(i: int) -> dict:
    return {"ts_ns": T0 + i * 10**8, "signature_id": 2100001, "signature": "ET SCAN FTP brute force attempt",
            "severity": 1, "src_ip": "203.0.113.66", "src_port": 40000 + i, "dest_ip": "192.168.1.20",
            "dest_port": 21, "proto": "tcp", "app_proto": "ftp", "kind": "signature", "eve": {}}


def scan() -> dict:
    return {"ts_ns": T0, "signature_id": 9000001, "severity": 2, "src_ip": "203.0.113.66", "dest_ip": "192.168.1.20",
            "dest_port": 22, "signature": "Port scan: 203.0.113.66 probed 100 tcp ports on 192.168.1.20",
            "kind": "behaviour", "eve": {"alert": {"metadata": {"wiretrail_behaviour": ["port_scan"]}}}}


def low() -> dict:
    return {**scan(), "signature_id": 9000099, "severity": 3, "signature": "Something minor"}


def test_700_attempts_are_one_message_with_a_count_per_channel(tmp_path):
    smtp_port, http_port = free_port(), free_port()
    cfg = config(tmp_path, smtp_port, http_port)
    with SMTPServer(smtp_port) as smtp, HTTPReceiver(http_port) as http, Store(cfg.db) as store:
        store.ensure_schema()
        n = Notifier(cfg, store, "shop-gw")
        assert n.submit([brute(i) for i in range(700)] + [scan(), low()]) == 2 * 701  # severity 3 not queued
        for ch in n.channels:
            assert n.flush(ch) == 701
            assert n.flush(ch) == 0  # nothing repeated
    assert len(smtp.messages) == 1
    rcpts, msg = smtp.messages[0]
    assert rcpts == ["owner@shop.example", "it@shop.example"]
    body = msg.get_payload(decode=True).decode()
    subject = " ".join(msg["Subject"].split())  # unfolded
    assert subject == "[wiretrail shop-gw] 2 findings: ET SCAN FTP brute force attempt (x700), Port scan"
    assert "700 times until" in body and "from 203.0.113.66 to 192.168.1.20 port 21 (ftp)" in body
    assert "guessing passwords" not in body  # a signature: advice by severity
    assert "Someone is mapping which services" in body  # the port scan's advice
    assert "wiretrail alerts --db " in body and "--host 203.0.113.66" in body
    assert len(http.posts) == 1
    path, payload = http.posts[0]
    assert path == "/hook/secret-token" and len(payload["alerts"]) == 701 and payload["subject"] == subject


def test_queued_while_server_down_then_delivered_once_after_restart(tmp_path, caplog):
    smtp_port, http_port = free_port(), free_port()
    cfg = config(tmp_path, smtp_port, http_port, notify_webhook_format='"text"')
    with Store(cfg.db) as store:
        store.ensure_schema()
        n = Notifier(cfg, store, "shop-gw")
        n.submit([brute(0), scan()])
        for ch in n.channels:  # both servers down: kept, with a back-off
            assert n.flush(ch) == 0
            pending = store.pending_notifications(ch.name)
            assert len(pending) == 2 and pending[0]["attempts"] == 1 and "refused" in pending[0]["error"].lower()
            assert pending[0]["next_try_ns"] > time.time() * 1e9
            assert n.flush(ch) == 0  # backing off: not even tried
        assert "kept queued, next try in 5s" in caplog.text
    with SMTPServer(smtp_port) as smtp, HTTPReceiver(http_port) as http, Store(cfg.db) as store:
        later = Notifier(cfg, store, "shop-gw", clock=lambda: time.time() + 6)  # "restart", after the back-off
        assert [later.flush(ch) for ch in later.channels] == [2, 2]
        assert [later.flush(ch) for ch in later.channels] == [0, 0]
        again = Notifier(cfg, store, "shop-gw", clock=lambda: time.time() + 60)  # another restart
        assert [again.flush(ch) for ch in again.channels] == [0, 0]
    assert len(smtp.messages) == 1 and len(http.posts) == 1
    assert set(http.posts[0][1]) == {"text"} and "Port scan" in http.posts[0][1]["text"]


def test_aggregation_window_and_rate_limit(tmp_path):
    smtp_port, http_port = free_port(), free_port()
    cfg = config(tmp_path, smtp_port, http_port, notify_aggregate='"2m"', notify_rate_limit=1)
    now = [time.time()]
    with SMTPServer(smtp_port) as smtp, Store(cfg.db) as store:
        store.ensure_schema()
        n = Notifier(cfg, store, "shop-gw", clock=lambda: now[0])
        smtp_ch = n.channels[0]
        n.submit([brute(0)])
        assert n.flush(smtp_ch) == 0  # gathering for 2 minutes
        now[0] += 60
        n.submit([brute(1)])
        assert n.flush(smtp_ch) == 0
        now[0] += 61
        assert n.flush(smtp_ch) == 2  # both, in one message
        n.submit([scan()])
        now[0] += 121
        assert n.flush(smtp_ch) == 0  # one message an hour
        now[0] += 3600
        assert n.flush(smtp_ch) == 1
    assert len(smtp.messages) == 2


def test_test_notify_says_which_channel_worked(tmp_path):
    from click.testing import CliRunner

    from recorder.cli import main

    smtp_port, http_port = free_port(), free_port()
    config(tmp_path, smtp_port, http_port)  # writes the file
    with SMTPServer(smtp_port) as smtp:  # no webhook receiver: that channel fails
        result = CliRunner().invoke(main, ["test-notify", "--config", str(tmp_path / "recorder.toml")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"e-mail to owner@shop.example, it@shop.example via 127.0.0.1:{smtp_port}: sent"
    assert lines[1].startswith(f"webhook http://127.0.0.1:{http_port}/...: FAILED: URLError")
    assert "secret-token" not in result.output
    assert len(smtp.messages) == 1 and "test message" in smtp.messages[0][1]["Subject"]


def test_daily_digest_once_a_day_also_when_quiet(tmp_path):
    from datetime import UTC, datetime

    smtp_port, http_port = free_port(), free_port()
    cfg = config(tmp_path, smtp_port, http_port, notify_digest='"07:30"')
    day = datetime(2026, 12, 7, 7, 29, tzinfo=UTC).timestamp()
    now = [day]
    with SMTPServer(smtp_port) as smtp, Store(cfg.db) as store:
        store.ensure_schema()
        n = Notifier(cfg, store, "shop-gw", clock=lambda: now[0])
        ch = n.channels[0]
        assert not n.digest(ch)  # 07:29: not yet
        now[0] += 120
        assert n.digest(ch)
        assert not Notifier(cfg, store, "shop-gw", clock=lambda: now[0] + 60).digest(ch)  # restarted: already sent
        store.add_alerts([{**brute(0), "ts_ns": int((now[0] + 3600) * 1e9), "gid": 1, "rev": 1, "action": "allowed"}])
        now[0] += 86400
        assert n.digest(ch)
    subjects = [" ".join(m["Subject"].split()) for _, m in smtp.messages]
    assert subjects == ["[wiretrail shop-gw] daily digest: no alerts",
                        "[wiretrail shop-gw] daily digest: 1 alert, 1 finding: ET SCAN FTP brute force attempt"]
    assert "The last 24 hours on the sensor 'shop-gw': 1 alert." in smtp.messages[1][1].get_payload(decode=True).decode()


def test_starttls_with_login(tmp_path, monkeypatch):
    """smtp+starttls:// with a user and a password (percent-encoded in the URL) against a server
    that requires STARTTLS before AUTH; the client verifies the server's certificate."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this one certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    smtp_port = free_port()
    path = tmp_path / "r.toml"
    path.write_text(f'notify_smtp_url = "smtp+starttls://shop%40example:p%3Ass@127.0.0.1:{smtp_port}"\n'
                    f'notify_to = ["owner@shop.example"]\ndb = "{tmp_path / "w.db"}"\nnotify_aggregate = "0"\n')
    path.chmod(0o600)
    cfg = load_config(str(path), {}, {})
    with SMTPServer(smtp_port, tls_context=server_ctx, login=("shop@example", "p:ss")) as smtp, \
            Store(cfg.db) as store:
        store.ensure_schema()
        n = Notifier(cfg, store, "shop-gw")
        n.submit([scan()])
        assert n.flush(n.channels[0]) == 1
    assert smtp.logins == ["shop@example"] and len(smtp.messages) == 1
