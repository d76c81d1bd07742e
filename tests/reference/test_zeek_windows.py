"""Zeek's own Windows-protocol baselines (rdp, dce_rpc, ntlm, kerberos, smb_mapping, smb_files),
scored by the shared scorer (compare_app.py ../zeek-windows).

The issue's acceptance is at least 95% of rows overall and 80% per log type. The floors below
are what the code scores today (2026-12-06: 99.1% of 113 rows, kerberos.log 98/98 since the
PKINIT requests spanning TCP segments are detected), so a regression fails. The one
ntlm.log row is below its 80%: that trace was captured on 10.10.10.120, whose own packets carry
bad TCP checksums (offload), and Zeek ran without -C, so it dropped them: it saw only the
server's side (the CHALLENGE, no AUTHENTICATE, so no user) and oriented the connection from
10.10.10.121. We read both sides (user Administrator, orig 10.10.10.120); the README
("Reference scores") says so.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REFERENCE, need, wiretrail_cli

OVERALL_FLOOR = 99.0
FLOORS = {"dce_rpc.log": 5, "kerberos.log": 98, "ntlm.log": 0, "rdp.log": 1, "smb_files.log": 6,
          "smb_mapping.log": 2}


@pytest.mark.timeout(1800)  # a sweep of reference traces: minutes when the machine is shared
def test_windows_agreement_with_zeek_baselines():
    scorer = need(REFERENCE / "zeek-app" / "compare_app.py", "Zeek protocol-log scorer")
    folder = need(REFERENCE / "zeek-windows", "Zeek Windows-protocol reference set")
    r = subprocess.run([sys.executable, str(scorer), str(folder), "--cli", wiretrail_cli()],
                       capture_output=True, text=True, timeout=1800, check=False)
    out = r.stdout
    m = re.search(r"app agreement: ([\d.]+)% of (\d+) rows", out)
    assert m, out[-2000:] + r.stderr[-2000:]
    per = {log: int(hit) for log, hit in re.findall(r"^(\w+\.log)\s+(\d+)/\d+", out, re.M)}
    assert set(FLOORS) <= set(per), out[-2000:]
    low = {log: (per[log], floor) for log, floor in FLOORS.items() if per[log] < floor}
    assert not low, f"below floor: {low}\n{out[-3000:]}"
    assert float(m.group(1)) >= OVERALL_FLOOR, out[-3000:]
