"""The behaviour rule file: one YAML mapping per file, validated, errors as path:line: reason.

    id: 9000001                 # a sid-like positive integer, unique across the loaded rules
    name: Port scan             # the alert's signature text starts with it
    kind: port_scan             # which detector (``KINDS``)
    severity: 2                 # 1 (highest) to 3, like Suricata's priority
    category: Attempted Information Leak
    tactic: TA0043 Reconnaissance          # MITRE ATT&CK tactic
    technique: T1046 Network Service Discovery
    description: ...
    params:                     # the detector's thresholds; missing ones take ``KINDS`` defaults
      min_ports: 20

Every problem in a file is collected before failing (``RuleFileError`` per problem).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.yamlfile import YAMLSyntaxError, load_yaml
from recorder.core.errors import WiretrailError

_STATES_FAILED = ["REJ", "S0", "RSTO", "RSTOS0", "RSTR", "RSTRH", "SH", "SHR", "OTH"]

# kind -> default params (a parameter's type is its default's type; every known key is listed).
KINDS: dict[str, dict[str, Any]] = {
    "port_scan": {"min_ports": 20, "min_failed_ratio": 0.8, "failed_states": _STATES_FAILED},
    "host_sweep": {"min_hosts": 20, "min_failed_ratio": 0.5, "failed_states": _STATES_FAILED},
    "brute_force": {"min_failed_logins": 5, "min_http_401": 10, "min_connections": 20,
                    "max_mean_duration_seconds": 30.0,
                    "ports": {"ssh": 22, "ftp": 21, "telnet": 23, "rdp": 3389, "smb": 445}, "window_seconds": 600.0},
    "long_connection": {"min_duration_seconds": 3600.0, "exclude_ports": []},
    "dns_tunnelling": {"min_unique_subdomains": 50, "min_mean_entropy": 3.5, "min_mean_label_length": 30.0,
                       "min_txt_queries": 50, "ignore_domains": []},
    "beaconing": {"min_connections": 10, "min_score": 0.8, "count_target": 50, "min_median_interval_seconds": 10.0},
    "exfiltration": {"min_bytes": 50_000_000, "min_ratio_to_median": 10.0},
    "cleartext_credentials": {"protocols": [], "ignore_users": [], "min_failed_as_guesses": 5},
    "lateral_movement": {"ports": {"smb": 445, "rdp": 3389, "ssh": 22, "winrm": 5985, "winrm-tls": 5986,
                                   "dce-rpc": 135},
                         "after_kinds": ["port_scan", "host_sweep", "brute_force", "long_connection", "dns_tunnelling",
                                         "beaconing", "exfiltration"]},
    # attack-chain and insider signals (``chain``)
    "callback": {"window_seconds": 3600.0, "after_kinds": ["port_scan", "brute_force"]},
    "bind_shell": {"window_seconds": 3600.0, "min_port": 1024, "after_kinds": ["port_scan", "brute_force"]},
    "executable_download": {"window_seconds": 3600.0,
                            "mime_types": ["application/x-dosexec", "application/x-executable",
                                           "application/x-mach-o-executable", "application/x-java-applet"]},
    "cleartext_admin": {"ports": {"telnet": 23, "rlogin": 513, "rsh": 514}},
    "large_upload": {"min_bytes": 1_000_000, "min_ratio": 20.0},
    "remote_service": {"admin_shares": ["ADMIN$", "C$", "D$"],
                       "mime_types": ["application/x-dosexec", "application/x-executable"]},
    "share_read": {"min_files": 20, "min_ratio": 5.0},
    "shared_account": {"window_seconds": 600.0, "ignore_users": ["anonymous", "ftp", "guest"]},
    "rpc_operation": {"endpoints": ["svcctl"], "operations": ["CreateServiceW"], "action": "called",
                      "ignore_sources": [], "ignore_machine_accounts": False},
}

_REQUIRED = ("id", "name", "kind", "severity", "tactic", "technique", "description")
_OPTIONAL = ("category", "rev", "params", "enabled")


class RuleFileError(WiretrailError):
    """A problem in a behaviour rule file, with its path and line."""


@dataclass(frozen=True, slots=True)
class BehaviourRule:
    id: int
    name: str
    kind: str
    severity: int
    tactic: str
    technique: str
    description: str
    category: str = "Behaviour"
    rev: int = 1
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if not 1 <= self.severity <= 3:
            raise ValueError("severity must be 1, 2 or 3")

    def param(self, name: str) -> Any:
        return self.params.get(name, KINDS[self.kind][name])


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, dict):
        return isinstance(value, dict) and all(isinstance(p, int) and 0 <= p <= 65535 for p in value.values())
    return isinstance(value, type(default))


def _network(value: Any) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return isinstance(value, str)


def parse_rule(text: str, path: str) -> tuple[BehaviourRule | None, list[RuleFileError]]:
    """One rule file's text -> the rule, or None and every problem found."""
    def err(msg: str, line: int | None) -> RuleFileError:
        return RuleFileError(msg, path=path, line=line or 1)

    try:
        data, paths = load_yaml(text)
    except YAMLSyntaxError as e:
        return None, [err(str(e), e.line)]
    if not isinstance(data, dict):
        return None, [err("a behaviour rule file is one YAML mapping", 1)]
    lines = {".".join(map(str, p)): line for p, line in paths.items()}  # "id", "params.window"
    errors: list[RuleFileError] = []
    for key in data:
        if key not in _REQUIRED and key not in _OPTIONAL:
            errors.append(err(f"unknown key {key!r}", lines.get(str(key))))
    for key in _REQUIRED:
        if key not in data:
            errors.append(err(f"missing key {key!r}", 1))
    rid, sev, rev = data.get("id"), data.get("severity"), data.get("rev", 1)
    if "id" in data and (not isinstance(rid, int) or isinstance(rid, bool) or not 0 < rid < 2**32):
        errors.append(err("id must be a positive integer (a sid)", lines.get("id")))
    if "severity" in data and (not isinstance(sev, int) or isinstance(sev, bool) or not 1 <= sev <= 3):
        errors.append(err("severity must be 1 (highest), 2 or 3", lines.get("severity")))
    if not isinstance(rev, int) or isinstance(rev, bool) or rev < 1:
        errors.append(err("rev must be a positive integer", lines.get("rev")))
    for key in ("name", "tactic", "technique", "description", "category"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            errors.append(err(f"{key} must be a non-empty string", lines.get(key)))
    kind = data.get("kind")
    params = data.get("params") or {}
    if "kind" in data and kind not in KINDS:
        errors.append(err(f"unknown kind {kind!r} (known: {', '.join(KINDS)})", lines.get("kind")))
    elif kind in KINDS:
        if not isinstance(params, dict):
            errors.append(err("params must be a mapping", lines.get("params")))
        else:
            for name, value in params.items():
                line = lines.get(f"params.{name}")
                if name not in KINDS[kind]:
                    errors.append(err(f"unknown parameter {name!r} for {kind}", line))
                elif not _same_type(KINDS[kind][name], value):
                    errors.append(err(f"parameter {name!r} must be like {KINDS[kind][name]!r}", line))
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                    errors.append(err(f"parameter {name!r} must not be negative", line))
                elif name == "after_kinds" and (bad := [k for k in value if k not in KINDS]):
                    errors.append(err(f"unknown kind {bad[0]!r} in after_kinds", line))
                elif name == "ignore_sources" and (bad := [n for n in value if not _network(n)]):
                    errors.append(err(f"not an address or network in ignore_sources: {bad[0]!r}", line))
    if errors:
        return None, errors
    if data.get("enabled", True) is False:
        return None, []
    rule = BehaviourRule(id=rid, name=data["name"].strip(), kind=kind, severity=sev, tactic=data["tactic"],
                         technique=data["technique"], description=data["description"].strip(),
                         category=data.get("category", "Behaviour"), rev=rev, params=dict(params), path=path)
    return rule, []


def is_sigma(path: Path) -> bool:
    """A YAML file with a top-level ``logsource:`` or ``correlation:`` is a Sigma rule (for
    ``wiretrail logs detect``), not a behaviour rule."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return any(line.startswith(("logsource:", "correlation:")) for line in f)
    except OSError:
        return False


def rule_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files given, and every ``*.yaml``/``*.yml`` below folders given that is not a Sigma rule
    (``rules/sigma``), sorted within a folder."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()
                          and not is_sigma(f))
        else:
            out.append(p)
    return out


def load_behaviour_rules(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[BehaviourRule], list[RuleFileError]]:
    """Every rule in ``paths`` (files or folders), and every problem found (duplicate ids too)."""
    rules: list[BehaviourRule] = []
    errors: list[RuleFileError] = []
    first: dict[int, BehaviourRule] = {}
    for f in rule_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(RuleFileError(f"cannot read: {getattr(e, 'strerror', None) or e}", path=str(f)))
            continue
        if is_sigma(f):
            errors.append(RuleFileError("a Sigma rule (it has a logsource): run it with "
                                        "`wiretrail logs detect --rules`", path=str(f)))
            continue
        rule, errs = parse_rule(text, str(f))
        errors += errs
        if rule is None:
            continue
        if rule.id in first:
            errors.append(RuleFileError(f"duplicate id {rule.id} (first in {first[rule.id].path})",
                                        path=str(f), line=load_yaml(text)[1].get(("id",), 1)))
            continue
        first[rule.id] = rule
        rules.append(rule)
    return rules, errors
