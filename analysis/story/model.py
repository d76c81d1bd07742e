"""The breach story's facts: what the timeline, incidents, accounts and data-at-risk findings are.

These value objects are the contract between the code that finds the story (``analysis.story``)
and everything that tells it (``wiretrail timeline``/``incidents``/``incident``/``accounts``, the
owner's report in ``analysis.report``, STIX and ATT&CK exports). Every claim carries its
``Evidence``: where in the store and in which capture it can be checked.

Times are nanoseconds since the epoch, UTC (as in the store). ``to_dict`` gives plain JSON-able
dicts (times as RFC 3339 strings with ``Z`` beside the integers), the ``--format json`` facts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# ATT&CK tactics in the order a breach unfolds; stages are sorted by this order, then by time.
STAGE_ORDER: tuple[str, ...] = (
    "reconnaissance",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)


def rfc3339(ts_ns: int | None) -> str | None:
    """Nanoseconds since the epoch as RFC 3339 UTC with ``Z`` (microseconds), None for None."""
    if ts_ns is None:
        return None
    dt = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a claim can be checked: a stored alert, flow or protocol record, and its capture."""

    kind: str  # alert | flow | dns | http | tls | ssh | ftp | smtp | smb | kerberos | credential | file | log
    ts_ns: int
    ref: str  # the alert id, flow uid, record id or log event id, as text
    uid: str | None = None  # the flow's uid (joins conn.log and every protocol log)
    community_id: str | None = None
    capture: str | None = None  # capture file path
    capture_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = rfc3339(self.ts_ns)
        return d


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One row of the timeline; ``count`` > 1 when it stands for N routine rows collapsed into it."""

    ts_ns: int
    kind: str  # alert | flow | dns | http | tls | ssh | ftp | smtp | pop3 | imap | smb | kerberos | credential | file | log
    src: str | None
    dst: str | None
    description: str  # one line a person can read
    severity: int | None = None  # 1 (highest) to 3, None for routine records
    tactic: str | None = None  # ATT&CK tactic, e.g. "TA0001 Initial Access"
    technique: str | None = None  # ATT&CK technique, e.g. "T1110 Brute Force"
    incident: str | None = None  # the incident id this row belongs to
    count: int = 1
    last_ts_ns: int | None = None  # for collapsed rows: the last of the N
    evidence: Evidence | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = rfc3339(self.ts_ns)
        d["last_time"] = rfc3339(self.last_ts_ns)
        d["evidence"] = self.evidence.to_dict() if self.evidence else None
        return d


@dataclass(frozen=True, slots=True)
class Actor:
    """An address acting in an incident; ``internal`` when it is a local host (an insider)."""

    address: str
    internal: bool
    names: tuple[str, ...] = ()  # host names seen for it (DNS, DHCP, NetBIOS, SNI)


@dataclass(frozen=True, slots=True)
class Stage:
    """One ATT&CK stage of an incident, with its first and last time and the evidence for it."""

    name: str  # one of STAGE_ORDER
    tactic: str  # e.g. "TA0006 Credential Access"
    techniques: tuple[str, ...]  # e.g. ("T1110 Brute Force",)
    first_ts_ns: int
    last_ts_ns: int
    summary: str  # a plain sentence
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of an incident's story and the evidence it rests on."""

    text: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Exfiltration:
    """Data that left a host after its compromise, per destination."""

    host: str
    destination: str
    bytes: int
    first_ts_ns: int
    last_ts_ns: int
    encrypted: bool  # True: "N bytes, content unknown (encrypted)"
    channel: str  # http, ftp, dns, tls, smb, ...
    files: tuple[str, ...] = ()  # carved files' names that left
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Incident:
    """Related events grouped by actor and target over time, told as a story."""

    id: str  # deterministic: same input, same id (e.g. "INC-3f2a9c")
    title: str
    severity: int  # 1 (highest) to 3
    first_ts_ns: int
    last_ts_ns: int
    ongoing: bool  # activity within the last part of the recorded time
    insider: bool  # the actor is a local host
    attackers: tuple[Actor, ...]
    victims: tuple[str, ...]
    patient_zero: str | None
    patient_zero_reason: str | None
    stages: tuple[Stage, ...]  # in STAGE_ORDER, then time
    accounts: tuple[str, ...]  # account names exposed or used in it
    exfiltration: tuple[Exfiltration, ...]
    hosts: tuple[str, ...]  # every host touched
    confidence: str  # high | medium | low
    confidence_reasons: tuple[str, ...]
    story: tuple[Sentence, ...]
    alert_count: int = 0
    # hosts in the actor's hands (patient zero first, then those it moved to); an insider: its own
    compromised: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Account:
    """An account seen on the network or in the logs, with why it may need a password reset."""

    name: str  # user name, with its domain/realm where known ("CORP\\alice")
    protocols: tuple[str, ...]
    used_from: tuple[str, ...]  # client addresses
    used_on: tuple[str, ...]  # server addresses
    first_ts_ns: int
    last_ts_ns: int
    exposed: bool  # its password crossed the network in clear text
    brute_forced: bool  # many failures then a success
    used_by_attacker: bool
    admin: bool
    successes: int = 0
    failures: int = 0
    reasons: tuple[str, ...] = ()  # why it is on the reset list, plain sentences
    incidents: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @property
    def reset(self) -> bool:
        return self.exposed or self.brute_forced or self.used_by_attacker


@dataclass(frozen=True, slots=True)
class DataFinding:
    """Customer-like data counted in one transfer (never the data itself: samples are masked)."""

    kind: str  # card | email | iban | ssn | db_dump | encrypted
    count: int  # items found (bytes for ``encrypted``)
    src: str
    dst: str
    channel: str  # http, ftp, smtp, dns, smb, tls, ...
    first_ts_ns: int
    last_ts_ns: int
    left_network: bool  # True: outbound to an external address; False: crossed inside in clear text
    after_compromise: bool
    samples: tuple[str, ...] = ()  # masked, e.g. "4111 **** **** 1111"
    file: str | None = None  # carved file name, when the data was in a file
    incident: str | None = None
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """A capture the story rests on (the evidence appendix)."""

    path: str
    sha256: str | None
    first_ts_ns: int | None
    last_ts_ns: int | None
    packets: int
    sealed: bool  # written by the recorder and sealed in its hash chain


@dataclass(frozen=True, slots=True)
class Story:
    """Everything the owner's report tells, found from one store (optionally one time range)."""

    first_ts_ns: int | None
    last_ts_ns: int | None
    incidents: tuple[Incident, ...]  # most severe and most confident first
    accounts: tuple[Account, ...]  # to reset first (administrators first), then the rest
    data_at_risk: tuple[DataFinding, ...]
    captures: tuple[CaptureInfo, ...]
    local_nets: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())  # limits of what was seen (drops, gaps, encrypted traffic)

    def to_dict(self) -> dict[str, Any]:
        """The facts as JSON-able dicts, times also as RFC 3339 (``--format json``)."""

        def conv(obj: Any) -> Any:
            if isinstance(obj, Evidence):
                return obj.to_dict()
            if hasattr(obj, "__dataclass_fields__"):
                out = {}
                for name in obj.__dataclass_fields__:
                    value = getattr(obj, name)
                    out[name] = conv(value)
                    if name.endswith("ts_ns"):
                        out[name[: -len("ts_ns")] + "time"] = rfc3339(value)
                return out
            if isinstance(obj, tuple | list):
                return [conv(v) for v in obj]
            return obj

        return conv(self)
