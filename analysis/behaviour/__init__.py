"""Behaviour rules: detections over the stored flows and protocol logs (port scans, brute force,
beaconing, DNS tunnelling...), each a YAML file in ``rules/behaviour/`` with its thresholds."""

from analysis.behaviour.detectors import DETECTORS, evaluate
from analysis.behaviour.model import KINDS, BehaviourRule, RuleFileError, load_behaviour_rules

__all__ = ["DETECTORS", "KINDS", "BehaviourRule", "RuleFileError", "evaluate", "load_behaviour_rules"]
