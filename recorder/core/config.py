"""Recorder configuration: one settings table drives defaults, validation and ``--help``.

Sources apply in order: the defaults in :data:`SETTINGS`, the TOML file
(``/etc/wiretrail/recorder.toml`` when it exists, or the path given), the ``WIRETRAIL_<NAME>``
environment, then overrides (command-line flags). Every bad value raises :class:`ConfigError`
with one line naming the setting and where the value came from.

Pure: no click, no printing. The CLI builds its flags from :data:`SETTINGS`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.core.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/wiretrail/recorder.toml"
ENV_PREFIX = "WIRETRAIL_"

# Value kinds: how a raw value (TOML value, environment text or flag text) becomes a typed one.
STR, PATH, INT, FLOAT, BOOL, SIZE, DURATION, NAMES, CIDRS, TEXTS = (
    "str", "path", "int", "float", "bool", "size", "duration", "names", "cidrs", "texts")
LIST_KINDS = (NAMES, CIDRS, TEXTS)

Validator = Callable[[Any], "str | None"]


class _Bad(Exception):
    """A raw value (or one element of a list) and the phrase that says what is wrong with it."""

    def __init__(self, value: Any, phrase: str) -> None:
        super().__init__(value, phrase)
        self.value = value
        self.phrase = phrase


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table. ``default`` is written as a user would write it."""

    name: str
    type: str
    default: Any
    help: str
    validate: Validator | None = None
    # A secret (a password or a URL that is one) is read only from a config file that is not
    # world-readable or from a systemd credential, never from the environment or a flag.
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _between(lo: float, hi: float) -> Validator:
    return lambda v: None if lo <= v <= hi else f"is not between {lo:g} and {hi:g}"


def _at_least(lo: float, what: str) -> Validator:
    return lambda v: None if v >= lo else f"is below the minimum {what}"


MIB = 1 << 20

SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


# A list's validator raises _Bad for the one element that is wrong, so the line names it.

def _files_exist(paths: tuple[str, ...]) -> str | None:
    for p in paths:
        if not Path(p).exists():
            raise _Bad(p, "is no rule file or folder (no such file or directory)")
    return None


def _assignments(items: tuple[str, ...]) -> str | None:
    for i in items:
        if not re.fullmatch(r"\$?[A-Za-z_][A-Za-z0-9_]*=.+", i):
            raise _Bad(i, "is not NAME=VALUE (HOME_NET=[10.0.0.0/8])")
    return None


def _one_of(*words: str) -> Validator:
    return lambda v: None if v in words else f"is not one of {', '.join(words)}"


def _addresses(items: tuple[str, ...]) -> str | None:
    for i in items:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", i):
            raise _Bad(i, "is not an e-mail address")
    return None


def _resolvable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


def _smtp_url(url: str) -> str | None:
    """``smtp://[user:password@]host[:port]``, ``smtp+starttls://...`` or ``smtps://...``."""
    if not url:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not an SMTP URL (bad port)"
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
        return "is not an SMTP URL like smtp+starttls://user:password@mail.example.com:587"
    if port == 0:
        return "is not an SMTP URL (bad port)"
    if not _resolvable(parts.hostname):
        return f"names host {parts.hostname!r}, which does not resolve"
    return None


def _age_recipient(text: str) -> str | None:
    """An age X25519 public key (age1...), or empty."""
    if not text:
        return None
    from recorder.core.agecrypt import parse_recipient

    if text.strip().startswith("AGE-SECRET-KEY-"):
        return "is a private key; give its public key (age1..., age-keygen -y KEYFILE) and keep the private key off the sensor"
    try:
        parse_recipient(text)
    except ConfigError:
        return "is not an age X25519 public key (age1..., as age-keygen prints)"
    return None


def _webhook_urls(urls: tuple[str, ...]) -> str | None:
    from urllib.parse import urlsplit

    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Bad(url, "is not an http:// or https:// URL")
        if not _resolvable(parts.hostname):
            raise _Bad(url, f"names host {parts.hostname!r}, which does not resolve")
    return None

