"""The story for other tools: a STIX 2.1 bundle (``stix2``) and an ATT&CK Navigator layer.

STIX: an identity for the reporting organisation, an indicator per external attacker address,
per domain name seen for an attacker or a destination of data that left, and per SHA-256 of a file
in the evidence (``Evidence(kind="file", ref=<sha256>)``); a sighting of each indicator (first and
last seen, count); an attack-pattern per ATT&CK technique; one report object referring to them all.
Identifiers are derived from the content (UUIDv5), so the same story gives the same bundle.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from analysis.report.facts import mask_pans
from analysis.story.model import Incident, Story

_NS = uuid.UUID("6f1a7c36-0b36-4f1e-9d7a-2b3d0c9e4e11")  # Wiretrail's namespace for STIX ids
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TECHNIQUE = re.compile(r"^(T\d{4}(?:\.\d{3})?)\b\s*-?\s*(.*)$")


def _dt(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns // 1000 / 1e6, tz=UTC)


def _id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, f'{kind}:{key}')}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _local_test(story: Story):
    """A test for "inside the network": the story's local networks plus the private ranges (as the
    flow meter decides it; documentation ranges such as 203.0.113.0/24 are outside)."""
    from recorder.core.flow.flowid import PRIVATE_NETS

    nets = [ipaddress.ip_network(n, strict=False) for n in (*PRIVATE_NETS, *story.local_nets)]
    return lambda addr: any(ipaddress.ip_address(addr) in n for n in nets)


def technique_id(text: str) -> tuple[str, str] | None:
    """("T1110", "Brute Force") from "T1110 Brute Force"; None when it names no technique."""
    m = _TECHNIQUE.match(text.strip())
    return (m.group(1), m.group(2).strip()) if m else None


def _observables(story: Story) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, value) -> {first, last, count, incidents} for every indicator the story supports."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    local = _local_test(story)

    def add(key: tuple[str, str], inc: Incident, first: int, last: int, count: int = 1) -> None:
        entry = seen.setdefault(key, {"first": first, "last": last, "count": 0, "incidents": set()})
        entry["first"], entry["last"] = min(entry["first"], first), max(entry["last"], last)
        entry["count"] += count
        entry["incidents"].add(inc.id)

    for inc in story.incidents:
        for a in inc.attackers:
            if not a.internal and _is_ip(a.address) and not local(a.address):
                add(("ip", a.address), inc, inc.first_ts_ns, inc.last_ts_ns, max(inc.alert_count, 1))
            if not a.internal:
                for name in a.names:
                    add(("domain", name.rstrip(".").lower()), inc, inc.first_ts_ns, inc.last_ts_ns)
        for x in inc.exfiltration:
            if _is_ip(x.destination) and not local(x.destination):
                add(("ip", x.destination), inc, x.first_ts_ns, x.last_ts_ns)
            elif not _is_ip(x.destination):
                add(("domain", x.destination.rstrip(".").lower()), inc, x.first_ts_ns, x.last_ts_ns)
        evidence = [e for st in inc.stages for e in st.evidence] + [e for x in inc.exfiltration for e in x.evidence]
        for ev in evidence:
            if ev.kind == "file" and _SHA256.match(ev.ref):
                add(("sha256", ev.ref.lower()), inc, ev.ts_ns, ev.ts_ns)
    return seen


def _pattern(kind: str, value: str) -> tuple[str, str]:
    if kind == "ip":
        v = ipaddress.ip_address(value)
        typ = "ipv4-addr" if v.version == 4 else "ipv6-addr"
        return f"[{typ}:value = '{value}']", f"Attacker address {value}"
    if kind == "domain":
        return f"[domain-name:value = '{value}']", f"Domain used by the attackers: {value}"
    return f"[file:hashes.'SHA-256' = '{value}']", f"File moved by the attackers, SHA-256 {value}"


def to_stix(story: Story, *, organisation: str = "Wiretrail user"):
    """The story as a ``stix2.Bundle`` (STIX 2.1)."""
    import stix2

    created = _dt(story.first_ts_ns or 0)
    identity = stix2.Identity(id=_id("identity", organisation), name=organisation, identity_class="organization",
                              created=created, modified=created)
    objects: list[Any] = [identity]
    refs: list[str] = []
    for (kind, value), info in sorted(_observables(story).items()):
        pattern, name = _pattern(kind, value)
        first, last = _dt(info["first"]), _dt(info["last"])
        indicator = stix2.Indicator(
            id=_id("indicator", f"{kind}:{value}"), created=created, modified=created, name=name,
            pattern=pattern, pattern_type="stix", valid_from=first, indicator_types=["malicious-activity"],
            description=f"Seen in Wiretrail incident(s) {', '.join(sorted(info['incidents']))}.",
            created_by_ref=identity.id)
        sighting = stix2.Sighting(
            id=_id("sighting", f"{kind}:{value}"), created=created, modified=created, sighting_of_ref=indicator.id,
            first_seen=first, last_seen=last if last > first else None, count=info["count"],
            where_sighted_refs=[identity.id], created_by_ref=identity.id)
        objects += [indicator, sighting]
        refs += [indicator.id, sighting.id]
    techniques: dict[str, str] = {}
    for inc in story.incidents:
        for st in inc.stages:
            for t in st.techniques:
                parsed = technique_id(t)
                if parsed:
                    techniques.setdefault(parsed[0], parsed[1] or parsed[0])
    for tid, tname in sorted(techniques.items()):
        pattern = stix2.AttackPattern(
            id=_id("attack-pattern", tid), created=created, modified=created, name=tname,
            external_references=[{"source_name": "mitre-attack", "external_id": tid,
                                  "url": f"https://attack.mitre.org/techniques/{tid.replace('.', '/')}/"}],
            created_by_ref=identity.id)
        objects.append(pattern)
        refs.append(pattern.id)
    titles = mask_pans("; ".join(f"{i.id} {i.title}" for i in story.incidents[:20]))
    report = stix2.Report(
        id=_id("report", f"{story.first_ts_ns}-{story.last_ts_ns}-{len(story.incidents)}"), created=created,
        modified=created, name="Wiretrail breach report", published=_dt(story.last_ts_ns or story.first_ts_ns or 0),
        report_types=["attack-pattern", "indicator", "observed-data"] if refs else ["threat-report"],
        description=f"{len(story.incidents)} incident(s) found by Wiretrail in the traffic recorded: {titles}",
        object_refs=refs or [identity.id], created_by_ref=identity.id)
    objects.append(report)
    return stix2.Bundle(id=_id("bundle", report.id), objects=objects, allow_custom=False)


def attack_layer(story: Story, *, name: str = "Wiretrail incidents") -> dict[str, Any]:
    """An ATT&CK Navigator layer (format 4.5): every technique seen, scored by how many incidents
    show it, with the incidents named in the comment."""
    by_technique: dict[tuple[str, str], set[str]] = defaultdict(set)
    names: dict[str, str] = {}
    for inc in story.incidents:
        for st in inc.stages:
            for t in st.techniques:
                parsed = technique_id(t)
                if parsed:
                    by_technique[(parsed[0], st.name)].add(inc.id)
                    names[parsed[0]] = parsed[1]
    counts = Counter({k: len(v) for k, v in by_technique.items()})
    top = max(counts.values(), default=1)
    techniques = [{"techniqueID": tid, "tactic": tactic, "score": n, "color": "", "enabled": True,
                   "comment": f"{names.get(tid) or tid}: {n} incident(s): {', '.join(sorted(by_technique[(tid, tactic)]))}",
                   "metadata": [], "links": [], "showSubtechniques": False}
                  for (tid, tactic), n in sorted(counts.items())]
    return {
        "name": name, "versions": {"attack": "16", "navigator": "5.1.0", "layer": "4.5"},
        "domain": "enterprise-attack",
        "description": f"Techniques seen by Wiretrail in {len(story.incidents)} incident(s), scored by how many "
                       "incidents show them.",
        "filters": {"platforms": ["Windows", "Linux", "macOS", "Network Devices"]},
        "sorting": 3, "layout": {"layout": "side", "showID": True, "showName": True},
        "hideDisabled": False, "techniques": techniques,
        "gradient": {"colors": ["#ffe766", "#ff6666"], "minValue": 0, "maxValue": top},
        "legendItems": [], "metadata": [], "links": [], "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd", "selectTechniquesAcrossTactics": True, "selectSubtechniquesWithParent": False,
    }
