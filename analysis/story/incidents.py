"""Incidents: findings grouped by actor and target over time, told as a story.

Grouping, in time order of the findings (``findings.load_findings``):
- an external address acting on a local host opens (or continues) the incident of that address;
- a local host that an incident compromised (an exploit, a successful login after guessing, a
  callback, a download, beaconing) acts *for* that incident afterwards: its later findings,
  its logins to other local hosts (lateral movement) and its uploads (exfiltration) join it;
- a local host acting on its own (a sweep, lateral movement, a large upload with no outside
  attacker before it) is an insider incident whose actor is that host;
- exposures (clear-text logins) join an incident only when its actor or a host it compromised
  made them; alone they are accounts to fix (``accounts``), not incidents.
Many reconnaissance-only incidents from different Internet addresses become one "background
scanning" incident, so thousands of alerts still give a short list, the worst first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa

from analysis.story.common import STAGE_TACTIC, Scope, carved_name, hms
from analysis.story.findings import COMPROMISE_KINDS, Finding
from analysis.story.model import STAGE_ORDER, Actor, Evidence, Exfiltration, Incident, Sentence, Stage
from recorder.core.schema import APP_TABLES, flows
from recorder.core.store import addr16

COMPROMISE_STAGES = frozenset({"initial-access", "execution", "command-and-control", "exfiltration",
                               "lateral-movement", "persistence", "privilege-escalation"})
ENCRYPTED_SERVICES = frozenset({"ssl", "tls", "ssh", "quic", "rdp"})
ENCRYPTED_PORTS = frozenset({443, 8443, 22, 993, 995, 465, 636, 990, 3389})
EXFIL_MIN_BYTES = 1000  # per host and destination after the compromise, or a carved file
_TUNNEL_DOMAIN = re.compile(r"subdomains of (\S+) in")  # the dns_tunnelling rule's words
BACKGROUND_MIN = 3  # reconnaissance-only incidents merged into one when there are more


@dataclass
class _Draft:
    actor: str
    internal: bool
    findings: list[Finding] = field(default_factory=list)
    extra: list[tuple[str, str, int, str, Evidence]] = field(default_factory=list)  # stage, technique, ts, text, ev
    compromised: dict[str, tuple[int, str, Evidence]] = field(default_factory=dict)  # host -> (ts, why, evidence)
    victims: dict[str, int] = field(default_factory=dict)  # host -> first ts
    others: set[str] = field(default_factory=set)  # other external addresses (C2, drop servers)


def _compromise_reason(f: Finding, host: str) -> str:
    if f.kind == "callback":
        return f"it connected back to the attacker ({f.detail})"
    if f.kind == "executable_download":
        return f"it received a program ({f.detail})"
    if f.kind == "beaconing":
        return f"it called a control server at regular intervals ({f.detail})"
    if f.kind == "remote_service":
        return f"a program was installed on it as a service ({f.detail})"
    return f"the alert '{f.name}' on its traffic with {f.dst if f.src == host else f.src} at {hms(f.first_ts_ns)}"


def group(scope: Scope, found: list[Finding]) -> list[_Draft]:
    drafts: list[_Draft] = []
    by_actor: dict[str, _Draft] = {}
    owner: dict[str, _Draft] = {}  # compromised local host -> its incident
    local = scope.is_local
    for f in found:
        src, dst = f.src, f.dst
        pushed = f.kind == "executable_download" and local(src) and local(dst)
        if pushed:  # a program copied from one local host to another: the sender acts
            src, dst = dst, src
        s_local, d_local = local(src), local(dst)
        d: _Draft | None = None
        if s_local and src in owner:
            d = owner[src]
        elif s_local and src in by_actor:
            d = by_actor[src]
        elif s_local and not d_local and dst in by_actor:
            d = by_actor[dst]  # the victim calls its attacker
        if f.exposure and d is None and src not in by_actor:
            continue
        if d is None:
            actor = dst if (s_local and not d_local) else src
            d = by_actor.get(actor)
            if d is None:
                d = by_actor[actor] = _Draft(actor, local(actor))
                drafts.append(d)
        d.findings.append(f)
        victim = src if (s_local and not d_local) else dst
        if victim != d.actor and local(victim):
            d.victims.setdefault(victim, f.first_ts_ns)
        if not local(dst) and dst != d.actor:
            d.others.add(dst)
        # the host that acts for the attacker from now on: the caller (callback, beacon), or the
        # receiver of a program pushed to it (a copy, a remote service)
        hit = src if (s_local and f.kind in COMPROMISE_KINDS and not pushed and f.kind != "remote_service") else victim
        if not d.internal and local(hit) and hit != d.actor and (f.kind in COMPROMISE_KINDS or (
                f.stage in COMPROMISE_STAGES and not f.exposure and f.stage != "lateral-movement")):
            if hit not in d.compromised:
                d.compromised[hit] = (f.first_ts_ns, _compromise_reason(f, hit), f.evidence)
                owner.setdefault(hit, d)
        if not d.internal and f.kind == "lateral_movement" and src in d.compromised and local(dst) \
                and dst not in d.compromised and dst != d.actor:  # the attacker moved on to it
            d.compromised[dst] = (f.first_ts_ns, f"the attacker moved to it from {src} ({f.detail})", f.evidence)
            owner.setdefault(dst, d)
        if f.exposure and d_local and s_local and src in d.compromised and dst != src:
            d.victims.setdefault(dst, f.first_ts_ns)
    return drafts


def _logins(scope: Scope, conn, d: _Draft) -> None:
    """Accepted logins by the actor to its victims (guessed passwords: initial access) and by its
    compromised hosts to other local hosts (lateral movement)."""
    cred = APP_TABLES["credentials"].c
    sources = [d.actor] + list(d.compromised)
    rows = conn.execute(sa.select(cred.id, cred.ts_ns, cred.uid, cred.capture_id, cred.orig_h, cred.resp_h,
                                  cred.protocol, cred.user).where(
        cred.orig_h.in_(sources), cred.success.is_(True), *scope.in_range(cred.ts_ns)).order_by(cred.ts_ns)).all()
    for r in rows:
        ev = scope.evidence("credential", r.ts_ns, r.id, uid=r.uid, capture_id=r.capture_id)
        if r.orig_h == d.actor and not d.internal:
            fails = conn.execute(sa.select(sa.func.count()).select_from(APP_TABLES["credentials"]).where(
                cred.orig_h == r.orig_h, cred.resp_h == r.resp_h, cred.success.is_(False),
                cred.ts_ns <= r.ts_ns)).scalar() or 0
            why = f" after {fails} failed tries" if fails else ""
            d.extra.append(("initial-access", "T1078 Valid Accounts", r.ts_ns,
                            f"{r.orig_h} logged in to {r.resp_h} over {r.protocol} as '{r.user}'{why}.", ev))
            d.victims.setdefault(r.resp_h, r.ts_ns)
            if r.resp_h not in d.compromised or d.compromised[r.resp_h][0] > r.ts_ns:
                d.compromised[r.resp_h] = (r.ts_ns, f"the attacker logged in to it over {r.protocol} as "
                                                    f"'{r.user}'{why}", ev)
        elif r.orig_h in d.compromised and r.ts_ns >= d.compromised[r.orig_h][0] and scope.is_local(r.resp_h) \
                and r.resp_h != r.orig_h:
            d.extra.append(("lateral-movement", "T1021 Remote Services", r.ts_ns,
                            f"From {r.orig_h}, the attacker logged in to {r.resp_h} over {r.protocol} as '{r.user}'.", ev))
            d.victims.setdefault(r.resp_h, r.ts_ns)
            d.compromised.setdefault(r.resp_h, (r.ts_ns, f"the attacker logged in to it from {r.orig_h} as "
                                                          f"'{r.user}'", ev))


def _collection(scope: Scope, conn, d: _Draft) -> None:
    """Files the insider copied from other local hosts (read from a share, downloaded from a local
    server) once its activity started: the collection stage, unless a rule already told it."""
    if any(f.stage == "collection" for f in d.findings):
        return
    fi = APP_TABLES["files"].c
    start = min(f.first_ts_ns for f in d.findings)
    rows = conn.execute(sa.select(fi.id, fi.ts_ns, fi.fuid, fi.uid, fi.capture_id, fi.resp_h, fi.source, fi.filename)
                        .where(fi.orig_h == d.actor, fi.is_orig.is_(False), fi.ts_ns >= start,
                               *scope.in_range(fi.ts_ns)).order_by(fi.ts_ns, fi.id)).all()
    by_server: dict[str, list] = defaultdict(list)
    for r in rows:
        if scope.is_local(r.resp_h) and r.resp_h != d.actor:
            by_server[r.resp_h].append(r)
    for server, got in sorted(by_server.items()):
        names = list(dict.fromkeys(carved_name(conn, r.fuid, r.filename) for r in got))
        proto = (got[0].source or "").upper() or "the network"
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        tech = "T1039 Data from Network Shared Drive" if proto == "SMB" else "T1005 Data from Local System"
        d.extra.append(("collection", tech, int(got[0].ts_ns),
                        f"{d.actor} copied {len(names)} file(s) from {server} over {proto}: {shown}.",
                        scope.evidence("file", got[0].ts_ns, got[0].fuid, uid=got[0].uid, capture_id=got[0].capture_id)))
        d.victims.setdefault(server, int(got[0].ts_ns))


def _extend_beacons(scope: Scope, conn, d: _Draft) -> None:
    """A beaconing alert stands at its first connection: its last time is the pair's last flow."""
    fl = flows.c
    for i, f in enumerate(d.findings):
        if f.kind != "beaconing":
            continue
        last = conn.execute(sa.select(sa.func.max(fl.ts_ns)).where(
            fl.orig_a == addr16(f.src), fl.resp_h == f.dst, *scope.in_range(fl.ts_ns))).scalar()
        if last is not None and last > f.last_ts_ns:
            d.findings[i] = dataclasses.replace(f, last_ts_ns=int(last))


