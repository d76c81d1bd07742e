"""The owner's report as facts to show: one view built from a Story, its timeline and the report's
meta, shared by the HTML and the Markdown templates so both say the same thing.

Every claim carries evidence numbers (``E1``, ``E2`` ...) that point into the evidence table of the
appendix, so a reader (an insurer, the police) can find the record in the store and the packet in
the capture. Big stores stay readable: the top incidents are told in full, the rest summarised;
the timeline lists the notable rows and counts the others.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from analysis.report.meta import ReportMeta
from analysis.story.model import STAGE_ORDER, Account, Evidence, Incident, Story, TimelineEvent, rfc3339

TOP_INCIDENTS = 10  # told in full; the rest are summarised in one table
TIMELINE_ROWS = 150  # rows listed in the report's timeline; the rest counted
EVIDENCE_PER_CLAIM = 3  # evidence numbers shown beside one claim; "+N more" beyond

STAGE_WORDS = {
    "reconnaissance": "looked for a way in (scanned your computers)",
    "initial-access": "got in",
    "execution": "ran their own programs",
    "persistence": "made sure they could come back",
    "privilege-escalation": "gave themselves more rights",
    "credential-access": "stole or guessed passwords",
    "discovery": "looked around your network",
    "lateral-movement": "moved on to other computers",
    "collection": "gathered data",
    "command-and-control": "kept remote control (regular call-backs to their server)",
    "exfiltration": "took data out of your network",
    "impact": "damaged or locked data",
}

DATA_WORDS = {
    "card": "payment card numbers",
    "email": "e-mail addresses",
    "iban": "bank account numbers (IBAN)",
    "ssn": "US social security numbers",
    "db_dump": "database rows",
    "encrypted": "bytes of encrypted data (content unknown)",
}

CUSTOMER_ADVICE = {
    "card": "Cancel the payment card you used with us and ask your bank for a new one; check your "
            "statements for payments you did not make.",
    "email": "Be wary of e-mails that claim to come from us and ask for passwords or payments; we will "
             "never ask for your password.",
    "iban": "Check your bank account for direct debits you did not agree to, and tell your bank.",
    "ssn": "Consider asking the credit bureaus for a credit freeze or fraud alert.",
    "db_dump": "If you have an account with us, change its password, and anywhere you used the same one.",
}

# Protocols whose logins carry the password itself in clear text (SSH, SMB, Kerberos do not)
CLEARTEXT_PROTOCOLS = frozenset({"FTP", "TELNET", "HTTP", "POP3", "IMAP", "SMTP", "LDAP", "SNMP", "VNC", "IRC",
                                 "MYSQL", "REDIS", "RLOGIN"})

_PAN = re.compile(r"(?<![\w*])(?:\d[ -]?){12,18}\d(?![\w*])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_pans(text: str) -> str:
    """Mask every Luhn-valid 13-19 digit number in ``text`` as ``4111 **** **** 1111``: the report
    never prints a card number whole, whatever its input holds."""
    def repl(m: re.Match) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if not 13 <= len(digits) <= 19 or not _luhn(digits):
            return m.group(0)
        return f"{digits[:4]} **** **** {digits[-4:]}"
    return _PAN.sub(repl, text)


def when(ts_ns: int | None) -> str:
    """A time as an owner reads it: ``Tue 3 Nov 2026, 14:05:09 UTC``."""
    if ts_ns is None:
        return "unknown"
    dt = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    return f"{dt:%a} {dt.day} {dt:%b %Y, %H:%M:%S} UTC"


def nbytes(n: int) -> str:
    """Bytes as an owner reads them: ``1.2 MB`` (decimal units), exact below 1 kB."""
    if n < 1000:
        return f"{n} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    return f"{n} bytes"  # not reached


@dataclass(slots=True)
class EvidenceIndex:
    """Numbers each distinct Evidence once, in the order the report first cites it."""

    items: list[Evidence] = field(default_factory=list)
    _numbers: dict[Evidence, int] = field(default_factory=dict)

    def cite(self, evidence: tuple[Evidence, ...] | list[Evidence]) -> dict[str, Any]:
        shown = []
        for ev in list(evidence)[:EVIDENCE_PER_CLAIM]:
            if ev not in self._numbers:
                self.items.append(ev)
                self._numbers[ev] = len(self.items)
            shown.append(self._numbers[ev])
        return {"numbers": shown, "more": max(0, len(evidence) - EVIDENCE_PER_CLAIM)}


def _some(items: list[str], limit: int = 20) -> str:
    """Up to ``limit`` items joined, and how many more: a list of 3,000 addresses stays one line."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _claim(index: EvidenceIndex, text: str, evidence=(), anchor: str | None = None) -> dict[str, Any]:
    return {"text": text, "cite": index.cite(tuple(evidence)), "anchor": anchor}


