"""Data at risk: customer-like data in the files that left the network, or crossed it in clear
text: payment cards (13-19 digits with an issuer's prefix passing the Luhn check), e-mail addresses (5 or more distinct in
one transfer), IBANs (mod-97 check), US SSN-like numbers, database dumps (SQL ``INSERT`` statements or CSV with many rows), and
lists of user names with password hashes (``password_hashes``: a table dumped through SQL
injection; those accounts are exposed, their names are the samples).
Only counts and masked samples (``4111 **** **** 1111``) leave this module, never a value.

The store keeps each transferred file's record (``files``: endpoints, hashes, the name of its
extracted copy) but not its bytes. They are read from the directory ``wiretrail ingest
--extract-files DIR`` wrote (``files_dir``), or else the captures that hold them are read again
through the same parsers into a temporary store (only files sent by a local host are wanted).
Transfers the parsers could not see into (TLS, SSH) count as "N bytes, content unknown (encrypted)".
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from analysis.story.common import Scope, carved_name
from analysis.story.model import DataFinding, Incident
from recorder.core.schema import APP_TABLES

MAX_FILE_BYTES = 50_000_000
TEXT_MIMES = ("text/", "application/json", "application/xml", "text/json", "application/x-sql")
DUMP_MIN_ROWS = 10
EMAIL_MIN = 5  # distinct addresses in one transfer: a mail's own From/To are not customer data
SAMPLES = 3

_CARD = re.compile(rb"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])")
# issuer prefixes: Visa, Mastercard (51-55, 2221-2720), Amex, Diners, JCB, Discover, UnionPay
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6(?:011|5|4[4-9]|2)")
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}")
_IBAN = re.compile(rb"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(rb"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_INSERT = re.compile(rb"\bINSERT\s+INTO\b", re.I)
# a user name next to a password hash: hex MD5/SHA-1/SHA-256, or crypt(3) ($1$, $2y$, $5$, $6$, $argon2...)
_HASH_ROW = re.compile(rb"(?m)^[\s|'\"]*([A-Za-z0-9._@-]{1,64})[\s|:,;'\"]+"
                       rb"((?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})|\$(?:1|2[abxy]?|5|6|argon2i?d?)\$[./A-Za-z0-9$=,]{8,})\b")
HASHES_MIN = 3  # user/hash rows in one response: a dumped account table


def luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def mask(kind: str, value: str) -> str:
    if kind == "card":
        return f"{value[:4]} **** **** {value[-4:]}"
    if kind == "email":
        user, _, domain = value.partition("@")
        return f"{user[:1]}***@{domain}"
    if kind == "iban":
        return f"{value[:4]} **** {value[-4:]}"
    if kind == "ssn":
        return f"***-**-{value[-4:]}"
    if kind == "password_hashes":
        return f"{value} (hash hidden)"  # the account's name: it must be reset
    return value


def scan(data: bytes) -> dict[str, tuple[int, tuple[str, ...]]]:
    """kind -> (count, masked samples) of the customer-like data in ``data``."""
    found: dict[str, list[str]] = defaultdict(list)
    for m in _CARD.finditer(data):
        digits = re.sub(rb"\D", b"", m.group()).decode()
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn(digits):
            found["card"].append(digits)
    found["email"] = [m.group().decode("ascii", "replace") for m in _EMAIL.finditer(data)]
    found["iban"] = [m.group().decode() for m in _IBAN.finditer(data) if iban_ok(m.group().decode())]
    found["ssn"] = [m.group().decode() for m in _SSN.finditer(data)]
    rows = len(_INSERT.findall(data))
    if rows < DUMP_MIN_ROWS:
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) > DUMP_MIN_ROWS:
            width = lines[0].count(b",")
            same = sum(1 for line in lines[1:] if line.count(b",") == width)
            rows = same if width >= 2 and same >= DUMP_MIN_ROWS else 0
    users = [m.group(1).decode("ascii", "replace") for m in _HASH_ROW.finditer(data)]
    if len(set(users)) >= HASHES_MIN:
        found["password_hashes"] = users
    if len(set(found["email"])) < EMAIL_MIN:
        found["email"] = []
    out = {}
    for kind, values in found.items():
        if values:
            out[kind] = (len(values), tuple(mask(kind, v) for v in dict.fromkeys(values))[:SAMPLES])
    if rows >= DUMP_MIN_ROWS:
        out["db_dump"] = (rows, ())
    return out


@dataclass(frozen=True, slots=True)
class _File:
    id: int
    ts_ns: int
    fuid: str
    uid: str | None
    capture_id: int | None
    sender: str
    receiver: str
    actor: str  # who opened the connection: the reader of a share, the uploader, the web client
    channel: str
    name: str | None
    sha256: str | None
    extracted: str | None


def _candidates(scope: Scope, conn) -> list[_File]:
    """Files sent by a local host (uploads, and what local servers served), text-like or unsniffed."""
    f = APP_TABLES["files"].c
    http = APP_TABLES["http"].c
    q = (sa.select(f.id, f.ts_ns, f.fuid, f.uid, f.capture_id, f.orig_h, f.resp_h, f.is_orig, f.source, f.mime_type,
                   f.filename, f.sha256, f.extracted, f.seen_bytes, http.uri)
         .select_from(APP_TABLES["files"].outerjoin(APP_TABLES["http"], sa.and_(
             http.uid == f.uid, sa.or_(http.orig_fuids.contains(f.fuid), http.resp_fuids.contains(f.fuid)))))
         .where(sa.func.coalesce(f.seen_bytes, 0) <= MAX_FILE_BYTES, *scope.in_range(f.ts_ns)).order_by(f.ts_ns, f.id))
    out, seen = [], set()
    for r in conn.execute(q):
        if r.id in seen:
            continue
        seen.add(r.id)
        if r.mime_type and not r.mime_type.startswith(TEXT_MIMES):
            continue
        sender, receiver = (r.orig_h, r.resp_h) if r.is_orig else (r.resp_h, r.orig_h)
        if not scope.is_local(sender):
            continue
        name = carved_name(conn, r.fuid, r.filename)
        out.append(_File(int(r.id), int(r.ts_ns), r.fuid, r.uid, r.capture_id, sender, receiver, r.orig_h,
                         (r.source or "").lower(), name, r.sha256, r.extracted))
    return out


def _bodies(scope: Scope, wanted: list[_File], files_dir: str | None,
            warn: Callable[[str], None]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    missing = []
    for w in wanted:
        if files_dir and w.extracted:
            try:
                with open(os.path.join(files_dir, w.extracted), "rb") as fh:
                    out[w.id] = fh.read()
                continue
            except OSError:
                pass
        missing.append(w)
    if not missing:
        return out
    paths = []
    for cid in sorted({w.capture_id for w in missing if w.capture_id is not None}):
        path = scope.captures.get(cid, (None, None))[0]
        if path and os.path.exists(path):
            paths.append(path)
        else:
            warn(f"{path or f'capture {cid}'}: not readable; the files it carried were not scanned")
    if not paths:
        return out
    from recorder.core.pipeline.ingest import ingest
    from recorder.core.store import Store

    with tempfile.TemporaryDirectory(prefix="wiretrail-story-") as tmp:
        extract = os.path.join(tmp, "files")
        with Store(os.path.join(tmp, "reread.db")) as again:
            again.ensure_schema()
            ingest(paths, again, local_nets=list(scope.local_nets), extract_dir=extract, on_warning=lambda _m: None)
            f = APP_TABLES["files"].c
            with again.engine.connect() as conn:
                names = {(r.fuid, r.sha256): r.extracted for r in conn.execute(
                    sa.select(f.fuid, f.sha256, f.extracted).where(f.extracted.is_not(None)))}
        by_sha = {sha: name for (_fuid, sha), name in names.items() if sha}
        by_fuid = {fuid: name for (fuid, _sha), name in names.items()}
        for w in missing:
            name = (by_sha.get(w.sha256) if w.sha256 else None) or by_fuid.get(w.fuid)
            if name:
                with open(os.path.join(extract, name), "rb") as fh:
                    out[w.id] = fh.read()
    return out


def _after(incidents: list[Incident]) -> dict[str, list[tuple[int, str]]]:
    """host -> [(compromised from, incident id)]: hosts in the attacker's hands from the incident's
    first non-reconnaissance stage (not hosts only scanned or swept), insiders from its start."""
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for inc in incidents:
        stages = [s.first_ts_ns for s in inc.stages if s.name != "reconnaissance"]
        if not stages:
            continue
        for v in inc.compromised or inc.victims:
            out[v].append((min(stages), inc.id))
        if inc.insider:
            out[inc.attackers[0].address].append((inc.first_ts_ns, inc.id))
    return out


def build_data_at_risk(scope: Scope, incidents: list[Incident], *, files_dir: str | None = None,
                       on_warning: Callable[[str], None] | None = None) -> list[DataFinding]:
    warn = on_warning or (lambda _m: None)
    with scope.store.db_errors("read files"), scope.connect() as conn:
        wanted = _candidates(scope, conn)
    bodies = _bodies(scope, wanted, files_dir, warn) if wanted else {}
    after = _after(incidents)
    out: list[DataFinding] = []
    for w in wanted:
        data = bodies.get(w.id)
        if data is None:
            continue
        hits = scan(data)
        if not hits:
            continue
        left = not scope.is_local(w.receiver)
        # the incident of who moved the data: the connection's opener (an insider reading a share
        # acts, not the file server that answered); data that left also counts for its sender
        who = (w.actor, w.sender) if left else (w.actor,)
        inc = next((i for h in who for start, i in after.get(h, ()) if w.ts_ns >= start), None)
        ev = (scope.evidence("file", w.ts_ns, w.fuid, uid=w.uid, capture_id=w.capture_id),)
        for kind, (count, samples) in sorted(hits.items()):
            out.append(DataFinding(kind=kind, count=count, src=w.sender, dst=w.receiver, channel=w.channel,
                                   first_ts_ns=w.ts_ns, last_ts_ns=w.ts_ns, left_network=left,
                                   after_compromise=inc is not None, samples=samples, file=w.name, incident=inc,
                                   evidence=ev))
    for inc in incidents:
        for e in inc.exfiltration:
            if e.encrypted:
                out.append(DataFinding(kind="encrypted", count=e.bytes, src=e.host, dst=e.destination,
                                       channel=e.channel, first_ts_ns=e.first_ts_ns, last_ts_ns=e.last_ts_ns,
                                       left_network=True, after_compromise=True, incident=inc.id, evidence=e.evidence))
    return sorted(out, key=lambda d: (not d.left_network, not d.after_compromise, d.first_ts_ns, d.kind))


def describe(d: DataFinding) -> str:
    """One plain line for a finding (``--format table`` and the story's sentences)."""
    where = "left the network" if d.left_network else "crossed the network in clear text"
    if d.kind == "encrypted":
        return f"{d.count:,} bytes from {d.src} to {d.dst}, content unknown (encrypted)"
    what = {"card": "payment card number(s)", "email": "e-mail address(es)", "iban": "IBAN(s)",
            "ssn": "US SSN-like number(s)", "db_dump": "database row(s)",
            "password_hashes": "account(s) with their password hash"}[d.kind]
    inside = f" in {d.file}" if d.file else ""
    return f"{d.count} {what}{inside} {where} ({d.src} -> {d.dst} over {d.channel or 'unknown'})"


def totals(findings: Iterable[DataFinding]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for d in findings:
        out[d.kind] += d.count
    return dict(out)
