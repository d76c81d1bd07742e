"""Zeek's own Windows-protocol baselines (rdp, dce_rpc, ntlm, kerberos, smb_mapping, smb_files),
scored by the shared scorer (compare_app.py ../zeek-windows).

The issue's acceptance is at least 95% of rows overall and 80% per log type. The floors below
are what the code scores today (2026-12-06: 99.1% of 113 rows, kerberos.log 98/98 since the
PKINIT requests spanning TCP segments are detected), so a regression fails. The one
ntlm.log row is below its 80%: that trace was captured on 10.10.10.120, whose own packets carry
an IP header checksum of 0 and bad TCP checksums (offload), and Zeek ran without -C, so it
dropped them: it saw only the server's side (the CHALLENGE, no AUTHENTICATE, so no user) and
oriented the connection from 10.10.10.121. We read both sides (user Administrator, orig
10.10.10.120). Verifying checksums, always or only where a side does not look offloaded, was
measured: it gets this row but loses more of the traces Zeek scored with -C (kerberos_tso,
smb_gssapi, the DCE-RPC ones), so it is not done; the README ("Reference scores") has the figures.
"""

from __future__ import annotations

import pytest

from tests.helpers import REFERENCE
from tests.helpers.zeek import assert_scorer_floors

OVERALL_FLOOR = 99.0
FLOORS = {"dce_rpc.log": 5, "kerberos.log": 98, "ntlm.log": 0, "rdp.log": 1, "smb_files.log": 6,
          "smb_mapping.log": 2}


@pytest.mark.timeout(1800)  # a sweep of reference traces: minutes when the machine is shared
def test_windows_agreement_with_zeek_baselines():
    assert_scorer_floors(REFERENCE / "zeek-windows", "Zeek Windows-protocol reference set", FLOORS, OVERALL_FLOOR)