SETTINGS: tuple[Setting, ...] = (
    Setting("interface", NAMES, (), "Interface to capture on; repeat (or comma-separate) for several. "
            "Required to run."),
    Setting("bpf", STR, "", "BPF filter applied in the kernel; empty captures everything."),
    Setting("snaplen", INT, 262144, "Bytes kept of each packet.", _between(64, 262144)),
    Setting("promisc", BOOL, True, "Put the interfaces in promiscuous mode."),
    Setting("output_dir", PATH, "/var/lib/wiretrail/captures", "Directory the capture files go to."),
    Setting("rotate_size", SIZE, "1G", "Start a new capture file at this size (at least 1M).",
            _at_least(MIB, "1M")),
    Setting("rotate_interval", DURATION, "1h", "Start a new capture file after this long; 0 = off."),
    Setting("retain_bytes", SIZE, "0", "Delete the oldest captures above this total; 0 = off."),
    Setting("min_free_percent", FLOAT, 5.0, "Delete the oldest captures to keep this much disk free.",
            _between(0, 99)),
    Setting("retain_days", FLOAT, 0.0, "Delete captures older than this many days; 0 = off.",
            _at_least(0, "0")),
    Setting("encrypt_to", STR, "", "Encrypt each capture file as it is written, and the credential secrets, for "
            "this age X25519 public key (age1..., from age-keygen); its private key stays off the sensor. "
            "Files are then *.pcap.age.", _age_recipient),
    Setting("db", STR, "/var/lib/wiretrail/wiretrail.db", "Flow database: a SQLite path or a database URL."),
    Setting("local_net", CIDRS, (), "Networks counted as local (CIDR); repeat or comma-separate."),
    Setting("workers", INT, 1, "Capture processes per interface, joined in one PACKET_FANOUT hash group.",
            _between(1, 64)),
    Setting("sensor", STR, "", "Name of this sensor in the database; empty = the host name."),
    Setting("buffer_size", SIZE, "64M", "Kernel capture ring per capture process (at least 1M).",
            _at_least(MIB, "1M")),
    Setting("stats_interval", DURATION, "1m", "How often a stats line is logged; 0 = never."),
    Setting("parsers", BOOL, True, "Run the protocol parsers on the traffic (dns, http, ssl, files, "
            "credentials... records in the database); off: flows only."),
    # live detection (issue 21): the detection plug-ins (entry-point group wiretrail.detectors) read these
    Setting("rules", TEXTS, (), "Rule files or folders evaluated live (signature *.rules, behaviour YAML, Sigma YAML files over the log events); "
            "repeat or comma-separate; none = the shipped rules.", _files_exist),
    Setting("skip_invalid", BOOL, False, "Skip the signatures the engine does not support (one log line) "
            "instead of refusing to start, as `wiretrail replay --skip-invalid` (ET Open)."),
    Setting("var", TEXTS, (), "Rule variable NAME=VALUE (HOME_NET=[10.0.0.0/8]); repeat. HOME_NET defaults "
            "to local_net plus the private ranges.", _assignments),
    Setting("detect_interval", DURATION, "10s", "How often the behaviour rules and the signatures' catch-up "
            "run over the recent traffic (signatures match as packets pass); 0 = no live detection."),
    Setting("detect_window", DURATION, "1h", "How far back each live evaluation of the behaviour rules looks.",
            _at_least(60, "1m")),
    # notifications (recorder.notify): a log line per alert always; e-mail and webhooks when set
    Setting("notify_smtp_url", STR, "", "SMTP server for alert e-mail: smtp+starttls://user:password@host:587, "
            "smtps://... (TLS) or smtp://... (plain). Secret: config file (not world-readable) or the systemd "
            "credential notify_smtp_url only.", _smtp_url, secret=True),
    Setting("notify_from", STR, "", "Sender address of alert e-mail; empty = wiretrail@<host name>."),
    Setting("notify_to", TEXTS, (), "Recipients of alert e-mail; repeat or comma-separate.", _addresses),
    Setting("notify_webhook", TEXTS, (), "Webhook URLs alerts are POSTed to. Secret: config file (not "
            "world-readable) or the systemd credential notify_webhook (one URL a line) only.", _webhook_urls,
            secret=True),
    Setting("notify_webhook_format", STR, "json", "Webhook body: json (an object with the alerts) or text "
            "({\"text\": ...}, which Slack, Mattermost and Teams accept; ntfy takes it as the message).",
            _one_of("json", "text")),
    Setting("notify_min_severity", INT, 2, "Notify alerts of this severity or a higher one (1 highest, 3 lowest).",
            _between(1, 3)),
    Setting("notify_aggregate", DURATION, "2m", "Alerts within this long of the first are sent as one "
            "message, the same finding counted rather than repeated."),
    Setting("notify_digest", STR, "", "Time of day (UTC, HH:MM) a daily digest of the last 24 hours' alerts "
            "goes to every channel, also when there were none; empty = no digest.",
            lambda v: None if not v or re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v) else "is not a time like 07:30"),
    Setting("notify_rate_limit", INT, 12, "At most this many messages per hour per channel; the rest wait.",
            _between(1, 3600)),
)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Config:
    """The effective recorder configuration. Sizes are bytes, durations seconds (0 = off)."""

    interface: tuple[str, ...]
    bpf: str
    snaplen: int
    promisc: bool
    output_dir: Path
    rotate_size: int
    rotate_interval: int
    retain_bytes: int
    min_free_percent: float
    retain_days: float
    encrypt_to: str
    db: str
    local_net: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    workers: int
    sensor: str
    buffer_size: int
    stats_interval: int
    parsers: bool
    rules: tuple[str, ...]
    skip_invalid: bool
    var: tuple[str, ...]
    detect_interval: int
    detect_window: int
    notify_smtp_url: str
    notify_from: str
    notify_to: tuple[str, ...]
    notify_webhook: tuple[str, ...]
    notify_webhook_format: str
    notify_min_severity: int
    notify_aggregate: int
    notify_digest: str
    notify_rate_limit: int