def _incident_evidence(inc: Incident) -> tuple[Evidence, ...]:
    for stage in inc.stages:
        if stage.evidence:
            return stage.evidence
    return next((s.evidence for s in inc.story if s.evidence), ())


def _entry_stage(inc: Incident):
    """The stage that tells how they got in: initial access, else the first one."""
    return next((s for s in inc.stages if s.name == "initial-access"), inc.stages[0] if inc.stages else None)


def _summary(story: Story, incidents: list[Incident], index: EvidenceIndex) -> dict[str, Any]:
    first = min(i.first_ts_ns for i in incidents)
    last = max(i.last_ts_ns for i in incidents)
    attackers: dict[str, dict[str, Any]] = {}
    for inc in incidents:
        for a in inc.attackers:
            entry = attackers.setdefault(a.address, {"address": a.address, "internal": a.internal,
                                                     "names": list(a.names), "incidents": []})
            entry["incidents"].append(inc.id)
    top = incidents[0]
    ongoing = [i for i in incidents if i.ongoing]
    entry = _entry_stage(top)
    what = [_claim(index, f"{len(incidents)} incident(s) were found in the recorded traffic; the most serious: "
                          f"{top.title}.", _incident_evidence(top), top.id)]
    by_id = {i.id: i for i in incidents}
    for a in list(attackers.values())[:TOP_INCIDENTS]:
        inc = by_id[a["incidents"][0]]
        where = "a computer inside your network" if a["internal"] else "an address outside your network"
        names = f" ({', '.join(a['names'])})" if a["names"] else ""
        what.append(_claim(index, f"Attacker: {a['address']}{names}, {where}, in {len(a['incidents'])} "
                                  f"incident(s).", _incident_evidence(inc), inc.id))
    if len(attackers) > TOP_INCIDENTS:
        what.append(_claim(index, f"{len(attackers) - TOP_INCIDENTS} more attacking address(es), listed with "
                                  "their incidents below."))
    for inc in [i for i in incidents if i.patient_zero][:5]:
        if inc.patient_zero:
            insider = any(a.internal and a.address == inc.patient_zero for a in inc.attackers)
            label = ("Computer it started from (inside your network: someone using it, or malicious software on "
                     "it)" if insider else "First computer taken over (patient zero)")
            what.append(_claim(index, f"{label}: {inc.patient_zero}"
                                      f"{' - ' + inc.patient_zero_reason if inc.patient_zero_reason else ''}.",
                               entry.evidence if inc is top and entry else _incident_evidence(inc), inc.id))
    exfil = sorted(((inc, x) for inc in incidents for x in inc.exfiltration), key=lambda p: p[1].first_ts_ns)
    for inc, x in exfil[:5]:
        files = f" (files: {', '.join(x.files)})" if x.files else ""
        how = ("hidden in DNS look-ups for names under " + x.destination if x.channel == "dns"
               else f"to {x.destination} over {x.channel}")
        what.append(_claim(index, f"Data left: {nbytes(x.bytes)}{files} from {x.host} {how}"
                                  f"{', content unknown (encrypted)' if x.encrypted else ''}, "
                                  + (f"at {when(x.first_ts_ns)}." if x.last_ts_ns - x.first_ts_ns < 1_000_000_000
                                     else f"{when(x.first_ts_ns)} to {when(x.last_ts_ns)}."), x.evidence, inc.id))
    if len(exfil) > 5:
        what.append(_claim(index, f"{len(exfil) - 5} more transfer(s) out, listed with their incidents below."))
    if ongoing:
        still = _claim(index, "Yes, probably: activity was still seen near the end of the recording "
                              f"({when(max(i.last_ts_ns for i in ongoing))}) in "
                              f"{_some([i.id for i in ongoing], 5)}.", _incident_evidence(ongoing[0]), ongoing[0].id)
    else:
        still = _claim(index, f"No activity of these incidents was seen after {when(last)}; the recording ends "
                              f"{when(story.last_ts_ns)}. Keep recording: quiet is not proof they left.")
    return {"first": when(first), "last": when(last), "first_rfc": rfc3339(first), "last_rfc": rfc3339(last),
            "since": _claim(index, f"Since {when(first)} (first sign of the attack).",
                            _incident_evidence(min(incidents, key=lambda i: i.first_ts_ns))),
            "ongoing": bool(ongoing), "still": still, "what": what,
            "attackers": list(attackers.values())}


