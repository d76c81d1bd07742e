"""What gives way when the recorder is behind (``recorder.lag``): inspection sheds while the
meter's backlog is above SHED_BACKLOG_BYTES and resumes under RESUME_BACKLOG_BYTES; the lag
figures; the shared flags the catch-up reads."""

from __future__ import annotations

import multiprocessing

from recorder.lag import RESUME_BACKLOG_BYTES, SHED_BACKLOG_BYTES, Backlog, Behind, CaptureLag

NOW = 10**18


def test_sheds_above_the_threshold_and_resumes_under_the_lower_one():
    b = Backlog()
    assert not b.update(SHED_BACKLOG_BYTES) and not b.behind  # at the threshold: not yet
    assert b.update(SHED_BACKLOG_BYTES + 1) and b.behind and b.spells == 1
    # between the thresholds: still behind (hysteresis)
    assert not b.update(RESUME_BACKLOG_BYTES + 1) and b.behind
    assert b.update(RESUME_BACKLOG_BYTES) and not b.behind
    assert not b.update(SHED_BACKLOG_BYTES) and not b.behind
    assert b.update(2 * SHED_BACKLOG_BYTES) and b.behind and b.spells == 2
    assert b.update(0) and not b.behind  # the queue emptied


def test_lag_figures():
    lag = CaptureLag()
    lag.update(NOW - 300, NOW)
    lag.update(NOW - 100, NOW)
    assert (lag.lag_ns, lag.max_lag_ns) == (100, 300)
    lag.update(None, NOW)  # a read that found no packet
    assert (lag.lag_ns, lag.max_lag_ns) == (0, 300)


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
