"""Run ``wiretrail-recorder`` with capture always "behind the wire", so that inspection is shed
(a test of ``recorder.lag`` and the catch-up): any lag sheds (``SHED_LAG_NS = 1`` ns) and only a
read that empties the ring resumes (``RESUME_LAG_NS = 0``), so on a link replayed at the
capture's own speed (every read a small one) the batches alternate, one shed, the next fed. Each
hand-over to the parsers takes ``SLOW_SECONDS`` longer, so batches wait in the queue and shedding
has some to drop. Used as ``Recorder(..., wrap=(python, this))``: the arguments after
``-m recorder.cli`` are the recorder's."""

from __future__ import annotations

import sys
import time

import recorder.lag as lag
from recorder.core.pipeline import applayer

SLOW_SECONDS = 0.2


def main() -> None:
    lag.SHED_LAG_NS = 1
    lag.RESUME_LAG_NS = 0
    feed = applayer.AppProcess.feed

    def slow_feed(self, raw, dec) -> None:
        time.sleep(SLOW_SECONDS)
        feed(self, raw, dec)

    applayer.AppProcess.feed = slow_feed
    from recorder.cli import main as recorder_main

    recorder_main(args=sys.argv[sys.argv.index("recorder.cli") + 1:], prog_name="wiretrail-recorder")


if __name__ == "__main__":
    main()
