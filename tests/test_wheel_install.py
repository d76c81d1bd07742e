"""Installed as users install it: a wheel in a fresh virtualenv outside the checkout, run from a
temporary directory, first as Python, then with the compiled core built the README's way.

The rest of the suite runs on an editable install inside the checkout, where files found
relative to the source tree are found by accident; here nothing of the checkout is on the path.
The dependencies come from PyPI (pip's cache makes a second run quick).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.cli.apps import LOG_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "captures" / "demo.pcap"
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, a work folder outside the checkout, the environment to run in)."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "WIRETRAIL_", "VIRTUAL_ENV"))}
    # built from a copy: setuptools builds in the source tree, where an old build/ could leak into the wheel
    src = base / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "_compiled", "__pycache__", ".pytest_cache",
        ".hypothesis", "demo-out", "out", ".nfstream-venv"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(src)], base, env)
    wheel = next((base / "dist").glob("wiretrail-*.whl"))
    _run([sys.executable, "-m", "venv", str(base / "venv")], base, env)
    bin_ = base / "venv" / "bin"
    _run([str(bin_ / "pip"), "install", "-q", f"{wheel}[compiled]", "pytest"], base, env)
    work = base / "work"
    work.mkdir()
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    return bin_, work, env


def _where(bin_: Path, work: Path, env: dict, module: str) -> Path:
    r = _run([str(bin_ / "python"), "-c", f"import {module}; print({module}.__file__)"], work, env)
    return Path(r.stdout.strip())


def _every_command(bin_: Path, work: Path, env: dict) -> dict[str, str]:
    """Runs each command a user starts with from ``work``; returns their outputs by name."""
    wt, out = str(bin_ / "wiretrail"), {}
    shutil.copy(DEMO, work / "demo.pcap")
    for db in work.glob("case.db*"):
        db.unlink()

    def run(name, *args):
        out[name] = _run([wt, *args], work, env).stdout

    run("version", "--version")
    run("ingest", "ingest", "--db", "case.db", "demo.pcap")
    run("flows", "flows", "--db", "case.db", "--limit", "3", "--format", "json")
    for name in [*LOG_COMMANDS, "hosts"]:
        run(name, name, "--db", "case.db", "--format", "json")
    run("db migrate", "db", "migrate", "--db", "case.db")
    run("db info", "db", "info", "--db", "case.db")
    run("replay", "replay", "demo.pcap", "--db", "case.db", "--format", "json")
    own = work / "own-rules"
    own.mkdir(exist_ok=True)
    (own / "local.rules").write_text(
        'alert tcp any any -> any any (msg:"any TCP SYN"; flags:S; classtype:misc-activity; sid:1000001; rev:1;)\n')
    run("replay --rules", "replay", "demo.pcap", "--rules", str(own), "--format", "json")
    run("rules check", "rules", "check", str(own))
    run("alerts", "alerts", "--db", "case.db", "--format", "json")
    run("verify", "verify", "--db", "case.db")
    (work / "recorder.toml").write_text(f'interface = ["lo"]\noutput_dir = "{work / "rec"}"\ndb = "{work / "rec.db"}"\n')
    out["check-config"] = _run([str(bin_ / "wiretrail-recorder"), "check-config", "--config", "recorder.toml"],
                               work, env).stdout
    (work / "test_detections.py").write_text(textwrap.dedent("""\
        def test_replay_fixture(wiretrail_replay):
            result = wiretrail_replay("demo.pcap")
            assert result.packets > 0 and result.flows > 0
        """))
    out["pytest plugin"] = _run([str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "test_detections.py"], work, env).stdout
    return out


def _check(out: dict[str, str]) -> None:
    assert len(json.loads(out["flows"])) == 3
    assert json.loads(out["dns"]) and json.loads(out["http"])
    # the shipped rules fired (cleartext credentials in the demo capture), and only ours with --rules
    shipped = {a["alert"]["signature_id"] for a in json.loads(out["replay"])}
    assert shipped and 1000001 not in shipped
    assert {a["alert"]["signature_id"] for a in json.loads(out["replay --rules"])} == {1000001}
    assert "1 rules loaded, 0 rejected" in out["rules check"]
    assert json.loads(out["alerts"])
    assert "interface" in out["check-config"]
    assert "1 passed" in out["pytest plugin"]


@pytest.mark.timeout(2400)  # builds a wheel and a fresh virtualenv (pip from its cache)
def test_wheel_outside_the_checkout_as_python(installed):
    bin_, work, env = installed
    for module in ("analysis", "recorder"):
        assert ROOT not in _where(bin_, work, env, module).parents
    shipped = _run([str(bin_ / "python"), "-c", "from analysis.resources import ruleset; print(ruleset())"], work, env)
    assert "site-packages" in shipped.stdout and ROOT.as_posix() not in shipped.stdout
    out = _every_command(bin_, work, env)
    assert "compiled core modules: none (not built)" in out["version"], out["version"]
    _check(out)


@pytest.mark.timeout(2400)  # compiles the core in the fresh virtualenv (about 2 min on 2 idle cores)
def test_wheel_with_the_compiled_core(installed):
    bin_, work, env = installed
    _run([str(bin_ / "python"), "-m", "recorder.core.build_compiled"], work, env, timeout=1800)
    out = _every_command(bin_, work, env)
    built = re.search(r"compiled core modules: (\d+) of (\d+) built$", out["version"].strip())
    assert built and built[1] == built[2] and int(built[1]) > 0, out["version"]
    _check(out)


@pytest.mark.timeout(2400)  # run alone, it builds the wheel and its virtualenv (the fixture)
def test_wheel_carries_its_licence(installed):
    """The wheel declares its licence as an SPDX expression (the TOML table form is deprecated
    and setuptools stops building it in 2027) and carries the licence's text."""
    bin_, work, env = installed
    code = ("import importlib.metadata as m; d = m.distribution('wiretrail'); "
            "files = [f for f in d.files if f.name == 'LICENSE']; "
            "print(d.metadata['License-Expression']); print(files[0].read_text().splitlines()[0] if files else '')")
    r = _run([str(bin_ / "python"), "-c", code], work, env)
    assert r.stdout.splitlines() == ["BSD-3-Clause", "BSD 3-Clause License"]
