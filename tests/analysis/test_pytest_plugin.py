"""The pytest plugin (entry point pytest11 "wiretrail"): a user's test file, run by pytester with the
installed plugin, replays built captures through the shipped behaviour rules; one expectation
holds, one does not and fails with the diff."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import entry_points

import pytest

from analysis.replay import SHIPPED_RULES
from tests.analysis.behaviour.traffic import BRUTE, CLEARTEXT, SCAN, SWEEP, build_captures

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_as_an_entry_point():
    [ep] = [e for e in entry_points(group="pytest11") if e.name == "wiretrail"]
    assert ep.value == "analysis.pytest_plugin"


@pytest.fixture
def user_project(pytester):
    a, b = build_captures(pytester.path)
    pytester.makefile(".yaml", good=f"""\
        only: true
        alerts:
          - sid: {SCAN}
            count: 1
            src_ip: 10.0.0.66
          - {SWEEP}
          - {BRUTE}
          - sid: {CLEARTEXT}
            count: 6
            dest_port: 21
        """, bad=f"""\
        alerts:
          - sid: {SCAN}
            count: 2
          - sid: 9000005
        """)
    pytester.makepyfile(test_detections=textwrap.dedent(f"""\
        A, B = {a!r}, {b!r}

        def test_scan_and_logins(wiretrail_replay):
            result = wiretrail_replay(A, B, expect="good.yaml")
            assert result.sids == {{{SCAN}: 1, {SWEEP}: 1, {BRUTE}: 1, {CLEARTEXT}: 6}}
            assert result.alerts[0]["event_type"] == "alert" and result.alerts[0]["src_ip"] == "10.0.0.66"
            assert result.packets > 0 and result.flows > 0 and result.warnings == []

        def test_wrong_expectations(wiretrail_replay):
            wiretrail_replay(A, rules=[{str(SHIPPED_RULES)!r}]) \\
                .assert_expected("bad.yaml")
        """))
    return pytester


def test_user_tests_pass_and_fail_with_the_diff(user_project):
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: alerts differ from bad.yaml:",
        f"*bad.yaml:2: sid {SCAN}: expected exactly 2, got 1",
        "*bad.yaml:4: sid 9000005: expected at least 1, got 0",
        f"*fired: {SCAN} x1",
    ])


def test_bad_rules_and_vars_raise(pytester):
    (pytester.path / "bad.rules").write_text('alert tcp $NOWHERE any -> any any (msg:"x"; sid:1;)\n')
    pytester.makepyfile(textwrap.dedent("""\
        import pytest
        from analysis.replay import ReplayError

        def test_rejected(wiretrail_replay):
            with pytest.raises(ReplayError) as info:
                wiretrail_replay("missing.pcap", rules="bad.rules")
            assert info.value.errors == ["bad.rules:1: undefined address variable $NOWHERE"]

        def test_bad_var(wiretrail_replay):
            with pytest.raises(ValueError, match="is not NAME=VALUE"):
                wiretrail_replay("missing.pcap", vars=["NOWHERE"])
        """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_kept_store_and_both_spellings_of_vars(pytester, tmp_path):
    a, _ = build_captures(tmp_path)
    pytester.makepyfile(textwrap.dedent(f"""\
        from recorder.core.store import Store

        def test_it(wiretrail_replay):
            db = {str(tmp_path / "kept.db")!r}
            r = wiretrail_replay({a!r}, db=db, vars={{"HOME_NET": "10.0.0.0/8"}})
            assert r.sids == {{{SCAN}: 1}}
            assert wiretrail_replay({a!r}, db=db, vars=["HOME_NET=10.0.0.0/8"]).sids == {{{SCAN}: 1}}
            with Store(db) as store:
                assert [r["signature_id"] for r in store.query_alerts()] == [{SCAN}]  # stored once
        """))
    # In a subprocess: an in-process run would unload the modules it imported (SQLAlchemy among them).
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_plugin_import_is_cheap():
    """Loaded by every pytest run where Wiretrail is installed: it must not import Wiretrail's modules."""
    import subprocess

    code = ("import sys, analysis.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('recorder', 'analysis.cli', 'sqlalchemy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
