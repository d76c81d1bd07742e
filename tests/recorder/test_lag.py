"""The capture lag's hysteresis (``recorder.lag``): shed above SHED_LAG_NS, resume under
RESUME_LAG_NS or once a read empties the ring; the shared flags the catch-up reads."""

from __future__ import annotations

import multiprocessing

from recorder.lag import RESUME_LAG_NS, SHED_LAG_NS, Behind, CaptureLag

NOW = 10**18


def test_sheds_above_the_threshold_and_resumes_under_the_lower_one():
    lag = CaptureLag()
    assert not lag.update(NOW - SHED_LAG_NS, NOW, full=True) and not lag.behind  # at the threshold: not yet
    assert lag.update(NOW - SHED_LAG_NS - 1, NOW, full=True) and lag.behind and lag.spells == 1
    # between the thresholds, full reads: still behind (hysteresis)
    assert not lag.update(NOW - RESUME_LAG_NS, NOW, full=True) and lag.behind
    assert lag.update(NOW - RESUME_LAG_NS + 1, NOW, full=True) and not lag.behind
    assert lag.max_lag_ns == SHED_LAG_NS + 1 and lag.spells == 1


def test_a_read_that_empties_the_ring_resumes():
    lag = CaptureLag()
    lag.update(NOW - 2 * SHED_LAG_NS, NOW, full=True)
    assert lag.update(NOW - 2 * SHED_LAG_NS, NOW, full=False) and not lag.behind  # old, but nothing more waits
    lag.update(NOW - 2 * SHED_LAG_NS, NOW, full=True)
    assert lag.behind and lag.spells == 2
    assert lag.update(None, NOW, full=False) and not lag.behind and lag.lag_ns == 0  # an idle read


def _set(behind: Behind) -> None:
    behind.set(1, True)


def test_behind_flags_are_shared_with_forked_streams():
    behind = Behind(2)
    assert not behind.any()
    p = multiprocessing.get_context("fork").Process(target=_set, args=(behind,))
    p.start()
    p.join()
    assert p.exitcode == 0 and behind.any()
    behind.set(1, False)
    assert not behind.any()
