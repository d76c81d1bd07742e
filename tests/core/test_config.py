"""Recorder configuration: defaults < TOML file < WIRETRAIL_* environment < flags, one-line errors."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from pathlib import Path

import pytest

from recorder.core.config import (
    SETTINGS,
    Config,
    load_config,
    render_config,
    require_runnable,
    toml_key_line,
)
from recorder.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "systemd" / "recorder.example.toml"


def load(tmp_path, toml: str | None = None, env=None, overrides=None) -> Config:
    path = None
    if toml is not None:
        path = tmp_path / "recorder.toml"
        path.write_text(toml)
    return load_config(None if path is None else str(path), env or {}, overrides or {},
                       default_path=str(tmp_path / "absent.toml"))


def error_of(tmp_path, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **kw)
    assert info.value.exit_code == 78
    text = str(info.value)
    assert "\n" not in text
    return text


def test_config_fields_are_the_settings_table():
    assert [f.name for f in dataclasses.fields(Config)] == [s.name for s in SETTINGS]


def test_defaults(tmp_path):
    c = load(tmp_path)
    assert c.interface == ()
    assert c.bpf == ""
    assert c.snaplen == 262144
    assert c.promisc is True
    assert c.output_dir == Path("/var/lib/wiretrail/captures")
    assert c.rotate_size == 1 << 30
    assert c.rotate_interval == 3600
    assert c.retain_bytes == 0
    assert c.min_free_percent == 5.0
    assert c.retain_days == 0.0
    assert c.db == "/var/lib/wiretrail/wiretrail.db"
    assert c.local_net == ()
    assert c.workers == 1


def test_precedence_file_then_env_then_flags(tmp_path):
    toml = 'snaplen = 1500\nworkers = 2\nbpf = "tcp"\ninterface = ["eth0"]\n'
    env = {"WIRETRAIL_SNAPLEN": "2000", "WIRETRAIL_WORKERS": "3"}
    c = load(tmp_path, toml, env, {"snaplen": "3000", "workers": None, "interface": ()})
    assert c.snaplen == 3000   # flag beats env beats file
    assert c.workers == 3      # env beats file; an unset flag (None) changes nothing
    assert c.bpf == "tcp"      # file beats default
    assert c.interface == ("eth0",)  # an empty repeated flag changes nothing


def test_default_file_read_only_when_present(tmp_path):
    default = tmp_path / "default.toml"
    assert load_config(None, {}, {}, default_path=str(default)).snaplen == 262144
    default.write_text("snaplen = 128\n")
    assert load_config(None, {}, {}, default_path=str(default)).snaplen == 128


def test_explicit_file_must_exist(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml: config file does not exist"):
        load_config(str(missing), {}, {})


@pytest.mark.parametrize(("raw", "expected"), [
    ("1G", 1 << 30), ("512M", 512 << 20), ("100k", 100 << 10), ("0", 0), ("1048576", 1 << 20),
    ("2GiB", 2 << 30), ("1.5G", 3 << 29), ("1 t", 1 << 40),
])
def test_sizes(tmp_path, raw, expected):
    assert load(tmp_path, env={"WIRETRAIL_RETAIN_BYTES": raw}).retain_bytes == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("1h", 3600), ("15m", 900), ("30s", 30), ("0", 0), ("90", 90), ("1d", 86400), ("1h30m", 5400),
])
def test_durations(tmp_path, raw, expected):
    assert load(tmp_path, env={"WIRETRAIL_ROTATE_INTERVAL": raw}).rotate_interval == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("NO", False),
])
def test_env_bools(tmp_path, raw, expected):
    assert load(tmp_path, env={"WIRETRAIL_PROMISC": raw}).promisc is expected


def test_lists_from_env_file_and_flags(tmp_path):
    c = load(tmp_path, env={"WIRETRAIL_INTERFACE": "eth0, eth1", "WIRETRAIL_LOCAL_NET": "10.0.0.0/8,fd00::/8"})
    assert c.interface == ("eth0", "eth1")
    assert c.local_net == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    c = load(tmp_path, 'local_net = ["192.168.1.0/24"]\n', overrides={"interface": ("eth2", "eth3,eth4")})
    assert c.interface == ("eth2", "eth3", "eth4")
    assert c.local_net == (ipaddress.ip_network("192.168.1.0/24"),)


def test_toml_native_values(tmp_path):
    c = load(tmp_path, "rotate_size = 2097152\nrotate_interval = 60\nmin_free_percent = 10\npromisc = false\n")
    assert (c.rotate_size, c.rotate_interval, c.min_free_percent, c.promisc) == (2 << 20, 60, 10.0, False)


BAD_FILE = [
    # (toml, setting, fragment, line)
    ('snaplen = 10\n', "snaplen", "10 is not between 64 and 262144", 1),
    ('bpf = ""\n\nrotate_size = "12X"\n', "rotate_size", "'12X' is not a size like 512M or 1G", 3),
    ('# c\nrotate_size = "512k"\n', "rotate_size", "'512k' is below the minimum 1M", 2),
    ('rotate_interval = "soon"\n', "rotate_interval", "'soon' is not a duration", 1),
    ('\n\n\n  workers = 65\n', "workers", "65 is not between 1 and 64", 4),
    ('workers = "two"\n', "workers", "'two' is not a whole number", 1),
    ('local_net = ["10.0.0.0/8",\n  "10.0.0.0/33"]\n', "local_net", "'10.0.0.0/33' is not a network", 1),
    ('min_free_percent = 99.5\n', "min_free_percent", "99.5 is not between 0 and 99", 1),
    ('retain_days = -1\n', "retain_days", "-1 is below the minimum 0", 1),
    ('promisc = "maybe"\n', "promisc", "'maybe' is not true or false", 1),
    ('interface = ["eth 0"]\n', "interface", "'eth 0' is not an interface name", 1),
    ('snaplen = true\n', "snaplen", "true is not a whole number", 1),
]


@pytest.mark.parametrize(("toml", "name", "fragment", "line"), BAD_FILE)
def test_bad_file_values_name_setting_file_and_line(tmp_path, toml, name, fragment, line):
    text = error_of(tmp_path, toml=toml)
    assert text == f"{name}: {fragment}{text.split(fragment, 1)[1]}"
    assert text.endswith(f"(from {tmp_path / 'recorder.toml'} line {line})")


@pytest.mark.parametrize(("name", "raw", "fragment"), [
    ("snaplen", "abc", "'abc' is not a whole number"),
    ("snaplen", "262145", "'262145' is not between 64 and 262144"),
    ("rotate_size", "12X", "'12X' is not a size like 512M or 1G"),
    ("rotate_interval", "1w", "'1w' is not a duration"),
    ("workers", "0", "'0' is not between 1 and 64"),
    ("local_net", "10.0.0.0/8,nonsense", "'nonsense' is not a network"),
    ("min_free_percent", "nan", "'nan' is not a number"),
])
def test_bad_env_and_flag_values_name_the_source(tmp_path, name, raw, fragment):
    env_var, flag = f"WIRETRAIL_{name.upper()}", "--" + name.replace("_", "-")
    from_env = error_of(tmp_path, env={env_var: raw})
    assert from_env.startswith(f"{name}: {fragment}") and from_env.endswith(f" (from {env_var})")
    assert error_of(tmp_path, overrides={name: raw}).endswith(f"(from {flag})")
    assert error_of(tmp_path, overrides={name: raw}).startswith(f"{name}: {fragment}")


def test_unknown_key_names_key_and_line(tmp_path):
    text = error_of(tmp_path, toml='snaplen = 1500\n\nsnap_len = 1500\n')
    assert text == f"snap_len: unknown setting (from {tmp_path / 'recorder.toml'} line 3)"
    text = error_of(tmp_path, toml='workers = 1\n[capture]\nsnaplen = 1\n')
    assert text == f"capture: unknown setting (from {tmp_path / 'recorder.toml'} line 2)"


def test_bad_toml_names_file_and_line(tmp_path):
    text = error_of(tmp_path, toml='snaplen = 1500\nworkers = \n')
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'recorder.toml'))} line 2: not valid TOML: .+", text)


def test_key_line_lookup():
    text = 'a = 1\n# snaplen = 2\n  "snaplen" = 3\nsnaplen_x = 4\n[db]\n'
    assert toml_key_line(text, "snaplen") == 3
    assert toml_key_line(text, "db") == 5
    assert toml_key_line(text, "nothing") is None


def test_interface_required_to_run(tmp_path):
    with pytest.raises(ConfigError, match="^interface: none given"):
        require_runnable(load(tmp_path))
    require_runnable(load(tmp_path, env={"WIRETRAIL_INTERFACE": "eth0"}))


def test_rendered_config_reads_back(tmp_path):
    c = load(tmp_path, env={"WIRETRAIL_INTERFACE": "eth0", "WIRETRAIL_LOCAL_NET": "10.0.0.0/8",
                            "WIRETRAIL_ROTATE_INTERVAL": "90", "WIRETRAIL_RETAIN_BYTES": "1500",
                            "WIRETRAIL_BPF": 'host "x"'})
    lines = render_config(c)
    assert [line.split(" = ")[0] for line in lines] == [s.name for s in SETTINGS]
    assert load(tmp_path, "\n".join(lines) + "\n") == c


def test_example_file_documents_every_setting(tmp_path):
    text = EXAMPLE.read_text()
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    data = tomllib.loads(uncommented)
    assert sorted(data) == sorted(s.name for s in SETTINGS)
    defaults = load(tmp_path)
    c = load(tmp_path, uncommented)
    for s in SETTINGS:
        if s.name not in ("interface", "local_net"):
            assert getattr(c, s.name) == getattr(defaults, s.name), s.name


def test_secrets_only_from_a_private_file_or_a_credential(tmp_path):
    """The SMTP URL holds a password: refused from a world-readable file, the environment or a
    flag; read from a 0640 file and from $CREDENTIALS_DIRECTORY (systemd LoadCredential=)."""
    toml = 'notify_smtp_url = "smtp+starttls://u:pw@127.0.0.1:587"\n'
    path = tmp_path / "recorder.toml"
    path.write_text(toml)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"^notify_smtp_url: a secret in a world-readable file .* line 1\)"):
        load_config(str(path), {}, {})
    path.chmod(0o640)
    assert load_config(str(path), {}, {}).notify_smtp_url == "smtp+starttls://u:pw@127.0.0.1:587"
    with pytest.raises(ConfigError, match="not taken from the command line"):
        load_config(None, {}, {"notify_smtp_url": "smtp://127.0.0.1"}, default_path=str(tmp_path / "no.toml"))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "notify_webhook").write_text("http://127.0.0.1:8080/a\nhttp://127.0.0.1:8080/b\n")
    c = load_config(None, {"CREDENTIALS_DIRECTORY": str(creds)}, {}, default_path=str(tmp_path / "no.toml"))
    assert c.notify_webhook == ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b")
    assert 'notify_webhook = "(set)"' in render_config(c)
