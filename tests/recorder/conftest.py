"""Live-capture fixtures: a network namespace with a veth pair (tests/recorder/live.py says how),
and a loopback capture to replay onto it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.recorder.live import Netns, need_live
from tests.recorder.traffic import write_loopback_capture


@pytest.fixture
def netns():
    need_live()
    ns = Netns()
    try:
        ns.up()
    except subprocess.CalledProcessError as err:
        ns.down()
        pytest.skip(f"cannot create a network namespace here: {err.stderr.decode().strip()}")
    yield ns
    for rec in ns.recorders:  # a test that failed before stopping its recorder
        rec.kill()
    ns.down()


@pytest.fixture(scope="session")
def loop_pcap(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("traffic") / "loop20k.pcap"
    write_loopback_capture(path, 20_000, seed=7)
    return path