def _actions(story: Story, incidents: list[Incident], resets: list[Account], index: EvidenceIndex) -> list[dict]:
    out = []
    # only hosts in an attacker's hands (patient zero, hosts it moved to, an insider's own machine):
    # a host that was only scanned or swept is not named
    ongoing = [i for i in incidents if i.ongoing and i.compromised]
    ongoing_hosts = list(dict.fromkeys(h for i in ongoing for h in i.compromised))
    done = [i for i in incidents if i.compromised and not i.ongoing and not i.insider]  # insiders: see below
    others = list(dict.fromkeys(h for i in done for h in i.compromised if h not in ongoing_hosts))
    if ongoing_hosts:
        out.append(_claim(index, f"Disconnect {_some(ongoing_hosts)} from the network now (unplug the cable "
                                 "or turn off Wi-Fi). Do not switch them off or wipe them yet: they are evidence.",
                          _incident_evidence(ongoing[0]), ongoing[0].id))
    if others:
        first = done[0]
        out.append(_claim(index, f"Have {_some(others)} checked, or reinstalled, before they are used again: "
                                 "the attackers controlled them.", _incident_evidence(first), first.id))
    outside = [i for i in incidents if any(not a.internal for a in i.attackers)]
    external = sorted({a.address for i in outside for a in i.attackers if not a.internal})
    if external:
        out.append(_claim(index, f"Block these addresses in your router or firewall: {_some(external, 30)}.",
                          _incident_evidence(outside[0]), outside[0].id))
    if resets:
        admins = [a.name for a in resets if a.admin]
        first = f" Start with the administrator account(s): {_some(admins)}." if admins else ""
        out.append(_claim(index, f"Change the passwords of {len(resets)} account(s) listed under "
                                 f"\"Accounts to reset\".{first}", resets[0].evidence))
    left = [d for d in story.data_at_risk if d.left_network and d.kind != "encrypted"]
    if any(d.kind == "card" for d in left):
        cards = [d for d in left if d.kind == "card"]
        out.append(_claim(index, "Call your card processor (the bank that handles your card payments) today: "
                                 f"{sum(d.count for d in cards)} card number(s) left your network.", cards[0].evidence))
    if left:
        out.append(_claim(index, "Tell the customers whose data left (a draft letter is below). Where the GDPR "
                                 "applies, the data-protection authority must be told within 72 hours.",
                          left[0].evidence))
    insiders = [i for i in incidents if i.insider]
    if insiders:
        hosts = sorted({a.address for i in insiders for a in i.attackers})
        out.append(_claim(index, f"Part of this came from inside: {_some(hosts)}. Treat it as a staff matter: "
                                 "keep the evidence and take legal advice before confronting anyone.",
                          _incident_evidence(insiders[0]), insiders[0].id))
    exposed = [a for a in story.accounts if a.exposed]
    if exposed:
        protocols = sorted({p for a in exposed for p in a.protocols if p.upper() in CLEARTEXT_PROTOCOLS})
        which = f"{', '.join(protocols)} logins" if protocols else "logins that are not encrypted"
        out.append(_claim(index, f"Stop using {which}: their passwords cross the network in clear text. Use the "
                                 "encrypted kind (SFTP, HTTPS, SSH) instead.", exposed[0].evidence))
    out.append(_claim(index, "Keep this report and the capture files unchanged (their SHA-256 fingerprints are in "
                             "the appendix) for your insurer and the police."))
    return out


