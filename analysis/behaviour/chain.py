"""Generic attack-chain and insider detectors: signals that need no signature for the exploit.

    callback            a host connects back to an address that attacked it just before
                        (reverse shell, second stage): ATT&CK T1571 / T1059
    bind_shell          right after an attack, the attacker reaches a port of the victim never
                        served before (a shell the exploit bound): T1059
    executable_download an executable (PE, ELF, Mach-O, Java class) by content, not by name,
                        reaches a local host over HTTP, FTP or SMB (T1105 Ingress Tool Transfer)
    cleartext_admin     an administrator account logs in over a clear-text protocol, or a
                        telnet/rlogin/rsh session is opened (T1552 / T1021)
    large_upload        a local host sends far more than it receives to one external address in
                        one connection, above a volume (uploads to file sharing, T1567)
    remote_service      a program written to ADMIN$/C$ and IPC$ mapped in one SMB connection:
                        PsExec-like remote execution (T1569.002 Service Execution)
    share_read          a local host reads many files from one SMB server in an hour, far more
                        than its usual (T1039 Data from Network Shared Drive)
    shared_account      one account logs in from two hosts within minutes (T1078 Valid Accounts)

Same contract as ``detectors``: ``fn(conn, rule, prior) -> list[Alert]``.
"""

from __future__ import annotations

from analysis.alerts import Alert
from analysis.behaviour.model import BehaviourRule
from analysis.behaviour.queries import NS, first_flow, make_alert, sql_in, sql_rows

ADMIN_NAMES = ("root", "admin", "administrator", "administrateur", "sa", "postgres", "sysadmin",
               "domain admins", "enterprise admins", "superuser", "toor")
EXECUTABLE_MIMES = ("application/x-dosexec", "application/x-executable", "application/x-mach-o-executable",
                    "application/x-java-applet", "text/x-script")


def is_admin_name(user: str | None) -> bool:
    """root, Administrator, admin... with or without a domain (``CORP\\Administrator``, ``root@x``)."""
    if not user:
        return False
    name = user.lower().split("\\")[-1].split("@")[0].strip()
    return name in ADMIN_NAMES or name.endswith("admin") or name.startswith("admin")


