"""The report tests' fixtures: the hand-built breach story of breach.py, its timeline and the
report's metadata."""

from __future__ import annotations

import pytest

from analysis.report.meta import ReportMeta
from analysis.story.model import Story, TimelineEvent
from tests.analysis.report.breach import breach_story, breach_timeline, meta


@pytest.fixture
def story() -> Story:
    return breach_story()


@pytest.fixture
def timeline() -> list[TimelineEvent]:
    return breach_timeline()


@pytest.fixture
def report_meta() -> ReportMeta:
    return meta()