def _incident_view(inc: Incident, index: EvidenceIndex) -> dict[str, Any]:
    return {
        "id": inc.id, "title": inc.title, "severity": inc.severity, "first": when(inc.first_ts_ns),
        "last": when(inc.last_ts_ns), "ongoing": inc.ongoing, "insider": inc.insider,
        "attackers": [f"{a.address}{' (inside your network)' if a.internal else ''}" for a in inc.attackers],
        "victims": list(inc.victims), "compromised": list(inc.compromised), "patient_zero": inc.patient_zero, "patient_zero_reason": inc.patient_zero_reason,
        "confidence": inc.confidence, "confidence_reasons": list(inc.confidence_reasons),
        "hosts": list(inc.hosts), "accounts": list(inc.accounts), "alert_count": inc.alert_count,
        "story": [_claim(index, s.text, s.evidence) for s in inc.story],
        "stages": [{"name": s.name, "words": STAGE_WORDS.get(s.name, s.name), "tactic": s.tactic,
                    "techniques": ", ".join(s.techniques), "first": when(s.first_ts_ns), "last": when(s.last_ts_ns),
                    "summary": s.summary, "cite": index.cite(s.evidence)} for s in inc.stages],
        "exfiltration": [{"host": x.host, "destination": x.destination, "bytes": nbytes(x.bytes),
                          "channel": x.channel, "encrypted": x.encrypted, "files": ", ".join(x.files),
                          "first": when(x.first_ts_ns), "last": when(x.last_ts_ns), "cite": index.cite(x.evidence)}
                         for x in inc.exfiltration],
    }


def _rest(incidents: list[Incident]) -> dict[str, Any] | None:
    if not incidents:
        return None
    by_title = Counter(i.title for i in incidents)
    return {"count": len(incidents), "alerts": sum(i.alert_count for i in incidents),
            "first": when(min(i.first_ts_ns for i in incidents)), "last": when(max(i.last_ts_ns for i in incidents)),
            "by_title": by_title.most_common(20), "ids": [i.id for i in incidents[:200]]}


def _account_view(a: Account, index: EvidenceIndex) -> dict[str, Any]:
    flags = [f for f, on in (("administrator", a.admin), ("password sent in clear text", a.exposed),
                             ("guessed by brute force", a.brute_forced), ("used by the attacker", a.used_by_attacker))
             if on]
    return {"name": a.name, "admin": a.admin, "flags": flags, "protocols": ", ".join(a.protocols),
            "used_from": ", ".join(a.used_from), "used_on": ", ".join(a.used_on), "first": when(a.first_ts_ns),
            "last": when(a.last_ts_ns), "reasons": list(a.reasons) or flags, "incidents": list(a.incidents),
            "successes": a.successes, "failures": a.failures, "cite": index.cite(a.evidence)}


def _data_view(story: Story, index: EvidenceIndex) -> dict[str, Any]:
    rows = []
    for d in sorted(story.data_at_risk, key=lambda d: (not d.left_network, d.first_ts_ns)):
        amount = nbytes(d.count) if d.kind == "encrypted" else f"{d.count:,}"
        rows.append({"kind": d.kind, "words": DATA_WORDS.get(d.kind, d.kind), "count": d.count, "amount": amount,
                     "src": d.src, "dst": d.dst, "channel": d.channel, "first": when(d.first_ts_ns),
                     "left": d.left_network, "after_compromise": d.after_compromise,
                     "samples": ", ".join(mask_pans(s) for s in d.samples), "file": d.file or "",
                     "incident": d.incident, "cite": index.cite(d.evidence)})
    totals = Counter()
    for d in story.data_at_risk:
        if d.left_network:
            totals[d.kind] += d.count
    left = [{"kind": k, "words": DATA_WORDS.get(k, k), "count": n,
             "amount": nbytes(n) if k == "encrypted" else f"{n:,}"} for k, n in totals.most_common()]
    clear_inside = sorted({d.channel for d in story.data_at_risk if not d.left_network})
    return {"rows": rows, "left": left, "clear_inside": clear_inside}


def _notification(story: Story, incidents: list[Incident], resets: list[Account], data: dict,
                  meta: ReportMeta) -> dict[str, Any] | None:
    left = [d for d in data["left"] if d["kind"] != "encrypted"]
    if not left:
        return None
    left_rows = [d for d in story.data_at_risk if d.left_network and d.kind != "encrypted"]
    first = min(d.first_ts_ns for d in left_rows)
    last = max(d.last_ts_ns for d in left_rows)
    start = min(i.first_ts_ns for i in incidents) if incidents else first
    which = "; ".join(f"{d['words']} ({d['amount']})" for d in left)
    did = ["examined the recording of our network traffic to find out what happened",
           "disconnected the affected computers from our network [confirm before sending]",
           "blocked the addresses the attackers used [confirm before sending]"]
    if resets:
        did.append(f"changed the passwords of the {len(resets)} accounts involved [confirm before sending]")
    if any(d["kind"] == "card" for d in left):
        did.append("informed our card processor [confirm before sending]")
    did.append("reported the incident to the police [confirm before sending]")
    advice = [CUSTOMER_ADVICE[d["kind"]] for d in left if d["kind"] in CUSTOMER_ADVICE]
    outsider = any(not i.insider for i in incidents) or not incidents
    period = f"On {when(first)}" if first == last else f"Between {when(first)} and {when(last)}"
    company = meta.company or "[your company]"
    happened = (f"On {when(start)} an outsider broke into {company}'s computer network." if outsider else
                f"On {when(start)} someone using a computer inside {company}'s network reached data they should not have.")
    return {"company": company, "happened": happened, "period": period, "which": which, "did": did, "advice": advice}


