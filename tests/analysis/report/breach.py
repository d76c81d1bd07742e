"""A hand-built breach story: the facts a shop's report must tell, written out so a reader sees them.

The shop: a web shop and till server (192.168.1.20), a file server (192.168.1.10), an office PC
(192.168.1.30). An outsider (203.0.113.66) scans the shop server, guesses the FTP password of
``shopftp``, exploits the web application, downloads a tool, sniffs the administrator's clear-text
FTP password and reuses it for SSH onto the file server, calls back to 198.51.100.23
(update-check.example.net) every minute and posts a file holding 3 card numbers there, and tunnels
data over DNS. Separately, the office PC sweeps the network and copies the file server's share.
"""

from __future__ import annotations

from analysis.report.meta import ReportMeta
from analysis.story.model import (
    Account,
    Actor,
    CaptureInfo,
    DataFinding,
    Evidence,
    Exfiltration,
    Incident,
    Sentence,
    Stage,
    Story,
    TimelineEvent,
)

T0 = 1_780_000_000_000_000_000  # 2026-05-28T20:26:40Z
S = 1_000_000_000
CAP = "captures/demo-breach.pcap"
SHA = "3b0c4f0e9d2a1f6b8e7c5d4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
TOOL_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ATTACKER, C2, SHOP, FILES, OFFICE = "203.0.113.66", "198.51.100.23", "192.168.1.20", "192.168.1.10", "192.168.1.30"
CARDS = ("4111111111111111", "5555555555554444", "378282246310005")  # test numbers (Luhn-valid)


def ev(kind: str, t: int, ref: str, uid: str | None = None) -> Evidence:
    return Evidence(kind=kind, ts_ns=T0 + t * S, ref=ref, uid=uid, community_id=f"1:{ref[:6]}community=",
                    capture=CAP, capture_sha256=SHA)


def stage(name, tactic, techniques, t1, t2, summary, *evs) -> Stage:
    return Stage(name=name, tactic=tactic, techniques=techniques, first_ts_ns=T0 + t1 * S, last_ts_ns=T0 + t2 * S,
                 summary=summary, evidence=evs)


