"""The systemd unit: systemd's own checks where systemd-analyze is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

UNIT = REPO / "systemd" / "wiretrail-recorder.service"
EXPOSURE_LIMIT = 2.5  # the README reports the measured figure


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_declares_what_the_recorder_relies_on():
    s = settings(UNIT.read_text())
    assert s["Type"] == ["notify"] and s["WatchdogSec"]
    assert s["RestartPreventExitStatus"] == ["78"] and s["Restart"] == ["on-failure"]
    assert s["AmbientCapabilities"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert s["CapabilityBoundingSet"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["User"] == ["wiretrail"] and s["StateDirectory"] == ["wiretrail"]
    assert s["ConfigurationDirectory"] == ["wiretrail"]
    assert any("check-config" in v for v in s["ExecStartPre"])
    assert any(" run --config /etc/wiretrail/recorder.toml" in v for v in s["ExecStart"])


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's recorder (verify checks it exists)."""
    exe = Path(sys.executable).with_name("wiretrail-recorder")
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/wiretrail/bin/wiretrail-recorder", str(exe)))
    return unit


def test_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = _installed_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "wiretrail-recorder.service" not in r.stderr, r.stderr  # no warning about our unit


def test_systemd_analyze_security_exposure(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = _installed_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    if "--offline" in r.stderr and "unrecognized" in r.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= EXPOSURE_LIMIT, r.stdout
