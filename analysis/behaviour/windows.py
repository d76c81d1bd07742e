"""Detectors over the Windows-protocol records (dce_rpc.log, ntlm.log, credentials).

``remote_service``: a service created on another host through the service control manager's
RPC interface (svcctl CreateService*), as PsExec, Impacket's psexec/smbexec and many ransomware
operators do to run code remotely (ATT&CK T1569.002 Service Execution over T1021.002 SMB/Windows
Admin Shares). One alert per connection, naming the calls seen and the account that logged in
on the connection (from credentials or ntlm.log) when known.
"""

from __future__ import annotations

from analysis.alerts import Alert
from analysis.behaviour.detectors import _alert, _first_flow, _in, _rows
from analysis.behaviour.model import BehaviourRule


def remote_service(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    p: dict = {}
    creates = _in("operation", rule.param("operations"), p, "op")
    rows = _rows(conn, f"""SELECT uid, MIN(ts_ns) AS ts_ns FROM dce_rpc WHERE endpoint = :ep AND {creates}
                           GROUP BY uid ORDER BY MIN(ts_ns)""", ep=rule.param("endpoint"), **p)
    out = []
    for r in rows:
        flow = _first_flow(conn, "uid = :u", u=r["uid"])
        if flow is None:
            continue
        calls = [c["operation"] for c in _rows(conn, """SELECT operation FROM dce_rpc WHERE uid = :u AND endpoint = :ep
                                                         GROUP BY operation ORDER BY MIN(ts_ns)""",
                                               u=r["uid"], ep=rule.param("endpoint"))]
        users = [u["login"] for u in _rows(conn, """SELECT "user" AS login FROM credentials WHERE uid = :u
                                                      AND "user" IS NOT NULL GROUP BY "user" ORDER BY MIN(ts_ns)""",
                                           u=r["uid"])]
        if not users:
            users = [f"{u['d']}\\{u['n']}" if u["d"] else u["n"] for u in _rows(
                conn, """SELECT domainname AS d, username AS n FROM ntlm WHERE uid = :u AND username IS NOT NULL
                         GROUP BY domainname, username ORDER BY MIN(ts_ns)""", u=r["uid"])]
        who = f" by account {', '.join(users)}" if users else ""
        out.append(_alert(rule, flow, f"{flow['orig_h']} created a service on {flow['resp_h']} over "
                                      f"{rule.param('endpoint')} ({', '.join(calls)}){who}",
                          ts_ns=r["ts_ns"], app_proto="dce_rpc"))
    return out