def breach_story(*, ongoing: bool = True) -> Story:
    scan = ev("alert", 0, "1", "Cscan0001")
    brute = ev("alert", 60, "2", "Cftp00001")
    exploit = ev("http", 200, "http-7", "Cweb00001")
    tool = ev("file", 230, TOOL_SHA, "Cweb00002")
    admin_pw = ev("credential", 300, "cred-3", "Cftp00009")
    ssh = ev("alert", 360, "4", "Cssh00001")
    beacon = ev("alert", 1500, "5", "Cbeacon01")
    post = ev("http", 1800, "http-12", "Cpost0001")
    dns = ev("alert", 1900, "6", "Cdns00001")
    sweep = ev("alert", 2400, "7", "Csweep001")
    smb = ev("smb", 2500, "smb-40", "Csmb00001")
    outsider = Incident(
        id="INC-3f2a9c", title="Break-in to the shop server from 203.0.113.66, card numbers taken", severity=1,
        first_ts_ns=T0, last_ts_ns=T0 + 1900 * S, ongoing=ongoing, insider=False,
        attackers=(Actor(ATTACKER, False), Actor(C2, False, ("update-check.example.net",))),
        victims=(SHOP, FILES), compromised=(SHOP, FILES), patient_zero=SHOP,
        patient_zero_reason="first host the attacker logged in to (FTP brute force succeeded)",
        stages=(
            stage("reconnaissance", "TA0043 Reconnaissance", ("T1046 Network Service Discovery",), 0, 20,
                  "203.0.113.66 tried 1,000 ports of the shop server", scan),
            stage("initial-access", "TA0001 Initial Access", ("T1190 Exploit Public-Facing Application",), 200, 200,
                  "a request exploiting the shop's web application was answered", exploit),
            stage("execution", "TA0002 Execution", ("T1105 Ingress Tool Transfer",), 230, 230,
                  "a Linux program (ELF) was downloaded to the shop server", tool),
            stage("credential-access", "TA0006 Credential Access", ("T1110 Brute Force", "T1040 Network Sniffing"),
                  60, 300, "the FTP password of shopftp was guessed; the admin password was read off the network",
                  brute, admin_pw),
            stage("lateral-movement", "TA0008 Lateral Movement", ("T1021.004 Remote Services: SSH",), 360, 360,
                  "the shop server logged in to the file server over SSH as admin", ssh),
            stage("command-and-control", "TA0011 Command and Control", ("T1071 Application Layer Protocol",),
                  400, 1500, "the shop server called 198.51.100.23 every 60 seconds", beacon),
            stage("exfiltration", "TA0010 Exfiltration",
                  ("T1048 Exfiltration Over Alternative Protocol", "T1071.004 Application Layer Protocol - DNS"),
                  1800, 1900, "a file with card numbers was posted out; data was sent in DNS queries", post, dns),
        ),
        accounts=("admin", "shopftp"),
        exfiltration=(
            Exfiltration(SHOP, C2, 48_213, T0 + 1800 * S, T0 + 1800 * S, False, "http", ("cards.csv",), (post,)),
            Exfiltration(SHOP, "t.exfil-example.net", 21_900, T0 + 1900 * S, T0 + 1950 * S, False, "dns", (), (dns,)),
        ),
        hosts=(ATTACKER, SHOP, FILES, C2), confidence="high",
        confidence_reasons=("scan, brute force and login from the same address", "callback to a new address"),
        story=(
            Sentence("203.0.113.66 scanned the shop server (192.168.1.20).", (scan,)),
            Sentence("It guessed the FTP password of shopftp after 700 tries.", (brute,)),
            Sentence("It exploited the shop's web application and downloaded a tool.", (exploit, tool)),
            Sentence("It read the administrator's password (admin) off an FTP login in clear text.", (admin_pw,)),
            Sentence("It used that password to log in to the file server over SSH.", (ssh,)),
            # a card number written whole by mistake: the report must mask it
            Sentence(f"It posted cards.csv (first line {CARDS[0]}) to 198.51.100.23.", (post,)),
        ),
        alert_count=9,
    )
    insider = Incident(
        id="INC-77b01e", title="Office PC 192.168.1.30 copied the file server's share", severity=2,
        first_ts_ns=T0 + 2400 * S, last_ts_ns=T0 + 2600 * S, ongoing=False, insider=True,
        attackers=(Actor(OFFICE, True, ("office-pc",)),), victims=(FILES,), compromised=(OFFICE,), patient_zero=None, patient_zero_reason=None,
        stages=(
            stage("discovery", "TA0007 Discovery", ("T1018 Remote System Discovery",), 2400, 2410,
                  "the office PC tried 40 addresses on port 445", sweep),
            stage("collection", "TA0009 Collection", ("T1039 Data from Network Shared Drive",), 2500, 2600,
                  "the office PC read 212 files from the share \\\\files\\accounts", smb),
        ),
        accounts=("alice",), exfiltration=(), hosts=(OFFICE, FILES), confidence="medium",
        confidence_reasons=("far more files than the PC's own baseline",),
        story=(Sentence("The office PC swept the network for file shares.", (sweep,)),
               Sentence("It then copied 212 files from the accounts share.", (smb,))),
        alert_count=2,
    )
    accounts = (
        Account("admin", ("FTP", "SSH"), (SHOP, OFFICE), (FILES,), T0 + 300 * S, T0 + 360 * S, exposed=True,
                brute_forced=False, used_by_attacker=True, admin=True, successes=2,
                reasons=("administrator", "password sent in clear text over FTP", "used by the attacker for SSH"),
                incidents=("INC-3f2a9c",), evidence=(admin_pw, ssh)),
        Account("shopftp", ("FTP",), (ATTACKER,), (SHOP,), T0 + 60 * S, T0 + 190 * S, exposed=True, brute_forced=True,
                used_by_attacker=True, admin=False, successes=1, failures=700,
                reasons=("guessed by brute force after 700 tries",), incidents=("INC-3f2a9c",), evidence=(brute,)),
        Account("alice", ("SMB",), (OFFICE,), (FILES,), T0 + 2500 * S, T0 + 2600 * S, exposed=False,
                brute_forced=False, used_by_attacker=False, admin=False, successes=1, evidence=(smb,)),
    )
    data = (
        DataFinding("card", 3, SHOP, C2, "http", T0 + 1800 * S, T0 + 1800 * S, True, True,
                    samples=("4111 **** **** 1111", "5555 **** **** 4444"), file="cards.csv",
                    incident="INC-3f2a9c", evidence=(post,)),
        DataFinding("email", 120, SHOP, C2, "http", T0 + 1800 * S, T0 + 1800 * S, True, True, file="cards.csv",
                    incident="INC-3f2a9c", evidence=(post,)),
        DataFinding("email", 40, OFFICE, FILES, "smb", T0 + 2500 * S, T0 + 2600 * S, False, False,
                    incident="INC-77b01e", evidence=(smb,)),
    )
    return Story(first_ts_ns=T0 - 60 * S, last_ts_ns=T0 + 2000 * S if ongoing else T0 + 9000 * S,
                 incidents=(outsider, insider), accounts=accounts, data_at_risk=data,
                 captures=(CaptureInfo(CAP, SHA, T0 - 60 * S, T0 + 2700 * S, 6_412, False),),
                 local_nets=("192.168.1.0/24",),
                 notes=("412 packets of encrypted traffic (TLS) could not be looked into.",))


def breach_timeline() -> list[TimelineEvent]:
    s = breach_story()
    rows = []
    for inc in s.incidents:
        src = inc.attackers[0].address
        for st in inc.stages:
            for e in st.evidence:
                dst = inc.patient_zero or inc.victims[0]
                if st.name == "lateral-movement":
                    src, dst = SHOP, FILES
                elif st.name in ("command-and-control", "exfiltration"):
                    src, dst = SHOP, C2
                rows.append(TimelineEvent(e.ts_ns, e.kind, src, dst, st.summary, severity=inc.severity,
                                          tactic=st.tactic, technique=st.techniques[0], incident=inc.id, evidence=e))
    rows.append(TimelineEvent(T0 + 30 * S, "dns", OFFICE, "192.168.1.1", "DNS queries for routine names",
                              count=312, last_ts_ns=T0 + 2700 * S))
    return sorted(rows, key=lambda e: e.ts_ns)


def meta(**kw) -> ReportMeta:
    base = dict(version="0.1.0", generated_ns=T0 + 10_000 * S, database="demo-out/wiretrail.db",
                chain_check="0 sealed file record(s) in the chain, 0 file(s) re-hashed (replayed captures "
                            "are not sealed)", chain_ok=None,
                commands=("wiretrail replay --db demo-out/wiretrail.db captures/demo-breach.pcap",
                          "wiretrail report --db demo-out/wiretrail.db --out report.html"),
                company="Corner Shop Ltd")
    base.update(kw)
    return ReportMeta(**base)
