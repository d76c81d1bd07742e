"""Accounts: every account the network showed (the credentials table: clear-text logins, and the
NTLM and Kerberos user names, which are only *seen*: no password crosses the wire), with the
flags that put it on the reset list, administrators first. Secrets are never read.

Aggregated in SQL per (account, protocol, client, server): a store of many logins gives as many
rows as distinct pairs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from analysis.behaviour.chain import is_admin_name
from analysis.story.common import Scope, hms
from analysis.story.model import Account, Evidence, Incident
from recorder.core.schema import APP_TABLES, log_events

# Protocols whose user names come without the password (authentication by challenge or ticket).
NAME_ONLY = frozenset({"ntlm", "kerberos", "ssh"})
BRUTE_MIN_FAILURES = 5
ANONYMOUS = frozenset({"anonymous", "ftp", "guest"})  # logins whose "password" is no secret
ADMIN_MIN_SERVERS = 5  # an account that logs in to this many hosts administers them


def _compromise_starts(incidents: list[Incident]) -> dict[str, list[tuple[int, str, bool]]]:
    """address -> [(from ts, incident id, is the attacker itself)] for the incidents' actors and victims."""
    out: dict[str, list[tuple[int, str, bool]]] = defaultdict(list)
    for inc in incidents:
        if inc.confidence == "low":
            continue
        for a in inc.attackers:
            out[a.address].append((inc.first_ts_ns, inc.id, True))
        for v in inc.victims:
            stages = [s for s in inc.stages if s.name != "reconnaissance"]
            start = min((s.first_ts_ns for s in stages), default=inc.first_ts_ns)
            out[v].append((start, inc.id, False))
    return out


@dataclass(frozen=True, slots=True)
class _Part:
    """One account's logins from one client to one server over one protocol (or one log's kind)."""

    user: str
    protocol: str | None
    orig_h: str | None
    resp_h: str | None
    ok: int
    bad: int
    clear: bool
    first: int
    last: int
    last_ok: int | None
    ev: Evidence


# log kinds whose login events name accounts, and what the accounts list calls them
LOG_PROTOCOLS = {"sshd": "SSH (auth log)", "windows": "Windows logon (event log)", "sudo": "sudo (auth log)",
                 "su": "su (auth log)"}
LOGIN_ACTIONS = ("login", "logon", "explicit credentials logon", "invalid user")


def _log_parts(scope: Scope, conn) -> tuple[list[_Part], dict[str, str]]:
    """Logins from the log events (sshd accepted/failed, Windows 4624/4625), as parts, and the
    accounts the logs show as administrators (root, sudo users, Windows 4672 special privileges)."""
    e = log_events.c
    ok = sa.func.sum(sa.case((e.outcome == "success", 1), else_=0))
    q = (sa.select(e.account, e.kind, e.src_ip, e.host, ok.label("ok"),
                   sa.func.sum(sa.case((e.outcome == "failure", 1), else_=0)).label("bad"),
                   sa.func.min(e.ts_ns).label("first"), sa.func.max(e.ts_ns).label("last"),
                   sa.func.max(sa.case((e.outcome == "success", e.ts_ns), else_=None)).label("last_ok"),
                   sa.func.min(e.id).label("first_id"))
         .where(e.account.is_not(None), e.account != "", e.ts_ns.is_not(None), e.kind.in_(("sshd", "windows")),
                e.action.in_(LOGIN_ACTIONS), *scope.in_range(e.ts_ns))
         .group_by(e.account, e.kind, e.src_ip, e.host))
    parts = []
    for r in conn.execute(q):
        first = conn.execute(sa.select(e.ts_ns, e.uid).where(e.id == r.first_id)).one()
        parts.append(_Part(r.account, LOG_PROTOCOLS[r.kind], r.src_ip, r.host, int(r.ok or 0), int(r.bad or 0), False,
                           int(r.first), int(r.last), r.last_ok, scope.evidence("log", first.ts_ns, r.first_id,
                                                                                 uid=first.uid)))
    admins: dict[str, str] = {}
    for r in conn.execute(sa.select(e.account, e.kind, e.action).where(
            e.account.is_not(None), sa.or_(sa.and_(e.kind == "sudo", e.outcome == "success"),
                                           e.action == "special privileges logon"), *scope.in_range(e.ts_ns))
                          .group_by(e.account, e.kind, e.action)):
        admins.setdefault(r.account, "ran sudo (auth log)" if r.kind == "sudo" else
                          "logged on with administrator privileges (Windows 4672)")
    return parts, admins


