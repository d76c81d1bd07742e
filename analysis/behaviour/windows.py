"""Detectors over the Windows-protocol records (dce_rpc.log, ntlm.log, credentials).

``rpc_operation``: a host called one of ``operations`` on one of ``endpoints`` (DCE-RPC
interfaces, as dce_rpc.log names them) on another host, from a source not in
``ignore_sources``. The shipped rules use it for remote service creation (svcctl CreateService*,
as PsExec does: T1569.002 over T1021.002), remote scheduled tasks (atsvc NetrJobAdd,
ITaskSchedulerService SchRpcRegisterTask: T1053) and DCSync (drsuapi DRSGetNCChanges from a
host that is not a domain controller: T1003.006; with ``ignore_machine_accounts``, not when every
account on the connection is a computer account, NAME$, as domain controllers replicate). One alert per connection, naming the calls
seen on that interface and the account that logged in on the connection (from credentials or
ntlm.log) when known.
"""

from __future__ import annotations

import ipaddress

from analysis.alerts import Alert
from analysis.behaviour.model import BehaviourRule
from analysis.behaviour.queries import first_flow, make_alert, sql_in, sql_rows


def _ignored(addr: str, networks: list) -> bool:
    try:
        a = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(a in n for n in networks)


def rpc_operation(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    p: dict = {}
    where = sql_in("endpoint", rule.param("endpoints"), p, "ep") + " AND " + sql_in("operation", rule.param("operations"),
                                                                                p, "op")
    rows = sql_rows(conn, f"""SELECT uid, MIN(ts_ns) AS ts_ns FROM dce_rpc WHERE {where}
                           GROUP BY uid ORDER BY MIN(ts_ns)""", **p)
    networks = [ipaddress.ip_network(n, strict=False) for n in rule.param("ignore_sources")]
    out = []
    for r in rows:
        flow = first_flow(conn, "uid = :u", u=r["uid"])
        if flow is None or _ignored(flow["orig_h"], networks):
            continue
        q: dict = {"u": r["uid"]}
        calls = [c["operation"] for c in sql_rows(conn, f"""SELECT operation FROM dce_rpc WHERE uid = :u
                                                         AND {sql_in('endpoint', rule.param('endpoints'), q, 'ep')}
                                                         GROUP BY operation ORDER BY MIN(ts_ns)""", **q)]
        users = [u["login"] for u in sql_rows(conn, """SELECT "user" AS login FROM credentials WHERE uid = :u
                                                      AND "user" IS NOT NULL GROUP BY "user" ORDER BY MIN(ts_ns)""",
                                           u=r["uid"])]
        if not users:
            users = [f"{u['d']}\\{u['n']}" if u["d"] else u["n"] for u in sql_rows(
                conn, """SELECT domainname AS d, username AS n FROM ntlm WHERE uid = :u AND username IS NOT NULL
                         GROUP BY domainname, username ORDER BY MIN(ts_ns)""", u=r["uid"])]
        if users and rule.param("ignore_machine_accounts") and all(u.endswith("$") for u in users):
            continue  # a computer account (NAME$): what domain controllers replicate with
        who = f" by account {', '.join(users)}" if users else ""
        out.append(make_alert(rule, flow, f"{flow['orig_h']} {rule.param('action')} on {flow['resp_h']} "
                                      f"({', '.join(calls)}){who}", ts_ns=r["ts_ns"], app_proto="dce_rpc"))
    return out
