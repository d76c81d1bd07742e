"""Run ``wiretrail-recorder`` with parsers that fall behind on purpose, so that batches are skipped
(a test of the catch-up): the queue to the parsers holds one batch at most, and each hand-over
to the parsers' process takes ``SLOW_SECONDS`` longer. Used as ``Recorder(..., wrap=(python, this))``:
the arguments after ``-m recorder.cli`` are the recorder's."""

from __future__ import annotations

import sys
import time

import recorder.sinks as sinks
from recorder.core.pipeline import applayer

SLOW_SECONDS = 0.25


def main() -> None:
    sinks.APP_QUEUE_BYTES = 1  # a batch that finds another still waiting is skipped
    feed = applayer.AppProcess.feed

    def slow_feed(self, raw, dec) -> None:
        time.sleep(SLOW_SECONDS)
        feed(self, raw, dec)

    applayer.AppProcess.feed = slow_feed
    from recorder.cli import main as recorder_main

    recorder_main(args=sys.argv[sys.argv.index("recorder.cli") + 1:], prog_name="wiretrail-recorder")


if __name__ == "__main__":
    main()
