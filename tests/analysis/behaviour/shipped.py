"""The shipped behaviour rules (rules/behaviour), loaded once for the behaviour tests, the loader's
errors, and each rule's id by kind."""

from __future__ import annotations

from analysis.behaviour import load_behaviour_rules
from analysis.replay import SHIPPED_RULES

RULES, ERRORS = load_behaviour_rules([SHIPPED_RULES])
SID = {r.kind: r.id for r in RULES}