# --- parsing raw values -------------------------------------------------------------------------

_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_RE = re.compile(r"(?:\d+[smhd])+")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_IFNAME_RE = re.compile(r"[^\s/:,]{1,15}")
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def _parse_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Bad(raw, "is not a string")
    return raw


def _parse_path(raw: Any) -> Path:
    if not isinstance(raw, str) or not raw.strip():
        raise _Bad(raw, "is not a path")
    return Path(raw)


def _parse_int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
        return int(raw)
    raise _Bad(raw, "is not a whole number")


def _parse_float(raw: Any) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    if value is None or not math.isfinite(value):
        raise _Bad(raw, "is not a number")
    return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[raw.strip().lower()]
    raise _Bad(raw, "is not true or false (or yes/no, 1/0)")


def _parse_size(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    m = _SIZE_RE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if m is None:
        raise _Bad(raw, "is not a size like 512M or 1G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def _parse_duration(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text is not None and text.isdigit():
        return int(text)
    if text is None or not _DURATION_RE.fullmatch(text):
        raise _Bad(raw, "is not a duration like 30s, 15m or 1h (0 = off)")
    return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def _elements(raw: Any) -> list[str]:
    """A list from a TOML array, a repeated flag or comma-separated text; each item may hold commas."""
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    out = []
    for item in items:
        if not isinstance(item, str):
            raise _Bad(item, "is not a string")
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


def _parse_names(raw: Any) -> tuple[str, ...]:
    names = _elements(raw)
    for name in names:
        if not _IFNAME_RE.fullmatch(name):
            raise _Bad(name, "is not an interface name (1-15 characters, no spaces, '/' or ':')")
    return tuple(dict.fromkeys(names))


def _parse_cidrs(raw: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for text in _elements(raw):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise _Bad(text, "is not a network like 10.0.0.0/8 or fd00::/8") from None
    return tuple(dict.fromkeys(nets))


def _parse_texts(raw: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_elements(raw)))


_PARSERS: dict[str, Callable[[Any], Any]] = {
    STR: _parse_str, PATH: _parse_path, INT: _parse_int, FLOAT: _parse_float, BOOL: _parse_bool,
    SIZE: _parse_size, DURATION: _parse_duration, NAMES: _parse_names, CIDRS: _parse_cidrs,
    TEXTS: _parse_texts,
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def coerce(setting: Setting, raw: Any, source: str) -> Any:
    """Parse and validate one raw value; ``source`` says where it came from, for the error line."""
    try:
        value = _PARSERS[setting.type](raw)
        phrase = setting.validate(value) if setting.validate else None
        if phrase:
            raise _Bad(raw, phrase)
    except _Bad as bad:
        raise ConfigError(f"{setting.name}: {_show(bad.value)} {bad.phrase} (from {source})") from None
    return value


# --- rendering typed values ---------------------------------------------------------------------

def _unit(value: int, units: Mapping[str, int]) -> str:
    for suffix, factor in sorted(units.items(), key=lambda kv: -kv[1]):
        if value and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def format_value(setting: Setting, value: Any) -> str:
    """A typed value as TOML, in the units a user writes (``"1G"``, ``"1h"``), so it reads back."""
    if setting.type == SIZE:
        return f'"{_unit(value, {k.upper(): v for k, v in _SIZE_UNITS.items()})}"'
    if setting.type == DURATION:
        return f'"{_unit(value, _DURATION_UNITS)}"'
    if setting.type in LIST_KINDS:
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_config(config: Config) -> list[str]:
    """One ``name = value`` line per setting, in table order; a secret that is set shows as "(set)"."""
    return [f"{s.name} = " + ('"(set)"' if s.secret and getattr(config, s.name) else
                             format_value(s, getattr(config, s.name))) for s in SETTINGS]


# --- loading ------------------------------------------------------------------------------------

def toml_key_line(text: str, key: str) -> int | None:
    """The 1-based line where top-level ``key`` is set (``key =``, ``key.x =`` or ``[key]``)."""
    quoted = rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
    pattern = re.compile(rf"^[ \t]*(?:{quoted}[ \t]*[=.]|\[\[?[ \t]*{quoted}[ \t]*[\].])", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _read_toml(path: str) -> tuple[dict[str, Any], str]:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
        return tomllib.loads(text), text
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"{path} line {line}: config file is not UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            base = msg[:m.start()].strip()
            raise ConfigError(f"{path} line {m.group(1)}: not valid TOML: {base} (column {m.group(2)})") from None
        raise ConfigError(f"{path}: not valid TOML: {msg}") from None


def load_config(path: str | None, env: Mapping[str, str], overrides: Mapping[str, Any],
                *, default_path: str | None = None) -> Config:
    """Defaults, then the TOML file, then ``WIRETRAIL_*`` in ``env``, then ``overrides`` (flags).

    ``path`` None reads ``default_path`` (``/etc/wiretrail/recorder.toml``) only if it exists;
    an explicit ``path`` must exist. ``overrides`` maps setting names to raw values; None (or an
    empty list for list settings) means "not given".
    """
    values = {s.name: coerce(s, s.default, "default") for s in SETTINGS}

    if path is None:
        candidate = default_path if default_path is not None else DEFAULT_CONFIG_PATH
        path = candidate if Path(candidate).exists() else None
    elif not Path(path).exists():
        raise ConfigError(f"{path}: config file does not exist")
    if path is not None:
        data, text = _read_toml(path)
        world_readable = bool(os.stat(path).st_mode & 0o004)
        for key, raw in data.items():
            line = toml_key_line(text, key)
            where = f"{path} line {line}" if line else path
            setting = SETTINGS_BY_NAME.get(key)
            if setting is None:
                raise ConfigError(f"{key}: unknown setting (from {where})")
            if setting.secret and world_readable and raw:
                raise ConfigError(f"{key}: a secret in a world-readable file (from {where}); chmod o-r "
                                  f"{path} or use the systemd credential {key}")
            values[key] = coerce(setting, raw, where)

    for setting in SETTINGS:
        if setting.env in env:
            if setting.secret:
                raise ConfigError(f"{setting.name}: a secret is not read from the environment ({setting.env}); "
                                  "put it in the config file or the systemd credential " + setting.name)
            values[setting.name] = coerce(setting, env[setting.env], setting.env)
    creds = env.get("CREDENTIALS_DIRECTORY")
    for setting in (s for s in SETTINGS if s.secret and creds):
        cred = Path(creds) / setting.name
        if cred.is_file():
            raw_text = cred.read_text(encoding="utf-8").strip()
            raw_value: Any = raw_text.splitlines() if setting.type in LIST_KINDS else raw_text
            values[setting.name] = coerce(setting, raw_value, f"credential {cred}")

    for name, raw in overrides.items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"{name}: unknown setting (from overrides)")
        if raw is None or (setting.type in LIST_KINDS and isinstance(raw, list | tuple) and not raw):
            continue
        if setting.secret:
            raise ConfigError(f"{name}: a secret is not taken from the command line")
        values[name] = coerce(setting, raw, setting.flag)

    return Config(**values)


def require_runnable(config: Config) -> None:
    """What the daemon needs beyond valid values: at least one interface."""
    if not config.interface:
        s = SETTINGS_BY_NAME["interface"]
        raise ConfigError(f"interface: none given; set interface in the config file, {s.env} or {s.flag}")