def _names(scope: Scope, conn, addr: str) -> tuple[str, ...]:
    """Names the network gave an address (DNS answers, TLS SNI, HTTP Host...), at most five."""
    n = APP_TABLES["names"].c
    rows = conn.execute(sa.select(n.name).where(n.addr_a == addr16(addr), n.name.is_not(None))
                        .group_by(n.name).order_by(sa.func.min(n.ts_ns)).limit(5)).all()
    return tuple(r.name for r in rows)




def _outbound(scope: Scope, conn, host: str, start: int, *conds) -> list:
    fl = flows.c
    return conn.execute(sa.select(
        fl.resp_h, sa.func.sum(sa.func.coalesce(fl.orig_bytes, 0)).label("sent"), sa.func.min(fl.ts_ns).label("first"),
        sa.func.max(fl.ts_ns + sa.func.coalesce(fl.duration_ns, 0)).label("last"), sa.func.max(fl.service).label("svc"),
        sa.func.max(fl.resp_p).label("port"), sa.func.min(fl.id).label("fid"))
        .where(fl.orig_a == addr16(host), fl.ts_ns >= start, sa.or_(fl.local_resp.is_(False), fl.local_resp.is_(None)),
               *conds, *scope.in_range(fl.ts_ns)).group_by(fl.resp_h)).all()


