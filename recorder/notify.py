"""Notifications: alerts told to the owner by e-mail (SMTP) and webhooks, from a queue in the store.

Every new alert is queued once per channel whose minimum severity it reaches (``notify_queue``,
so a restart or a mail server that is down loses nothing). A channel's :class:`Notifier` thread
sends what waits as one message once the oldest waiting alert is ``notify_aggregate`` old (a
brute force of 700 attempts is one line with its count, not 700 messages), at most
``notify_rate_limit`` messages an hour, and after a failure retries with a doubling back-off
(5 s up to 10 min) while the rows stay queued. Capture never waits on it: the notifier is a thread
of its own with its own database connection, and a send that hangs times out.

Delivery is at least once: a crash between a server's "accepted" and the queue's update repeats
that one message after the restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from recorder.core.config import Config

log = logging.getLogger("wiretrail-recorder")
NS = 1_000_000_000
SEND_TIMEOUT = 15.0
BACKOFF_FIRST, BACKOFF_MAX = 5, 600  # seconds
SEVERITY_NAMES = {1: "high", 2: "medium", 3: "low"}  # an alert's severity (Suricata's priority) in words


def severity_name(severity: int) -> str:
    """The word for an alert's severity (1 high, 2 medium, 3 low), else the number as text."""
    return SEVERITY_NAMES.get(severity, str(severity))


# What the owner should do now, by behaviour rule kind (signatures: by severity, below).
ADVICE = {
    "port_scan": "Someone is mapping which services the target machine offers. If the source is not "
                 "your own IT, block it at the firewall and check that only needed ports are open.",
    "host_sweep": "A machine is looking for other machines on your network. If it is one of yours, it may "
                  "be infected: take it off the network and have it checked.",
    "brute_force": "Someone is guessing passwords. Block the source at the firewall, and change the "
                   "password of the account at once if a login succeeded.",
    "cleartext_credentials": "A password crossed the network unencrypted: change it, and move the service "
                             "to an encrypted form (SFTP, HTTPS, IMAPS).",
    "cleartext_admin": "An administrator logged in unencrypted: change that password and switch to SSH.",
    "callback": "A machine of yours connected back to an attacker: disconnect it from the network now.",
    "bind_shell": "A machine of yours opened a listening port after an attack: disconnect it now.",
    "executable_download": "A program was downloaded after an attack: disconnect the machine and have it checked.",
    "beaconing": "A machine calls the same outside address at regular intervals, as remote-control "
                 "malware does: find which program on it does so, or disconnect it.",
    "exfiltration": "A large amount of data left the network: find out what it was and who sent it.",
    "dns_tunnelling": "Data may be leaving hidden in DNS lookups: disconnect the machine and have it checked.",
    "lateral_movement": "An attacker may be moving from machine to machine: disconnect the machines named.",
}
_SIGNATURE_ADVICE = {
    1: "Treat this as an attack in progress: disconnect the machine on your side and call your IT support.",
    2: "Have a look at the evidence today; disconnect the machine if you do not recognise the traffic.",
    3: "No action needed now; worth a look when you review the day.",
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One destination: ``name`` keys its queue rows, ``label`` is safe to print (no secret)."""

    name: str
    kind: str  # smtp | webhook
    url: str
    label: str


def channels(config: Config) -> list[Channel]:
    out = []
    if config.notify_smtp_url and config.notify_to:
        p = urlsplit(config.notify_smtp_url)
        out.append(Channel("smtp", "smtp", config.notify_smtp_url,
                           f"e-mail to {', '.join(config.notify_to)} via {p.hostname}:{p.port or _smtp_port(p.scheme)}"))
    for url in config.notify_webhook:
        p = urlsplit(url)
        out.append(Channel("webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16], "webhook", url,
                           f"webhook {p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}/..."))
    return out


def _smtp_port(scheme: str) -> int:
    return {"smtps": 465, "smtp+starttls": 587}.get(scheme, 25)


# --- the message ----------------------------------------------------------------------------------

def alert_brief(row: dict, sensor: str) -> dict:
    """The fields of an alert row a message needs (what the queue keeps)."""
    eve = row.get("eve") if isinstance(row.get("eve"), dict) else json.loads(row.get("eve") or "{}")
    kinds = (eve.get("alert", {}).get("metadata", {}) or {}).get("wiretrail_behaviour") or [None]
    keys = ("ts_ns", "signature_id", "signature", "severity", "src_ip", "src_port", "dest_ip", "dest_port",
            "proto", "app_proto", "kind", "tactic", "technique", "uid")
    return {**{k: row.get(k) for k in keys}, "rule_kind": kinds[0], "sensor": sensor}


def _when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _since_arg(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // NS - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose(alerts: list[dict], db: str) -> tuple[str, str]:
    """Subject and plain-text body: one entry per finding (rule, source, target), with its count."""
    groups: dict[tuple, list[dict]] = {}
    for a in sorted(alerts, key=lambda a: (a["severity"], a["ts_ns"])):
        groups.setdefault((a["signature_id"], a["src_ip"], a["dest_ip"]), []).append(a)
    sensor = alerts[0]["sensor"]
    names = [g[0]["signature"].split(":", 1)[0] + (f" (x{len(g)})" if len(g) > 1 else "") for g in groups.values()]
    subject = f"[wiretrail {sensor}] {len(groups)} finding{'s' if len(groups) > 1 else ''}: {', '.join(names)}"
    if len(subject) > 150:
        subject = subject[:147] + "..."
    lines = [f"The Wiretrail sensor {sensor!r} saw traffic that needs your attention.", ""]
    for n, g in enumerate(groups.values(), 1):
        a = g[0]
        target = a["dest_ip"] + (f" port {a['dest_port']}" if a.get("dest_port") else "")
        times = _when(a["ts_ns"]) + (f", {len(g)} times until {_when(g[-1]['ts_ns'])}" if len(g) > 1 else "")
        if a["kind"] == "behaviour":
            sure = ("a pattern over many connections (behaviour rule "
                    f"{a['signature_id']}): likely, though a busy legitimate machine can look alike")
        else:
            sure = (f"a known attack signature matched the traffic (sid {a['signature_id']}): strong, "
                    "unless this rule is known to be noisy on your network")
        advice = ADVICE.get(a.get("rule_kind") or "", _SIGNATURE_ADVICE.get(a["severity"], _SIGNATURE_ADVICE[2]))
        lines += [f"{n}. {a['signature']}",
                  f"   When:        {times}",
                  f"   Machines:    from {a['src_ip']} to {target}" + (f" ({a['app_proto']})" if a.get("app_proto") else ""),
                  f"   Severity:    {severity_name(a['severity'])}"
                  + (f"; {a['tactic']}" if a.get("tactic") else ""),
                  f"   How sure:    {sure}",
                  f"   What to do:  {advice}",
                  f"   Evidence:    wiretrail alerts --db {db} --host {a['src_ip']} --since {_since_arg(a['ts_ns'])}",
                  ""]
    lines.append("This message was sent by wiretrail-recorder; `wiretrail alerts --follow` shows alerts as they arrive.")
    return subject, "\n".join(lines) + "\n"


# --- sending ---------------------------------------------------------------------------------------

def send_smtp(url: str, sender: str, to: tuple[str, ...], subject: str, body: str,
              timeout: float = SEND_TIMEOUT) -> None:
    """One message over SMTP: ``smtps://`` (TLS), ``smtp+starttls://`` or ``smtp://``, with the
    URL's user and password (percent-encoded) when given. Raises OSError / smtplib errors."""
    p = urlsplit(url)
    host, port = p.hostname or "", p.port or _smtp_port(p.scheme)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=False, usegmt=True), make_msgid(domain="wiretrail")
    msg.set_content(body)
    context = ssl.create_default_context()
    if p.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo()
        if p.scheme == "smtp+starttls":
            client.starttls(context=context)
            client.ehlo()
        if p.username:
            client.login(unquote(p.username), unquote(p.password or ""))
        client.send_message(msg)


