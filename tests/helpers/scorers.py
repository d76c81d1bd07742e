"""Running a shared scorer over its cases in parts, one process per CPU.

The scorers in ../shared run their cases one after another, and each case starts the CLI
(about 2 s of start-up on this machine): a serial run of suricata-verify's 460 cases took most
of the suite's time. The cases are independent, so the scorer itself is started once per part,
each over its share of the cases, and the parts' last lines ("N passed, N failed, N skipped")
are added up. The scorer is run unchanged; only the case lists differ."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


@dataclass
class Score:
    passed: int
    failed: int
    skipped: int
    output: str  # every part's standard output, then its standard error

    @property
    def share(self) -> float:
        judged = self.passed + self.failed
        return self.passed / judged if judged else 0.0


def parts() -> int:
    """How many scorer processes to run at once: one per CPU, at most four."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def split(items: list, n: int) -> list[list]:
    """``items`` dealt into ``n`` lists in turn (neighbouring cases are often alike in cost)."""
    return [items[i::n] for i in range(n) if items[i::n]]


def run_parts(commands: list[list[str]], timeout: float) -> Score:
    """Start every command at once, wait for all, and add up their summary lines. A part that
    prints no summary line fails the whole score (its output is kept for the assertion)."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    totals, outputs = [0, 0, 0], []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            outputs.append(out + err)
            found = SUMMARY.findall(out)
            if not found:
                return Score(0, 0, 0, "\n".join(outputs))
            for i, n in enumerate(found[-1]):
                totals[i] += int(n)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return Score(*totals, "\n".join(outputs))
