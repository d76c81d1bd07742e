"""Suricata-syntax signatures: the rule model, the loader, variables and classtypes."""

from analysis.rules.classification import Classtype, load_classifications
from analysis.rules.loader import load_rules
from analysis.rules.model import Rule, RuleError, RuleSet, RuleSetError, RulesPathError
from analysis.rules.parser import KEYWORDS, parse_rule
from analysis.rules.variables import Variables

__all__ = ["KEYWORDS", "Classtype", "Rule", "RuleError", "RuleSet", "RuleSetError", "RulesPathError", "Variables",
           "load_classifications", "load_rules", "parse_rule"]
