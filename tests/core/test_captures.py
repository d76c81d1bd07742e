"""The shipped sample captures produce exactly the flows written beside them.

Each ``captures/<name>.pcap`` has a ``<name>.expected.json`` derived by hand from what
``captures/make_captures.py`` crafted (see ``captures/README.md``), never from Wiretrail's output.
The capture goes through ``wiretrail ingest`` and ``wiretrail flows --format json``; the set of
flows, keyed by proto and 4-tuple, must equal the expected list on every listed field. A field
Zeek leaves unset (JSON omits it) is expected as ``null``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from analysis.cli import main
from tests.helpers import REPO

CAPTURES = REPO / "captures"
NAMES = ["demo", "tcp_states", "encap"]
FIELDS = ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "conn_state", "history",
          "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "orig_bytes", "resp_bytes"]


def key(flow: dict) -> tuple:
    return flow["proto"], flow["id.orig_h"], flow["id.orig_p"], flow["id.resp_h"], flow["id.resp_p"]


def by_key(flows: list[dict], what: str) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for f in flows:
        assert key(f) not in out, f"{what}: two flows for {key(f)}"
        out[key(f)] = {name: f.get(name) for name in FIELDS}
    return out


def flows_of(capture: str, db: str) -> list[dict]:
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", "--db", db, capture])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["flows", "--db", db, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("name", NAMES)
def test_capture_gives_expected_flows(name, tmp_path):
    expected = by_key(json.loads((CAPTURES / f"{name}.expected.json").read_text()), "expected")
    ours = by_key(flows_of(str(CAPTURES / f"{name}.pcap"), str(tmp_path / "w.db")), "ours")
    problems = [f"missing flow {k}" for k in expected if k not in ours]
    problems += [f"unexpected flow {k}: {ours[k]}" for k in ours if k not in expected]
    for k in expected.keys() & ours.keys():
        problems += [f"{k} {field}: ours {ours[k][field]!r}, expected {expected[k][field]!r}"
                     for field in FIELDS if ours[k][field] != expected[k][field]]
    assert not problems, f"{name}.pcap:\n  " + "\n  ".join(sorted(problems))


def test_expected_files_list_every_field():
    for name in NAMES:
        for flow in json.loads((CAPTURES / f"{name}.expected.json").read_text()):
            assert list(flow) == FIELDS, f"{name}.expected.json: {flow}"


def make_captures(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CAPTURES / "make_captures.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_shipped_captures_are_reproducible():
    r = make_captures("--check")
    assert r.returncode == 0, r.stderr


def test_check_notices_a_changed_capture(tmp_path):
    r = make_captures("--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    demo = tmp_path / "demo.pcap"
    data = demo.read_bytes()
    demo.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    r = make_captures("--check", "--out", str(tmp_path))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "demo.pcap" in lines[0] and "tcp_states.pcap" not in lines[0]
