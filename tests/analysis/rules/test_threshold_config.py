"""threshold.config (``analysis.rules.thresholdconfig``): read beside the rules, every bad line
reported with path:line, and its thresholds, suppressions and rate filters applied as Suricata
applies them."""

from __future__ import annotations

from click.testing import CliRunner

from analysis.cli import main
from analysis.rules import Variables, load_rules
from analysis.rules.engine import match_captures
from analysis.rules.thresholdconfig import parse_threshold_config
from tests.analysis.behaviour.traffic import Capture

SERVER = "198.51.100.7"
CLIENTS = ["10.0.0.5", "10.0.0.6", "10.0.1.9"]
RULES = (
    'alert tcp any any -> any 80 (msg:"evil"; flow:to_server; content:"evil"; sid:1;)\n'
    'alert tcp any any -> any 80 (msg:"evil own"; flow:to_server; content:"evil"; '
    'threshold:type limit, track by_src, count 2, seconds 600; sid:2;)\n'
    'alert tcp any any -> any 80 (msg:"bad"; flow:to_server; content:"bad"; sid:3;)\n'
)


def capture(tmp_path) -> str:
    """Four connections from each client, one request each (evil and bad), a second apart."""
    cap = Capture()
    t = 0.0
    for n in range(4):
        for i, client in enumerate(CLIENTS):
            cap.session(t, client, SERVER, 40000 + 10 * n + i, 80, [(b"GET /evil/bad HTTP/1.0\r\n\r\n", b"")])
            t += 1
    return cap.write(tmp_path / "t.pcap")


def alerts(tmp_path, config: str | None):
    (tmp_path / "test.rules").write_text(RULES)
    if config is not None:
        (tmp_path / "threshold.config").write_text(config)
    rs = load_rules([tmp_path / "test.rules"], Variables.with_overrides({"HOME_NET": "10.0.0.0/24"}))
    assert not rs.errors, rs.errors
    return [(a.signature_id, a.src_ip) for a in match_captures([capture(tmp_path)], rs.rules)]


def count(found, sid, src=None) -> int:
    return sum(1 for s, ip in found if s == sid and (src is None or ip == src))


def test_without_a_config_every_match_alerts(tmp_path):
    found = alerts(tmp_path, None)
    assert (count(found, 1), count(found, 2), count(found, 3)) == (12, 6, 12)


def test_threshold_for_one_rule_replaces_its_own(tmp_path):
    found = alerts(tmp_path, "threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 600\n"
                             "event_filter gen_id 1, sig_id 2, type threshold, track by_rule, count 4, seconds 600\n")
    assert [count(found, 1, c) for c in CLIENTS] == [1, 1, 1]
    assert count(found, 2) == 3  # every 4th of 12 matches, the rule's own limit replaced
    assert count(found, 3) == 12


def test_global_threshold_only_where_the_rule_has_none(tmp_path):
    found = alerts(tmp_path, "threshold gen_id 0, sig_id 0, type limit, track by_flow, count 1, seconds 600\n"
                             "threshold gen_id 1, sig_id 0, type both, track by_dst, count 100, seconds 600\n")
    assert count(found, 1) == 12 and count(found, 3) == 12  # by_flow: each connection matches once anyway
    assert count(found, 2) == 6  # its own threshold stays


def test_suppress(tmp_path):
    found = alerts(tmp_path, "suppress gen_id 1, sig_id 3\n"
                             "suppress gen_id 1, sig_id 1, track by_src, ip [$HOME_NET]\n"
                             "suppress gen_id 0, sig_id 0, track by_either, ip 10.0.1.0/24\n")
    assert count(found, 3) == 0
    assert count(found, 1) == 0  # 10.0.0.x by the first, 10.0.1.9 by the global one
    assert [count(found, 2, c) for c in CLIENTS] == [2, 2, 0]


def test_rate_filter_pass_silences_until_its_timeout(tmp_path):
    found = alerts(tmp_path, "rate_filter gen_id 1, sig_id 1, track by_rule, count 2, \\\n"
                             "    seconds 600, new_action pass, timeout 5\n"
                             "rate_filter gen_id 1, sig_id 3, track by_src, count 1, seconds 600, new_action drop, "
                             "timeout 600\n")
    # matches at t = 0..11 s: two alert, the third (t=2) starts 5 s of pass, t=7 counts on in the
    # same window (past the count again): 5 s more from t=7, so t=12 would be the next
    assert count(found, 1) == 2
    assert count(found, 3) == 12  # drop still alerts on a passive sensor


def test_bad_lines_are_reported_with_path_and_line(tmp_path):
    text = ("# comment\n"
            "threshold gen_id 1, sig_id 7, type sometimes, track by_src, count 1, seconds 60\n"
            "suppress gen_id 1, sig_id 8, track by_src\n"
            "rate_filter gen_id 1, sig_id 9, track by_flow, count 1, seconds 1, new_action pass, timeout 1\n"
            "limit gen_id 1, sig_id 10\n"
            "threshold gen_id 1, sig_id 11, type limit, track by_src, count 0, seconds 60\n"
            "suppress gen_id 1, sig_id 12, track by_src, ip $NO_SUCH_VAR\n"
            "suppress gen_id 1, sig_id 13\n")
    entries, errors = parse_threshold_config(text, "t.config")
    assert [e.sid for e in entries] == [13]
    assert [(e.line, e.sid) for e in errors] == [(2, 7), (3, 8), (4, 9), (5, 10), (6, 11), (7, 12)]
    assert str(errors[0]).startswith("t.config:2: threshold.config: threshold type must be")
    (tmp_path / "a.rules").write_text(RULES)
    (tmp_path / "threshold.config").write_text(text)
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'threshold.config'}:4: threshold.config: rate_filter track must be" in result.stderr
    assert result.stdout.strip().splitlines() == ["3 rules loaded, 6 rejected"]  # the problems: on stderr