def build_accounts(scope: Scope, incidents: list[Incident]) -> list[Account]:
    cred = APP_TABLES["credentials"].c
    secret = sa.case((cred.secret.is_not(None), 1), else_=0)
    q = (sa.select(cred.user, cred.protocol, cred.orig_h, cred.resp_h, sa.func.count().label("n"),
                   sa.func.sum(sa.case((cred.success.is_(True), 1), else_=0)).label("ok"),
                   sa.func.sum(sa.case((cred.success.is_(False), 1), else_=0)).label("bad"),
                   sa.func.max(secret).label("clear"), sa.func.min(cred.ts_ns).label("first"),
                   sa.func.max(cred.ts_ns).label("last"), sa.func.min(cred.id).label("first_id"),
                   sa.func.max(sa.case((cred.success.is_(True), cred.ts_ns), else_=None)).label("last_ok"))
         .where(cred.user.is_not(None), cred.user != "", *scope.in_range(cred.ts_ns))
         .group_by(cred.user, cred.protocol, cred.orig_h, cred.resp_h))
    with scope.store.db_errors("read credentials"), scope.connect() as conn:
        rows = conn.execute(q).all()
        ids = [int(r.first_id) for r in rows]
        firsts = {}
        for i in range(0, len(ids), 500):
            firsts.update({int(r.id): r for r in conn.execute(
                sa.select(cred.id, cred.ts_ns, cred.uid, cred.capture_id).where(cred.id.in_(ids[i:i + 500])))})
        parts_all = [_Part(r.user, r.protocol, r.orig_h, r.resp_h, int(r.ok or 0), int(r.bad or 0), bool(r.clear),
                           int(r.first), int(r.last), r.last_ok, scope.evidence(
                               "credential", firsts[int(r.first_id)].ts_ns, r.first_id, uid=firsts[int(r.first_id)].uid,
                               capture_id=firsts[int(r.first_id)].capture_id)) for r in rows]
        log_parts, log_admins = _log_parts(scope, conn)
    starts = _compromise_starts(incidents)
    groups: dict[str, list] = defaultdict(list)
    for r in parts_all + log_parts:
        groups[r.user].append(r)
    out = []
    for name, parts in groups.items():
        reasons: list[str] = []
        protocols = tuple(sorted({p.protocol for p in parts if p.protocol}))
        clear = [p for p in parts if p.clear and (p.protocol or "").lower() not in NAME_ONLY]
        if name.lower() in ANONYMOUS:
            clear = []
            reasons.append("anonymous login: no secret to protect")
        exposed = bool(clear)
        if exposed:
            first = min(clear, key=lambda p: p.first)
            reasons.append(f"its password crossed the network in clear text ({first.protocol} from {first.orig_h} "
                           f"to {first.resp_h}, first at {hms(first.first)})")
        brute = [p for p in parts if (p.bad or 0) >= BRUTE_MIN_FAILURES and (p.ok or 0) > 0]
        if brute:
            b = max(brute, key=lambda p: p.bad)
            reasons.append(f"{b.bad} failed logins then a success from {b.orig_h} on {b.resp_h} (password guessed)")
        used_by, incs = [], []
        for p in parts:
            if not p.ok:
                continue
            for start, inc, is_attacker in starts.get(p.orig_h, ()):
                if p.last_ok is not None and p.last_ok >= start:
                    used_by.append(p)
                    incs.append(inc)
                    who = "the attacker" if is_attacker else "a compromised host"
                    reasons.append(f"used by {who} {p.orig_h} to log in to {p.resp_h} over {p.protocol} "
                                   f"(incident {inc})")
                    break
        servers = {p.resp_h for p in parts if p.ok}
        admin = is_admin_name(name) or len(servers) >= ADMIN_MIN_SERVERS or name in log_admins
        if admin:
            why = ("an administrator's name" if is_admin_name(name) else log_admins[name] if name in log_admins
                   else f"logged in to {len(servers)} hosts")
            reasons.insert(0, f"administrator account ({why}): reset it first")
        if not exposed and all((p.protocol or "").lower() in NAME_ONLY or p.protocol in LOG_PROTOCOLS.values()
                               for p in parts):
            reasons.append(f"account seen ({', '.join(protocols)}); its password did not cross the network")
        evidence = tuple(p.ev for p in sorted(parts, key=lambda p: p.first)[:5])
        out.append(Account(
            name=name, protocols=protocols, used_from=tuple(sorted({p.orig_h for p in parts})),
            used_on=tuple(sorted({p.resp_h for p in parts})), first_ts_ns=int(min(p.first for p in parts)),
            last_ts_ns=int(max(p.last for p in parts)), exposed=exposed, brute_forced=bool(brute),
            used_by_attacker=bool(used_by), admin=admin, successes=int(sum(p.ok or 0 for p in parts)),
            failures=int(sum(p.bad or 0 for p in parts)), reasons=tuple(reasons),
            incidents=tuple(dict.fromkeys(incs)), evidence=evidence))
    return sorted(out, key=lambda a: (not a.reset, not a.admin, not a.used_by_attacker, a.first_ts_ns, a.name))


def reset_list(accounts: list[Account]) -> list[Account]:
    """The accounts whose password must change, administrators first (the order of ``build_accounts``)."""
    return [a for a in accounts if a.reset]