def _timeline_view(timeline: list[TimelineEvent], index: EvidenceIndex) -> dict[str, Any]:
    notable = sorted(timeline, key=lambda e: (e.severity is None, e.severity or 9, e.incident is None, e.ts_ns))
    shown = sorted(notable[:TIMELINE_ROWS], key=lambda e: e.ts_ns)
    rest = notable[TIMELINE_ROWS:]
    rows = [{"time": when(e.ts_ns), "kind": e.kind, "src": e.src or "", "dst": e.dst or "",
             "description": e.description + (f" ({e.count} like this, last {when(e.last_ts_ns)})" if e.count > 1 else ""),
             "severity": e.severity, "technique": e.technique or "", "incident": e.incident or "",
             "cite": index.cite((e.evidence,) if e.evidence else ())} for e in shown]
    return {"rows": rows, "more": len(rest),
            "more_kinds": ", ".join(f"{n} {k}" for k, n in Counter(e.kind for e in rest).most_common(8))}


def _evidence_view(index: EvidenceIndex) -> list[dict[str, Any]]:
    return [{"n": n, "time": rfc3339(ev.ts_ns), "kind": ev.kind, "ref": ev.ref, "uid": ev.uid or "",
             "community_id": ev.community_id or "", "capture": ev.capture or "", "sha256": ev.capture_sha256 or ""}
            for n, ev in enumerate(index.items, 1)]


def build_view(story: Story, timeline: list[TimelineEvent], meta: ReportMeta) -> dict[str, Any]:
    """Everything the templates show, as plain dicts and strings (no Story objects)."""
    index = EvidenceIndex()
    incidents = list(story.incidents)
    resets = [a for a in story.accounts if a.reset]
    resets.sort(key=lambda a: (not a.admin, a.first_ts_ns))
    view: dict[str, Any] = {
        "title": "What happened on your network",
        "span": {"first": when(story.first_ts_ns), "last": when(story.last_ts_ns)},
        "meta": {"version": meta.version, "generated": when(meta.generated_ns), "database": meta.database,
                 "since": when(meta.since_ns) if meta.since_ns else None,
                 "until": when(meta.until_ns) if meta.until_ns else None,
                 "chain_check": meta.chain_check, "chain_ok": meta.chain_ok, "commands": list(meta.commands)},
        "notes": list(story.notes),
    }
    if incidents:
        view["summary"] = _summary(story, incidents, index)
    else:
        view["summary"] = None
    view["actions"] = _actions(story, incidents, resets, index)
    view["way_in"] = [_claim(index, f"{inc.id}: they {STAGE_WORDS.get(st.name, st.name)} - {st.summary}",
                             st.evidence, inc.id)
                      for inc in incidents[:3] for st in inc.stages]
    view["incidents"] = [_incident_view(i, index) for i in incidents[:TOP_INCIDENTS]]
    view["rest"] = _rest(incidents[TOP_INCIDENTS:])
    view["accounts"] = [_account_view(a, index) for a in resets]
    view["accounts_other"] = len(story.accounts) - len(resets)
    view["data"] = _data_view(story, index)
    view["notification"] = _notification(story, incidents, resets, view["data"], meta)
    view["timeline"] = _timeline_view(timeline, index)
    view["captures"] = [{"path": c.path, "sha256": c.sha256 or "(not hashed)", "first": when(c.first_ts_ns),
                         "last": when(c.last_ts_ns), "first_rfc": rfc3339(c.first_ts_ns),
                         "last_rfc": rfc3339(c.last_ts_ns), "packets": c.packets, "sealed": c.sealed}
                        for c in story.captures]
    view["evidence"] = _evidence_view(index)
    view["stage_order"] = [s for s in STAGE_ORDER]
    return view


def is_empty(story: Story) -> bool:
    """Nothing to tell: no incident, no account to reset and no data at risk."""
    return not story.incidents and not any(a.reset for a in story.accounts) and not story.data_at_risk

