"""sd_notify never blocks the capture loop, even when the manager stops reading."""

from __future__ import annotations

import socket

import pytest

from recorder.sdnotify import sd_notify


@pytest.mark.timeout(60)  # a blocking send would hang here: the timeout fails it
def test_sd_notify_sends_and_never_blocks(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert sd_notify("READY=1")
    assert manager.recv(100) == b"READY=1"
    sent = [sd_notify("WATCHDOG=1") for _ in range(500)]  # nobody reads: the queue fills up
    assert sent[0] and not sent[-1]  # the first ones queued, the rest dropped, none waited
    manager.close()


def test_sd_notify_without_a_manager(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
