"""Run ``wiretrail-recorder`` with parsers slowed down on purpose, so that batches are skipped (a
test of the catch-up): each hand-over to the parsers' process takes ``SLOW_SECONDS`` longer, and

- by default, the queue to the parsers holds one batch at most: a batch that finds another
  still waiting is skipped (``test_live_catchup``);
- with ``--shed``, the meter counts itself behind (``recorder.lag``) as soon as one batch waits
  for it (``SHED_BACKLOG_BYTES = 1``) and caught up only once none does
  (``RESUME_BACKLOG_BYTES = 0``), and each batch it meters takes ``SLOW_SECONDS["meter"]``
  longer, so on a link replayed at the capture's own speed it sheds and resumes in turn, and
  shedding finds some batches waiting for the parsers to drop (``test_live_shedding``);
- with ``--meter``, the parsers are not slowed but the meter's process is: each batch it meters
  takes ``SLOW_SECONDS["meter"]`` longer (``test_live_meter_lag``).

Used as ``Recorder(..., wrap=(python, this[, "--shed"]))``: the arguments after
``-m recorder.cli`` are the recorder's."""

from __future__ import annotations

import sys
import time

import recorder.lag as lag
import recorder.sinks as sinks
from recorder.core.pipeline import applayer

SLOW_SECONDS = {"queue": 0.25, "shed": 0.2, "meter": 0.3}


def main() -> None:
    ours = sys.argv[1:sys.argv.index("recorder.cli")]
    mode = "shed" if "--shed" in ours else "meter" if "--meter" in ours else "queue"
    if mode in ("meter", "shed"):
        import recorder.metering as metering

        batch = metering._Meter.batch

        def slow_batch(self, *args) -> None:
            time.sleep(SLOW_SECONDS["meter"])
            batch(self, *args)

        metering._Meter.batch = slow_batch
    if mode == "meter":
        _run()
        return
    if mode == "shed":
        lag.SHED_BACKLOG_BYTES = 1
        lag.RESUME_BACKLOG_BYTES = 0
    else:
        sinks.APP_QUEUE_BYTES = 1
    feed = applayer.AppProcess.feed

    def slow_feed(self, raw, dec) -> None:
        time.sleep(SLOW_SECONDS[mode])
        feed(self, raw, dec)

    applayer.AppProcess.feed = slow_feed
    _run()


def _run() -> None:
    from recorder.cli import main as recorder_main

    recorder_main(args=sys.argv[sys.argv.index("recorder.cli") + 1:], prog_name="wiretrail-recorder")


if __name__ == "__main__":
    main()