def _dns_tunnels(scope: Scope, conn, d: _Draft, starts: dict[str, int]) -> list[Exfiltration]:
    """Data sent in the names of DNS queries (a tunnel) by a host after its compromise: the bytes
    are the query names' lengths under the tunnelled domain (ATT&CK T1048.003)."""
    dns = APP_TABLES["dns"].c
    out = []
    for f in d.findings:
        m = _TUNNEL_DOMAIN.search(f.text)
        if f.kind != "dns_tunnelling" or not m or f.src not in starts:
            continue
        domain = m.group(1).rstrip(".").lower()
        r = conn.execute(sa.select(sa.func.sum(sa.func.length(dns.query)).label("sent"), sa.func.count().label("n"),
                                   sa.func.min(dns.ts_ns).label("first"), sa.func.max(dns.ts_ns).label("last"),
                                   sa.func.min(dns.id).label("did"))
                         .where(dns.orig_a == addr16(f.src), dns.ts_ns >= starts[f.src],
                                sa.func.lower(dns.query).like(f"%.{domain}"), *scope.in_range(dns.ts_ns))).one()
        if not r.n:
            continue
        first = conn.execute(sa.select(dns.uid, dns.capture_id, dns.ts_ns).where(dns.id == r.did)).one()
        out.append(Exfiltration(
            host=f.src, destination=domain, bytes=int(r.sent or 0), first_ts_ns=int(r.first), last_ts_ns=int(r.last),
            encrypted=False, channel="dns", files=(),
            evidence=(scope.evidence("dns", first.ts_ns, r.did, uid=first.uid, capture_id=first.capture_id), f.evidence)))
    return out