def callback(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """A local host opens a session to an external address within ``window_seconds`` after an
    alert (of a kind in ``after_kinds``) naming that address as the source and the host as the
    target: the victim calls its attacker back."""
    out = []
    window = int(rule.param("window_seconds") * NS)
    for (attacker, victim), cause in _first_attacks(prior, rule):
        flow = first_flow(conn, """orig_h = :v AND resp_h = :a AND ts_ns >= :t AND ts_ns <= :end
                                    AND local_orig = :yes AND (local_resp IS NULL OR local_resp = :no)
                                    AND COALESCE(orig_bytes, 0) + COALESCE(resp_bytes, 0) > 0""",
                           v=victim, a=attacker, t=cause.ts_ns, end=cause.ts_ns + window, yes=True, no=False)
        if flow is None:
            continue
        delay = (flow["ts_ns"] - cause.ts_ns) / NS
        out.append(make_alert(rule, flow, f"{victim} connected back to {attacker}:{flow['resp_p']} {delay:.0f} s after "
                                      f"{cause.signature.split(':')[0].lower()} from it"))
    return out


def bind_shell(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Right after an attack (an alert of ``after_kinds`` from an address on a local host), the
    attacker opens a session to a port of that host that nothing had been served on before, with
    no protocol the parsers know, at or above ``min_port``: a shell bound by the exploit."""
    out = []
    window = int(rule.param("window_seconds") * NS)
    for (attacker, victim), cause in _first_attacks(prior, rule):
        for f in sql_rows(conn, """SELECT * FROM flows f WHERE orig_h = :a AND resp_h = :v AND ts_ns >= :t AND ts_ns <= :end
                                AND proto = 'tcp' AND resp_p >= :minp AND service IS NULL AND local_resp = :yes
                                AND COALESCE(orig_bytes, 0) > 0 AND COALESCE(resp_bytes, 0) > 0
                                AND NOT EXISTS (SELECT 1 FROM flows g WHERE g.resp_h = f.resp_h AND g.resp_p = f.resp_p
                                    AND g.proto = 'tcp' AND g.ts_ns < :t AND COALESCE(g.resp_bytes, 0) > 0)
                                ORDER BY ts_ns LIMIT 1""",
                       a=attacker, v=victim, t=cause.ts_ns, end=cause.ts_ns + window, minp=rule.param("min_port"),
                       yes=True):
            delay = (f["ts_ns"] - cause.ts_ns) / NS
            out.append(make_alert(rule, f, f"{attacker} opened a session to {victim}:{f['resp_p']}, a port never served "
                                       f"before, {delay:.0f} s after {cause.signature.split(':')[0].lower()} from it"))
    return out


def executable_download(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Files whose content is an executable (files.mime_type, sniffed from the bytes) received by a
    local host; the text says when an alert named the host within ``window_seconds`` before."""
    p: dict = {"yes": True}
    rows = sql_rows(conn, f"""
        SELECT ts_ns, uid, orig_h, resp_h, source, mime_type, filename, is_orig, seen_bytes, sha256 FROM files
        WHERE {sql_in('mime_type', rule.param('mime_types'), p, 'mime')} ORDER BY ts_ns, id""", **p)
    window = int(rule.param("window_seconds") * NS)
    out = []
    for r in rows:
        receiver, sender = (r["resp_h"], r["orig_h"]) if r["is_orig"] else (r["orig_h"], r["resp_h"])
        flow = first_flow(conn, "uid = :u", u=r["uid"]) if r["uid"] else None
        if flow is None:
            continue
        local_receiver = flow["local_resp"] if r["is_orig"] else flow["local_orig"]
        if not local_receiver:
            continue
        cause = next((a for a in sorted(prior, key=lambda a: -a.ts_ns)
                      if receiver in (a.src_ip, a.dest_ip) and r["ts_ns"] - window <= a.ts_ns <= r["ts_ns"]), None)
        name = f" '{r['filename']}'" if r["filename"] else ""
        after = f", {(r['ts_ns'] - cause.ts_ns) / NS:.0f} s after alert {cause.signature_id} on it" if cause else ""
        out.append(make_alert(rule, flow, f"{receiver} received an executable{name} ({r['mime_type']}, "
                                      f"{r['seen_bytes'] or 0:,} bytes) from {sender} over {r['source']}{after}",
                          ts_ns=r["ts_ns"], src=receiver, dest=sender, app_proto=(r["source"] or "").lower() or None))
    return out


def cleartext_admin(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Administrator accounts logging in over a clear-text protocol, accepted or with no outcome
    seen (one alert per account, client and server, with the count; NTLM and Kerberos carry no
    password and are left out), and sessions on clear-text remote-shell ports."""
    out = []
    rows = sql_rows(conn, """SELECT orig_h, resp_h, protocol, "user" AS login, MIN(ts_ns) AS ts_ns, MIN(uid) AS uid,
                                 COUNT(*) AS n, SUM(CASE WHEN success = :yes THEN 1 ELSE 0 END) AS ok,
                                 SUM(CASE WHEN success IS NULL THEN 1 ELSE 0 END) AS unknown
                          FROM credentials WHERE "user" IS NOT NULL AND secret IS NOT NULL
                          GROUP BY orig_h, resp_h, protocol, "user" ORDER BY MIN(ts_ns)""", yes=True)
    for r in rows:
        if not is_admin_name(r["login"]) or not (r["ok"] or r["unknown"]):
            continue  # wrong guesses are not the administrator's password
        flow = first_flow(conn, "uid = :u", u=r["uid"]) if r["uid"] else None
        if flow is None:
            continue
        outcome = f"{r['ok']} accepted" if r["ok"] else "none accepted"
        out.append(make_alert(rule, flow, f"administrator account '{r['login']}' logged in over {r['protocol']} in clear "
                                      f"text from {r['orig_h']} to {r['resp_h']} ({r['n']} login(s), {outcome})",
                          ts_ns=r["ts_ns"], app_proto=(r["protocol"] or "").lower() or None))
    ports = rule.param("ports")
    names = {port: name for name, port in ports.items()}
    p: dict = {}
    for g in sql_rows(conn, f"""SELECT orig_h, resp_h, resp_p, COUNT(*) AS n, MIN(ts_ns) AS ts_ns FROM flows
                             WHERE proto = 'tcp' AND {sql_in('resp_p', names, p)}
                             AND COALESCE(orig_bytes, 0) > 0 AND COALESCE(resp_bytes, 0) > 0
                             GROUP BY orig_h, resp_h, resp_p ORDER BY MIN(ts_ns)""", **p):
        flow = first_flow(conn, "orig_h = :o AND resp_h = :r AND resp_p = :rp", o=g["orig_h"], r=g["resp_h"],
                           rp=g["resp_p"])
        out.append(make_alert(rule, flow, f"{g['orig_h']} opened {g['n']} {names[g['resp_p']]} session(s) to "
                                      f"{g['resp_h']} (clear-text remote shell)"))
    return sorted(out, key=lambda a: a.ts_ns)


def large_upload(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """One connection from a local host to an external address that sent at least ``min_bytes``
    and at least ``min_ratio`` times what it received."""
    rows = sql_rows(conn, """SELECT * FROM flows WHERE local_orig = :yes AND (local_resp IS NULL OR local_resp = :no)
                          AND COALESCE(orig_bytes, 0) >= :min ORDER BY ts_ns, id""",
                 yes=True, no=False, min=rule.param("min_bytes"))
    out = []
    for f in rows:
        if f["orig_bytes"] < rule.param("min_ratio") * max(1, f["resp_bytes"] or 0):
            continue
        out.append(make_alert(rule, f, f"{f['orig_h']} uploaded {f['orig_bytes']:,} bytes to {f['resp_h']}:{f['resp_p']} "
                                   f"(received {f['resp_bytes'] or 0:,})"))
    return out


def remote_service(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """PsExec's pattern: in one SMB connection, a program written to an administrative share
    (ADMIN$, C$...) and the IPC$ share mapped (where the service control manager's pipe is)."""
    p: dict = {"yes": True}
    admin = " OR ".join(f"UPPER(m.path) LIKE :share_{i}" for i in range(len(rule.param("admin_shares"))))
    for i, share in enumerate(rule.param("admin_shares")):
        p[f"share_{i}"] = "%\\" + share.upper()
    rows = sql_rows(conn, f"""
        SELECT f.ts_ns, f.uid, f.orig_h, f.resp_h, f.filename, f.mime_type, f.seen_bytes, MIN(m.path) AS share
        FROM files f JOIN smb_mapping m ON m.uid = f.uid AND ({admin})
        WHERE f.source = 'SMB' AND f.is_orig = :yes AND {sql_in('f.mime_type', rule.param('mime_types'), p, 'mime')}
          AND EXISTS (SELECT 1 FROM smb_mapping i WHERE i.uid = f.uid AND UPPER(i.path) LIKE '%IPC$')
        GROUP BY f.ts_ns, f.uid, f.orig_h, f.resp_h, f.filename, f.mime_type, f.seen_bytes ORDER BY f.ts_ns""", **p)
    out = []
    for r in rows:
        flow = first_flow(conn, "uid = :u", u=r["uid"])
        if flow is None:
            continue
        name = f" '{r['filename']}'" if r["filename"] else ""
        out.append(make_alert(rule, flow, f"{r['orig_h']} copied a program{name} to {r['share']} on {r['resp_h']} and "
                                      f"opened its IPC$ share (remote service install, as PsExec does)",
                          ts_ns=r["ts_ns"], app_proto="smb"))
    return out


def share_read(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """A local host reading many distinct files from one SMB server within an hour, far more than
    it reads there in its other hours (or never before): someone copying a share."""
    p: dict = {"hour": 3600 * NS, "no": False}
    rows = sql_rows(conn, """SELECT orig_h, resp_h, ts_ns / :hour AS hour, COUNT(DISTINCT COALESCE(filename, fuid)) AS n,
                                 MIN(ts_ns) AS ts_ns, MIN(uid) AS uid, SUM(COALESCE(seen_bytes, 0)) AS bytes
                          FROM files WHERE source = 'SMB' AND is_orig = :no
                          GROUP BY orig_h, resp_h, ts_ns / :hour""", **p)
    hours: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        hours.setdefault((r["orig_h"], r["resp_h"]), []).append(r)
    out = []
    for (client, server), rs in sorted(hours.items()):
        for r in rs:
            if r["n"] < rule.param("min_files"):
                continue
            others = sorted(o["n"] for o in rs if o is not r)
            usual = others[len(others) // 2] if others else 0
            if usual and r["n"] < rule.param("min_ratio") * usual:
                continue
            flow = first_flow(conn, "uid = :u", u=r["uid"]) if r["uid"] else None
            if flow is None or not flow["local_orig"]:
                continue
            why = f"{r['n'] / usual:.0f}x its usual {usual} an hour" if usual else "never before"
            out.append(make_alert(rule, flow, f"{client} read {r['n']} files ({r['bytes']:,} bytes) from the shares of "
                                          f"{server} within an hour ({why})", ts_ns=r["ts_ns"], app_proto="smb"))
    return out


def shared_account(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """One account logging in successfully from two different hosts within ``window_seconds``:
    someone using another person's account (NTLM, Kerberos and clear-text logins alike)."""
    rows = sql_rows(conn, """SELECT a."user" AS login, a.orig_h AS first_h, b.orig_h AS second_h, MIN(b.ts_ns) AS ts_ns,
                                 MIN(b.uid) AS uid, COUNT(*) AS n
                          FROM credentials a JOIN credentials b ON a."user" = b."user" AND a.orig_h <> b.orig_h
                               AND b.ts_ns >= a.ts_ns AND b.ts_ns - a.ts_ns <= :w
                          WHERE a.success = :yes AND b.success = :yes AND a."user" IS NOT NULL
                          GROUP BY a."user", a.orig_h, b.orig_h ORDER BY MIN(b.ts_ns)""",
                 w=int(rule.param("window_seconds") * NS), yes=True)
    out, seen = [], set()
    ignore = {u.lower() for u in rule.param("ignore_users")}
    for r in rows:
        key = (r["login"], frozenset((r["first_h"], r["second_h"])))
        if key in seen or r["login"].lower() in ignore:
            continue
        seen.add(key)
        flow = first_flow(conn, "uid = :u", u=r["uid"]) if r["uid"] else None
        if flow is None:
            continue
        out.append(make_alert(rule, flow, f"account '{r['login']}' logged in from {r['first_h']} and from {r['second_h']} "
                                      f"within {rule.param('window_seconds') / 60:.0f} min", ts_ns=r["ts_ns"],
                          src=r["second_h"]))
    return out


CHAIN_DETECTORS = {
    "callback": callback,
    "bind_shell": bind_shell,
    "executable_download": executable_download,
    "cleartext_admin": cleartext_admin,
    "large_upload": large_upload,
    "remote_service": remote_service,
    "share_read": share_read,
    "shared_account": shared_account,
}


def _first_attacks(prior: list[Alert], rule: BehaviourRule) -> list[tuple[tuple[str, str], Alert]]:
    """The first alert of a kind in the rule's ``after_kinds`` per (attacker, victim) pair, sorted."""
    kinds = set(rule.param("after_kinds"))
    first: dict[tuple[str, str], Alert] = {}
    for a in sorted(prior, key=lambda a: a.ts_ns):
        if a.rule_kind in kinds:
            first.setdefault((a.src_ip, a.dest_ip), a)
    return sorted(first.items())
