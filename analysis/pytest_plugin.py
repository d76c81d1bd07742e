"""A pytest plugin for detection tests in CI: replay captures through Wiretrail's rules, in process,
and check the alerts. Installed with Wiretrail (entry point ``pytest11``), so the fixture is there:

    def test_ssh_brute_force(wiretrail_replay):
        result = wiretrail_replay("captures/brute.pcap", rules=["rules/"], vars={"HOME_NET": "10.0.0.0/8"})
        assert result.sids[9000003] == 1
        result.assert_expected("tests/expect/brute.yaml")      # the format of analysis/expect.py

    def test_in_one_call(wiretrail_replay):
        wiretrail_replay("captures/brute.pcap", expect="tests/expect/brute.yaml")

Rule files that cannot be loaded raise ``analysis.replay.ReplayError`` (every problem as
path:line: reason); an unreadable capture raises ``recorder.core.errors.CaptureError``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pytest

# Wiretrail itself is imported inside the fixture: this module is loaded by every pytest run in an
# environment where Wiretrail is installed, and must cost nothing there.


@dataclass
class ReplayResult:
    """The alerts of one replay as EVE objects (``event_type: alert``), in time order."""

    alerts: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    packets: int = 0
    flows: int = 0

    @property
    def sids(self) -> Counter:
        """Alerts per signature id."""
        return Counter(a["alert"]["signature_id"] for a in self.alerts)

    def assert_expected(self, path: str | os.PathLike[str]) -> None:
        """Raise AssertionError with one line per difference when the alerts differ from the
        expectations file at ``path`` (a bad file raises analysis.expect.ExpectFileError)."""
        from analysis.expect import compare, load_expectations

        __tracebackhide__ = True
        diff = compare(load_expectations(os.fspath(path)), self.alerts)
        if diff:
            fired = ", ".join(f"{sid} x{n}" for sid, n in sorted(self.sids.items())) or "none"
            raise AssertionError(f"alerts differ from {os.fspath(path)}:\n" + "\n".join(diff)
                                 + f"\nfired: {fired}")


def _paths(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _variables(value: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """A mapping, or ``NAME=VALUE`` strings as ``wiretrail replay --var`` takes them."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for item in [value] if isinstance(value, str) else value:
        name, sep, val = str(item).partition("=")
        if not sep or not name.strip() or not val.strip():
            raise ValueError(f"{item!r} is not NAME=VALUE")
        out[name.strip()] = val.strip()
    return out


@pytest.fixture
def wiretrail_replay():
    """``wiretrail_replay(*captures, rules=None, vars=None, expect=None, db=None, local_nets=())``
    -> ReplayResult: ingest the captures (into a temporary store unless ``db`` is given), match the
    signatures and evaluate the behaviour rules of ``rules`` (files or folders; default: the shipped
    behaviour rules), and, with ``expect``, assert the alerts against that expectations file."""
    from analysis.replay import replay_captures

    def replay(*captures, rules=None, vars=None, expect=None, db=None, local_nets=()) -> ReplayResult:
        __tracebackhide__ = True
        warnings: list[str] = []
        outcome = replay_captures([os.fspath(c) for c in captures], rules=_paths(rules), variables=_variables(vars),
                                  db=os.fspath(db) if db is not None else None, local_nets=list(local_nets),
                                  on_warning=warnings.append)
        result = ReplayResult(alerts=outcome.eve(), warnings=warnings, packets=outcome.stats.packets,
                              flows=outcome.stats.flows)
        if expect is not None:
            result.assert_expected(expect)
        return result

    return replay