def exfiltration(scope: Scope, conn, d: _Draft) -> list[Exfiltration]:
    """Bytes each compromised host (or the insider) sent to each external address after its
    compromise, with the files carved from those transfers. To a control server (beaconing)
    only the connections that carried data count (a file, or ``EXFIL_MIN_BYTES`` in one
    connection), not the beacons themselves; data in the names of a DNS tunnel counts too."""
    starts = dict((h, v[0]) for h, v in d.compromised.items())
    if d.internal:
        starts[d.actor] = min(f.first_ts_ns for f in d.findings)
    c2 = {f.dst for f in d.findings if f.kind == "beaconing"}
    files = APP_TABLES["files"]
    fl, fi = flows.c, files.c
    out = []
    for host, start in sorted(starts.items()):
        rows = [r for r in _outbound(scope, conn, host, start) if r.resp_h not in c2]
        if c2:
            rows += _outbound(scope, conn, host, start, fl.resp_h.in_(sorted(c2)),
                              sa.func.coalesce(fl.orig_bytes, 0) >= EXFIL_MIN_BYTES)
        for r in rows:
            if scope.is_local(r.resp_h):
                continue
            carved = conn.execute(sa.select(fi.fuid, fi.filename, fi.ts_ns).where(fi.orig_h == host, fi.resp_h == r.resp_h, fi.is_orig.is_(True), fi.ts_ns >= start,
                       *scope.in_range(fi.ts_ns)).order_by(fi.ts_ns)).all()
            if int(r.sent or 0) < EXFIL_MIN_BYTES and not carved:
                continue
            first = conn.execute(sa.select(fl.uid, fl.community_id, fl.capture_id, fl.ts_ns).where(fl.id == r.fid)).one()
            svc = (r.svc or "").split(",")[0]
            enc = svc in ENCRYPTED_SERVICES or (not svc and int(r.port or 0) in ENCRYPTED_PORTS)
            out.append(Exfiltration(
                host=host, destination=r.resp_h, bytes=int(r.sent or 0), first_ts_ns=int(r.first), last_ts_ns=int(r.last),
                encrypted=enc, channel=svc or f"tcp/{r.port}", files=tuple(dict.fromkeys(carved_name(conn, c.fuid, c.filename) for c in carved)),
                evidence=(scope.evidence("flow", first.ts_ns, first.uid, uid=first.uid, community_id=first.community_id,
                                         capture_id=first.capture_id),)))
    out += _dns_tunnels(scope, conn, d, starts)
    return sorted(out, key=lambda e: (-e.bytes, e.host, e.destination))


def _exfil_technique(e: Exfiltration, c2: set[str]) -> str:
    if e.channel == "dns":
        return "T1048.003 Exfiltration Over Unencrypted Non-C2 Protocol"
    if e.destination in c2:
        return "T1041 Exfiltration Over C2 Channel"
    return "T1048 Exfiltration Over Alternative Protocol" if e.encrypted else "T1041 Exfiltration Over C2 Channel"


