"""``wiretrail-recorder``: --version and check-config (exit codes and stderr through CliRunner)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from recorder import __version__
from recorder.cli import main
from recorder.core import config as config_module
from recorder.core.config import SETTINGS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No WIRETRAIL_* setting leaks in, and no /etc/wiretrail/recorder.toml on this machine is read."""
    for s in SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.toml"))


def run(args, env=None):
    return CliRunner().invoke(main, args, env=env)


def effective(output: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in output.splitlines())


def test_version():
    result = run(["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_check_config_prints_defaults():
    result = run(["check-config", "--interface", "eth0"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        'interface = ["eth0"]',
        'bpf = ""',
        "snaplen = 262144",
        "promisc = true",
        'output_dir = "/var/lib/wiretrail/captures"',
        'rotate_size = "1G"',
        'rotate_interval = "1h"',
        'retain_bytes = "0"',
        "min_free_percent = 5.0",
        "retain_days = 0.0",
        'encrypt_to = ""',
        'db = "/var/lib/wiretrail/wiretrail.db"',
        "local_net = []",
        "workers = 1",
        'sensor = ""',
        'buffer_size = "64M"',
        'stats_interval = "1m"',
        "parsers = true",
        "rules = []",
        "skip_invalid = false",
        "var = []",
        'detect_interval = "10s"',
        'detect_window = "1h"',
        'notify_smtp_url = ""',
        'notify_from = ""',
        "notify_to = []",
        "notify_webhook = []",
        'notify_webhook_format = "json"',
        "notify_min_severity = 2",
        'notify_aggregate = "2m"',
        'notify_digest = ""',
        "notify_rate_limit = 12",
    ]


def test_every_setting_has_a_flag_in_help():
    result = run(["check-config", "--help"])
    assert result.exit_code == 0
    for s in SETTINGS:
        if s.secret:  # a secret is never a flag (ps would show it) nor an environment variable
            assert s.flag + " " not in result.output
        else:
            assert s.flag in result.output and s.env in result.output
    assert "--no-promisc" in result.output


def test_precedence_file_env_flags(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('interface = ["eth0"]\nsnaplen = 1500\nworkers = 2\nrotate_size = "2G"\npromisc = true\n')
    result = run(["check-config", "--config", str(path), "--snaplen", "3000", "--no-promisc",
                  "--local-net", "10.0.0.0/8", "--local-net", "fd00::/8"],
                 env={"WIRETRAIL_SNAPLEN": "2000", "WIRETRAIL_WORKERS": "3"})
    assert result.exit_code == 0, result.output
    got = effective(result.stdout)
    assert got["snaplen"] == "3000"
    assert got["workers"] == "3"
    assert got["rotate_size"] == '"2G"'
    assert got["promisc"] == "false"
    assert got["interface"] == '["eth0"]'
    assert got["local_net"] == '["10.0.0.0/8", "fd00::/8"]'


def test_promisc_flag_unset_keeps_env():
    result = run(["check-config", "--interface", "eth0"], env={"WIRETRAIL_PROMISC": "no"})
    assert effective(result.stdout)["promisc"] == "false"


BAD = [
    # (args, env, file text, expected stderr line; {cfg} is the config path)
    (["--snaplen", "10"], {}, None, "snaplen: '10' is not between 64 and 262144 (from --snaplen)"),
    ([], {"WIRETRAIL_SNAPLEN": "x"}, None, "snaplen: 'x' is not a whole number (from WIRETRAIL_SNAPLEN)"),
    ([], {}, 'interface = ["eth0"]\n\nrotate_size = "12X"\n',
     "rotate_size: '12X' is not a size like 512M or 1G (from {cfg} line 3)"),
    (["--rotate-size", "10k"], {}, None, "rotate_size: '10k' is below the minimum 1M (from --rotate-size)"),
    (["--rotate-interval", "soon"], {}, None,
     "rotate_interval: 'soon' is not a duration like 30s, 15m or 1h (0 = off) (from --rotate-interval)"),
    ([], {"WIRETRAIL_WORKERS": "100"}, None, "workers: '100' is not between 1 and 64 (from WIRETRAIL_WORKERS)"),
    ([], {}, 'interface = ["eth0"]\nworkers = 0\n', "workers: 0 is not between 1 and 64 (from {cfg} line 2)"),
    (["--local-net", "10.0.0.0/8", "--local-net", "300.1.1.0/24"], {}, None,
     "local_net: '300.1.1.0/24' is not a network like 10.0.0.0/8 or fd00::/8 (from --local-net)"),
    ([], {}, 'interface = ["eth0"]\n# retention\nmin_free_percent = 150\n',
     "min_free_percent: 150 is not between 0 and 99 (from {cfg} line 3)"),
    ([], {}, 'interface = ["eth0"]\nsnaplen = 1500\nsnap_len = 1500\n', "snap_len: unknown setting (from {cfg} line 3)"),
    ([], {}, 'interface = ["eth0"]\nsnaplen = = 1\n', None),  # bad TOML: checked by pattern below
    (["--rules", "/nonexistent/local.rules"], {}, None,
     "rules: '/nonexistent/local.rules' is no rule file or folder (no such file or directory) (from --rules)"),
    ([], {}, 'interface = ["eth0"]\nnotify_smtp_url = "mail.example.com"\n',
     "notify_smtp_url: 'mail.example.com' is not an SMTP URL like smtp+starttls://user:password@mail.example.com:587 "
     "(from {cfg} line 2)"),
    ([], {}, 'interface = ["eth0"]\nnotify_webhook = ["https://hooks.invalid/T0/B0"]\n',
     "notify_webhook: 'https://hooks.invalid/T0/B0' names host 'hooks.invalid', which does not resolve "
     "(from {cfg} line 2)"),
    ([], {"WIRETRAIL_NOTIFY_SMTP_URL": "smtp://127.0.0.1"}, None,
     "notify_smtp_url: a secret is not read from the environment (WIRETRAIL_NOTIFY_SMTP_URL); put it in the config "
     "file or the systemd credential notify_smtp_url"),
    ([], {}, 'interface = ["eth0"]\nnotify_webhook_format = "xml"\n',
     "notify_webhook_format: 'xml' is not one of json, text (from {cfg} line 2)"),
    ([], {}, 'interface = ["eth0"]\nencrypt_to = "age1notakey"\n',
     "encrypt_to: 'age1notakey' is not an age X25519 public key (age1..., as age-keygen prints) (from {cfg} line 2)"),
    ([], {"WIRETRAIL_ENCRYPT_TO": "AGE-SECRET-KEY-1XYZ"}, None,
     "encrypt_to: 'AGE-SECRET-KEY-1XYZ' is a private key; give its public key (age1..., age-keygen -y KEYFILE) and "
     "keep the private key off the sensor (from WIRETRAIL_ENCRYPT_TO)"),
]


def test_encrypt_to_accepts_an_age_public_key():
    key = "age1thv0qj5l95ksqpf20guvzuaaaf3efjvpar9mylccmq4uwgwvd9es5pt457"  # age-keygen's output
    result = run(["check-config", "--interface", "eth0", "--encrypt-to", key])
    assert result.exit_code == 0, result.output
    assert f'encrypt_to = "{key}"' in result.stdout.splitlines()


@pytest.mark.parametrize(("args", "env", "text", "expected"), BAD)
def test_bad_values_exit_78_with_one_line(tmp_path, args, env, text, expected):
    cfg = tmp_path / "recorder.toml"
    extra = []
    if text is not None:
        cfg.write_text(text)
        cfg.chmod(0o640)  # not world-readable: secrets are read from it
        extra = ["--config", str(cfg)]
    result = run(["check-config", "--interface", "eth0", *extra, *args], env=env)
    assert result.exit_code == 78, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    if expected is None:
        assert lines[0].startswith(f"Error: {cfg} line 2: not valid TOML: ")
    else:
        assert lines[0] == "Error: " + expected.format(cfg=cfg)


def test_missing_explicit_config_exits_78(tmp_path):
    result = run(["check-config", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 78
    assert result.stderr == f"Error: {tmp_path / 'nope.toml'}: config file does not exist\n"


def test_no_interface_exits_78():
    result = run(["check-config"])
    assert result.exit_code == 78
    assert result.stderr.startswith("Error: interface: none given")


def test_default_config_file_is_read_when_present(tmp_path, monkeypatch):
    default = tmp_path / "etc.toml"
    default.write_text('interface = ["eth9"]\n')
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(default))
    result = run(["check-config"])
    assert result.exit_code == 0, result.output
    assert effective(result.stdout)["interface"] == '["eth9"]'


@pytest.mark.parametrize("args, setting", [
    (["--interface", "eth0", "--snaplen", "10"], "snaplen"),
    (["--interface", "eth0", "--rotate-size", "12k"], "rotate_size"),
    (["--interface", "eth0", "--local-net", "10.0.0.300/8"], "local_net"),
    (["--interface", "eth0", "--buffer-size", "lots"], "buffer_size"),
    ([], "interface"),
])
def test_run_exits_78_on_a_bad_setting_before_capturing(args, setting, tmp_path):
    result = run(["run", "--output-dir", str(tmp_path / "out"), "--db", str(tmp_path / "w.db"), *args],
                 env={"WIRETRAIL_SENSOR": None})
    assert result.exit_code == 78, result.output
    assert result.stderr.startswith(f"Error: {setting}") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "w.db").exists()


def test_run_names_an_interface_that_does_not_exist(tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.skip("opening a capture needs root")
    result = run(["run", "--interface", "wt-nonesuch0", "--output-dir", str(tmp_path / "out"),
                  "--db", str(tmp_path / "w.db")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: wt-nonesuch0: cannot capture: no such interface")
    assert result.stderr.count("\n") == 1
