"""The story exported for other tools: a STIX 2.1 bundle that stix2-validator accepts, and an
ATT&CK Navigator layer with the Navigator's required fields."""

from __future__ import annotations

import json

import pytest

from analysis.report import attack_layer, to_stix
from tests.analysis.report.breach import ATTACKER, C2, OFFICE, TOOL_SHA, breach_story


@pytest.fixture(scope="module")
def bundle() -> dict:
    return json.loads(to_stix(breach_story()).serialize())


def test_bundle_validates_with_stix2_validator(bundle: dict) -> None:
    validator = pytest.importorskip("stix2validator")
    results = validator.validate_string(json.dumps(bundle), validator.ValidationOptions(version="2.1"))
    assert results.is_valid, [str(e) for r in results.object_results for e in r.errors]


def test_indicators_sightings_and_one_report(bundle: dict) -> None:
    objects = bundle["objects"]
    patterns = sorted(o["pattern"] for o in objects if o["type"] == "indicator")
    assert patterns == sorted([
        f"[ipv4-addr:value = '{ATTACKER}']", f"[ipv4-addr:value = '{C2}']",
        "[domain-name:value = 'update-check.example.net']", "[domain-name:value = 't.exfil-example.net']",
        f"[file:hashes.'SHA-256' = '{TOOL_SHA}']"])
    assert not any(OFFICE in o.get("pattern", "") for o in objects)  # an insider's office PC is no indicator
    indicators = {o["id"] for o in objects if o["type"] == "indicator"}
    sightings = [o for o in objects if o["type"] == "sighting"]
    assert {s["sighting_of_ref"] for s in sightings} == indicators
    attacker = next(s for s in sightings if s["sighting_of_ref"] == next(
        o["id"] for o in objects if o.get("pattern") == f"[ipv4-addr:value = '{ATTACKER}']"))
    assert attacker["first_seen"] == "2026-05-28T20:26:40Z" and attacker["count"] == 9
    reports = [o for o in objects if o["type"] == "report"]
    assert len(reports) == 1
    assert set(reports[0]["object_refs"]) >= indicators
    techniques = {o["external_references"][0]["external_id"] for o in objects if o["type"] == "attack-pattern"}
    assert {"T1046", "T1110", "T1021.004", "T1039", "T1071.004"} <= techniques


def test_bundle_is_deterministic(bundle: dict) -> None:
    assert json.loads(to_stix(breach_story()).serialize()) == bundle


def test_attack_layer_has_navigator_fields_and_scores() -> None:
    layer = json.loads(json.dumps(attack_layer(breach_story())))
    for key in ("name", "domain", "versions", "techniques"):
        assert key in layer
    assert layer["domain"] == "enterprise-attack" and layer["versions"]["layer"] == "4.5"
    by_id = {(t["techniqueID"], t["tactic"]): t for t in layer["techniques"]}
    assert by_id[("T1110", "credential-access")]["score"] == 1
    assert by_id[("T1018", "discovery")]["score"] == 1
    assert "INC-3f2a9c" in by_id[("T1021.004", "lateral-movement")]["comment"]
    assert layer["gradient"]["maxValue"] == 1