def exfil_words(e: Exfiltration) -> str:
    """``192.168.1.20 sent 2,048 bytes to 198.51.100.23 over http, files: cards.csv``."""
    if e.channel == "dns":
        return f"{e.host} sent {e.bytes:,} bytes hidden in DNS queries for names under {e.destination} (a DNS tunnel)"
    what = "content unknown (encrypted)" if e.encrypted else f"over {e.channel}"
    files_ = f", files: {', '.join(e.files)}" if e.files else ""
    return f"{e.host} sent {e.bytes:,} bytes to {e.destination} {what}{files_}"


def _stages(d: _Draft, exfil: list[Exfiltration]) -> tuple[Stage, ...]:
    parts: dict[str, list] = defaultdict(list)  # stage -> [(ts, last, technique, text, evidence)]
    for f in d.findings:
        stage = f.stage or "discovery"
        if stage == "discovery" and not d.internal:
            stage = "reconnaissance"
        if f.exposure:
            stage = "credential-access"
        more = f" ({f.count} alerts)" if f.count > 1 else ""
        parts[stage].append((f.first_ts_ns, f.last_ts_ns, f.technique, f"{f.text}{more}", f.evidence))
    for stage, tech, ts, text, ev in d.extra:
        parts[stage].append((ts, ts, tech, text, ev))
    c2 = {f.dst for f in d.findings if f.kind == "beaconing"}
    for e in exfil:
        parts["exfiltration"].append((e.first_ts_ns, e.last_ts_ns, _exfil_technique(e, c2), f"{exfil_words(e)}.",
                                      e.evidence[0]))
    out = []
    for stage, items in parts.items():
        items.sort(key=lambda i: i[0])
        techniques = tuple(dict.fromkeys(i[2] for i in items if i[2]))
        summary = "; ".join(i[3].rstrip(".") for i in items[:3]) + (f"; and {len(items) - 3} more" if len(items) > 3 else "")
        out.append(Stage(name=stage, tactic=STAGE_TACTIC.get(stage, stage), techniques=techniques,
                         first_ts_ns=items[0][0], last_ts_ns=max(i[1] for i in items), summary=summary + ".",
                         evidence=tuple(i[4] for i in items)))
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    return tuple(sorted(out, key=lambda s: (order.get(s.name, len(order)), s.first_ts_ns)))


def _story(d: _Draft, stages: tuple[Stage, ...], exfil: list[Exfiltration], pz: str | None, pz_why: str | None,
           pz_ev: Evidence | None) -> tuple[Sentence, ...]:
    events: list[tuple[int, str, Evidence]] = []
    for f in d.findings:
        more = f" ({f.count} times until {hms(f.last_ts_ns)})" if f.count > 1 else ""
        events.append((f.first_ts_ns, f"{hms(f.first_ts_ns)}: {f.text}{more}.", f.evidence))
    for _stage, _tech, ts, text, ev in d.extra:
        events.append((ts, f"{hms(ts)}: {text}", ev))
    for s in stages:
        if s.name == "exfiltration":
            for e in exfil:
                events.append((e.first_ts_ns, f"{hms(e.first_ts_ns)}: {exfil_words(e)}.", e.evidence[0]))
    events.sort(key=lambda e: e[0])
    who = f"The local host {d.actor}" if d.internal else f"The address {d.actor} (outside the network)"
    out = [Sentence(f"{who} is the actor of this incident; first seen {hms(events[0][0])}.", (events[0][2],))]
    if pz and d.internal and pz == d.actor:  # an insider's own machine was not "taken over"
        out.append(Sentence(f"It starts on {pz} itself, a computer inside the network: someone using it, or "
                            f"malicious software on it, did this ({pz_why}).", (pz_ev,) if pz_ev else ()))
    elif pz:
        out.append(Sentence(f"Patient zero is {pz}: {pz_why}.", (pz_ev,) if pz_ev else ()))
    out += [Sentence(text, (ev,)) for _, text, ev in events]
    return tuple(out)