def send_webhook(url: str, fmt: str, subject: str, body: str, alerts: list[dict],
                 timeout: float = SEND_TIMEOUT) -> None:
    """POST the message: ``json`` {"subject", "text", "alerts": [...]} or ``text`` {"text": ...}
    (what Slack, Mattermost and Teams incoming webhooks accept). Raises on an HTTP error."""
    payload = ({"text": f"{subject}\n\n{body}"} if fmt == "text"
               else {"subject": subject, "text": body, "alerts": alerts})
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "wiretrail-recorder"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the configured http(s) URL
        resp.read()


def default_sender() -> str:
    return f"wiretrail@{socket.gethostname()}"


def deliver(config: Config, channel: Channel, subject: str, body: str, alerts: list[dict]) -> None:
    if channel.kind == "smtp":
        send_smtp(channel.url, config.notify_from or default_sender(), config.notify_to, subject, body)
    else:
        send_webhook(channel.url, config.notify_webhook_format, subject, body, alerts)


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def test_channels(config: Config, sensor: str) -> list[tuple[Channel, str | None]]:
    """Send one test message through every channel now: (channel, None) or (channel, why it failed)."""
    subject = f"[wiretrail {sensor}] test message"
    body = (f"This is a test of the Wiretrail sensor {sensor!r}'s notifications, sent by "
            "`wiretrail-recorder test-notify`. Alerts will arrive the same way.\n")
    out: list[tuple[Channel, str | None]] = []
    for ch in channels(config):
        try:
            deliver(config, ch, subject, body, [])
            out.append((ch, None))
        except Exception as err:  # noqa: BLE001 - reported per channel
            out.append((ch, _reason(err)))
    return out


