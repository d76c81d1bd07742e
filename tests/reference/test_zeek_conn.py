"""Zeek's own conn.log baselines, scored by the shared scorer (compare_conn.py).

The floor is the issue's acceptance: at least 95% of baseline rows exact on the core fields
(packets, IP bytes and payload bytes per direction, conn_state).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REFERENCE, need, wiretrail_cli

FLOOR = 95.0


@pytest.mark.timeout(1800)  # a sweep of reference traces: minutes when the machine is shared
def test_conn_agreement_with_zeek_baselines():
    scorer = need(REFERENCE / "zeek" / "compare_conn.py", "Zeek conn.log reference set")
    r = subprocess.run([sys.executable, str(scorer), "--cli", wiretrail_cli(), "--verbose"],
                       capture_output=True, text=True, timeout=1200, check=False)
    last = r.stdout.strip().splitlines()[-1]
    m = re.search(r"conn agreement: ([\d.]+)% of (\d+)", last)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    pct = float(m.group(1))
    assert "traces with errors: 0/" in r.stdout, r.stdout[-3000:]
    assert pct >= FLOOR, f"{last}\n" + "\n".join(
        line for line in r.stdout.splitlines() if line.startswith(("DIFF", "MISSING", "ERROR")))