def _confidence(d: _Draft, stages: tuple[Stage, ...]) -> tuple[str, tuple[str, ...]]:
    names = {s.name for s in stages}
    reasons = [f"{len(names)} stage(s): {', '.join(s.name for s in stages)}"]
    if d.compromised:
        reasons.append(f"{len(d.compromised)} host(s) acted for the attacker afterwards")
    sigs = {f.sid for f in d.findings if f.kind is None}
    if sigs:
        reasons.append(f"{len(sigs)} signature(s) matched")
    if d.compromised and len(names) >= 3:
        return "high", tuple(reasons)
    if len(names) >= 2:
        return "medium", tuple(reasons)
    reasons.append("one kind of activity only")
    return "low", tuple(reasons)


def _title(d: _Draft, pz: str | None, exfil: list[Exfiltration], names: set[str], confidence: str) -> str:
    left = f"; {sum(e.bytes for e in exfil):,} bytes left" if exfil else ""
    what = ", ".join(n.replace("-", " ") for n in sorted(names, key=STAGE_ORDER.index) if n in STAGE_ORDER)
    if confidence == "low" and not exfil and (d.internal or pz):
        # one kind of activity only (one rule, or one signature): a claim to check, not a verdict
        seen = d.findings[0].name
        who = f"local host {d.actor}" if d.internal else f"{d.actor} -> {pz}"
        return f"To check: {seen} ({who}; {what} only)"
    if d.internal:
        return f"Insider activity from local host {d.actor} ({what}){left}"
    if pz:
        return f"{d.actor} broke into {pz}" + (f" and reached {len(d.compromised) - 1} more host(s)"
                                               if len(d.compromised) > 1 else "") + left
    victims = ", ".join(sorted(d.victims)[:3]) + (" ..." if len(d.victims) > 3 else "")
    if names <= {"reconnaissance", "discovery"}:
        if all(f.kind in ("port_scan", "host_sweep") for f in d.findings):
            return f"{d.actor} scanned {victims or 'the network'}"
        return f"To check: {d.findings[0].name} ({d.actor} -> {victims or 'the network'})"
    return f"{d.actor} attacked {victims or 'the network'}"