# --- the queue and its thread ------------------------------------------------------------------------

class Notifier:
    """Queues alerts (``submit``) and sends them from a thread of its own (``start``/``stop``)."""

    def __init__(self, config: Config, store, sensor: str, *, poll: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.store, self.sensor, self.poll, self.clock = config, store, sensor, poll, clock
        self.channels = channels(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="notifier", daemon=True)
        self.sent = 0  # messages delivered since start
        self._digest_retry: dict[str, float] = {}  # channel -> when to try a failed digest again

    def submit(self, rows: list[dict]) -> int:
        """Queue new alert rows for every channel they reach; returns how many queue rows."""
        briefs = [alert_brief(r, self.sensor) for r in rows if r["severity"] <= self.config.notify_min_severity]
        return self.store.queue_notifications([(ch.name, b) for ch in self.channels for b in briefs],
                                              int(self.clock() * NS))

    def start(self) -> None:
        if self.channels:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _serve(self) -> None:
        while not self._stop.wait(self.poll):
            for ch in self.channels:
                try:
                    self.flush(ch)
                    if self.config.notify_digest:
                        self.digest(ch)
                except Exception as err:  # noqa: BLE001 - the database may be busy; next round
                    log.warning("notify %s: %s", ch.label, _reason(err))

    def flush(self, ch: Channel, *, force: bool = False) -> int:
        """Send the channel's waiting alerts as one message when due; returns how many were sent."""
        pending = self.store.pending_notifications(ch.name)
        now = self.clock()
        now_ns = int(now * NS)
        if not pending:
            return 0
        if not force:
            if max(p["next_try_ns"] for p in pending) > now_ns:
                return 0  # backing off after a failure
            if now_ns - pending[0]["queued_ns"] < self.config.notify_aggregate * NS:
                return 0  # still gathering
            if self.store.messages_sent(ch.name, now_ns - 3600 * NS) >= self.config.notify_rate_limit:
                return 0
        alerts = [p["alert"] for p in pending]
        subject, body = compose(alerts, self.config.db)
        ids = [p["id"] for p in pending]
        try:
            deliver(self.config, ch, subject, body, alerts)
        except Exception as err:  # noqa: BLE001 - kept queued, retried with back-off
            attempts = max(p["attempts"] for p in pending) + 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempts - 1))
            self.store.mark_notify_failed(ids, now_ns + delay * NS, _reason(err))
            log.warning("notify %s failed (attempt %d, %d alerts kept queued, next try in %ds): %s",
                        ch.label, attempts, len(ids), delay, _reason(err))
            return 0
        self.store.mark_notified(ids, now_ns)
        self.sent += 1
        log.info("notify %s: sent %d alerts in one message", ch.label, len(ids))
        return len(ids)

    def digest(self, ch: Channel) -> bool:
        """Send the day's digest through ``ch`` once it is ``notify_digest`` (UTC) and it was not
        sent yet today (the store remembers, across restarts); True when sent now."""
        now = self.clock()
        hh, mm = map(int, self.config.notify_digest.split(":"))
        today = datetime.fromtimestamp(now, UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
        due_ns, now_ns = int(today.timestamp()) * NS, int(now * NS)
        marker = "digest:" + ch.name
        if now_ns < due_ns or now < self._digest_retry.get(ch.name, 0) or self.store.messages_sent(marker, due_ns):
            return False
        rows = list(self.store.query_alerts(since=now_ns - 86400 * NS))
        subject, body = compose_digest([alert_brief(r, self.sensor) for r in rows], self.sensor, self.config.db)
        try:
            deliver(self.config, ch, subject, body, [])
        except Exception as err:  # noqa: BLE001 - tried again in 5 minutes
            self._digest_retry[ch.name] = now + 300
            log.warning("notify %s: daily digest not sent, next try in 300s: %s", ch.label, _reason(err))
            return False
        self.store.record_sent(marker, {"digest": today.date().isoformat(), "alerts": len(rows)}, now_ns)
        log.info("notify %s: daily digest sent (%d alerts)", ch.label, len(rows))
        return True


def compose_digest(alerts: list[dict], sensor: str, db: str) -> tuple[str, str]:
    """The daily digest: the last 24 hours' findings, or a line saying there were none."""
    if not alerts:
        return (f"[wiretrail {sensor}] daily digest: no alerts",
                f"The Wiretrail sensor {sensor!r} is running and raised no alert in the last 24 hours.\n")
    subject, body = compose(alerts, db)
    findings = subject.split("] ", 1)[1]
    count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    return (f"[wiretrail {sensor}] daily digest: {count}, {findings}"[:150],
            f"The last 24 hours on the sensor {sensor!r}: {count}.\n\n" + body.split("\n\n", 1)[1])