def build_incidents(scope: Scope, found: list[Finding], recorded: tuple[int | None, int | None] = (None, None)
                    ) -> list[Incident]:
    """The incidents of ``found``, the worst first. ``recorded``: the first and last time the store
    holds in the range; an incident active in its last tenth is ``ongoing``."""
    drafts = group(scope, found)
    drafts = _merge_background(drafts)
    out = []
    with scope.store.db_errors("read the store"), scope.connect() as conn:
        for d in drafts:
            if isinstance(d, Incident):
                out.append(d)
                continue
            _logins(scope, conn, d)
            _extend_beacons(scope, conn, d)
            if d.internal:
                _collection(scope, conn, d)
            exfil = exfiltration(scope, conn, d)
            c2 = {f.dst for f in d.findings if f.kind == "beaconing"}
            stages = _stages(d, exfil)
            pz, pz_why, pz_ev = None, None, None
            if d.internal:  # an insider: the story starts on the actor's own machine
                pz, pz_why = d.actor, "the activity starts on it and no outside attacker reached it before"
                pz_ev = d.findings[0].evidence
            elif d.compromised:
                pz, (_, pz_why, pz_ev) = min(d.compromised.items(), key=lambda kv: (kv[1][0], kv[0]))
            first = min(s.first_ts_ns for s in stages)
            last = max(s.last_ts_ns for s in stages)
            conf, reasons = _confidence(d, stages)
            names = {s.name for s in stages}
            if conf == "low" and pz and not d.internal:
                pz_why = f"{pz_why} (one kind of activity only: check it)"
            severity = min(f.severity for f in d.findings)
            if (d.compromised and conf != "low") or exfil:
                severity = 1
            seed = d.findings[0]
            ident = hashlib.sha256(f"{d.actor}|{seed.sid}|{seed.src}|{seed.dst}|{seed.first_ts_ns}".encode()).hexdigest()
            hosts = sorted({d.actor, *d.victims, *d.compromised, *d.others,
                            *(e.destination for e in exfil if e.channel != "dns")})
            rec_first, rec_last = recorded
            tail = rec_last - (rec_last - rec_first) // 10 if rec_first is not None and rec_last is not None else None
            out.append(Incident(
                id=f"INC-{ident[:6]}", title=_title(d, pz, exfil, names, conf), severity=severity, first_ts_ns=first,
                last_ts_ns=last, ongoing=tail is not None and last >= tail,
                insider=d.internal, attackers=tuple(
                    Actor(a, scope.is_local(a), _names(scope, conn, a)) for a in
                    [d.actor] + [o for o in sorted(d.others) if o in c2 or o not in {e.destination for e in exfil}]),
                victims=tuple(sorted(set(d.victims) | set(d.compromised), key=lambda h: (d.victims.get(h, 0), h))),
                patient_zero=pz, patient_zero_reason=pz_why, stages=stages,
                compromised=tuple(sorted(d.compromised, key=lambda h: (d.compromised[h][0], h))) if not d.internal
                else (d.actor,),
                accounts=(), exfiltration=tuple(exfil), hosts=tuple(hosts), confidence=conf,
                confidence_reasons=reasons, story=_story(d, stages, exfil, pz, pz_why, pz_ev),
                alert_count=sum(f.count for f in d.findings)))
    rank = {"high": 0, "medium": 1, "low": 2}
    return sorted(out, key=lambda i: (i.severity, rank[i.confidence], -len(i.stages), i.first_ts_ns, i.id))


def _merge_background(drafts: list[_Draft]) -> list:
    """Reconnaissance-only incidents of outside addresses, when there are more than a few,
    become one incident (the Internet's background of scanners)."""
    def recon_only(d: _Draft) -> bool:
        return not d.internal and not d.compromised and all(
            f.stage in ("reconnaissance", "discovery") for f in d.findings)
    recon = [d for d in drafts if recon_only(d)]
    if len(recon) <= BACKGROUND_MIN:
        return drafts
    rest = [d for d in drafts if not recon_only(d)]
    found = sorted((f for d in recon for f in d.findings), key=lambda f: f.first_ts_ns)
    victims = sorted({v for d in recon for v in d.victims})
    first, last = found[0].first_ts_ns, max(f.last_ts_ns for f in found)
    ident = hashlib.sha256(("background|" + "|".join(sorted(d.actor for d in recon))).encode()).hexdigest()
    stage = Stage("reconnaissance", STAGE_TACTIC["reconnaissance"], ("T1046 Network Service Discovery",), first, last,
                  f"{len(recon)} outside addresses scanned {len(victims)} local host(s).",
                  tuple(f.evidence for f in found[:20]))
    story = (Sentence(f"{len(recon)} outside addresses scanned {len(victims)} local host(s) between {hms(first)} and "
                      f"{hms(last)}, with no sign that any of them got further.", tuple(f.evidence for f in found[:5])),)
    inc = Incident(id=f"INC-{ident[:6]}", title=f"Background scanning from {len(recon)} outside addresses",
                   severity=max(3, min(f.severity for f in found)), first_ts_ns=first, last_ts_ns=last, ongoing=False,
                   insider=False, attackers=tuple(Actor(d.actor, False) for d in sorted(recon, key=lambda d: d.actor)),
                   victims=tuple(victims), patient_zero=None, patient_zero_reason=None, stages=(stage,), accounts=(),
                   exfiltration=(), hosts=tuple(sorted({*victims, *(d.actor for d in recon)})), confidence="low",
                   confidence_reasons=("reconnaissance only",), story=story, alert_count=sum(f.count for f in found))
    return rest + [inc]
