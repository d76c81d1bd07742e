"""The messages of Linux authentication programs, read into account, source address, action and
outcome: sshd, sudo, su, useradd/usermod/groupadd/passwd/chpasswd and systemd-logind. A message
not listed here keeps its program as kind and no action."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from analysis.logs.model import address


class Parsed(NamedTuple):
    """What a program's message says (a NamedTuple, not a frozen dataclass: one is built per
    line read; ``model.LogEvent`` gives the measured reason)."""

    kind: str
    action: str | None = None
    outcome: str | None = None
    account: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    fields: Mapping[str, Any] = MappingProxyType({})


_ADDR = r"(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)(?:%\S+)?"
_PORT = r"(?: port (?P<port>\d+))?"
SSHD: tuple[tuple[re.Pattern, str, str | None], ...] = (
    (re.compile(r"^Accepted (?P<method>\S+) for (?P<user>.+?) from " + _ADDR + _PORT + r"(?: ssh2)?(?:: (?P<key>.*))?$"),
     "login", "success"),
    (re.compile(r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from " + _ADDR + _PORT
                + r"(?: ssh2)?"), "login", "failure"),
    (re.compile(r"^Invalid user (?P<user>.*?) from " + _ADDR + _PORT), "invalid user", "failure"),
    (re.compile(r"^error: maximum authentication attempts exceeded for (?P<invalid>invalid user )?(?P<user>.*?) "
                r"from " + _ADDR + _PORT), "too many authentication failures", "failure"),
    (re.compile(r"^PAM \d+ more authentication failures?;.*?rhost=(?P<ip>\S+)(?:\s+user=(?P<user>\S+))?"),
     "login", "failure"),
    (re.compile(r"^pam_unix\(sshd:auth\): authentication failure;.*?rhost=(?P<ip>\S+)(?:\s+user=(?P<user>\S+))?"),
     "login", "failure"),
    (re.compile(r"^Connection from " + _ADDR + _PORT + r" on (?P<local>\S+)(?: port (?P<lport>\d+))?"),
     "connection", None),
    (re.compile(r"^(?:Disconnected from|Connection closed by|Received disconnect from|Connection reset by)"
                r"(?: (?:invalid|authenticating) user)?(?: user)?(?: (?P<user>\S+))?? " + _ADDR + _PORT
                + r".*?(?P<preauth>\[preauth\])?$"), "disconnect", None),
    (re.compile(r"^pam_unix\(sshd:session\): session opened for user (?P<user>[^\s(]+)"), "session opened", "success"),
    (re.compile(r"^pam_unix\(sshd:session\): session closed for user (?P<user>[^\s(]+)"), "session closed", None),
)

SUDO_CMD = re.compile(r"^\s*(?P<user>\S+) : (?:(?P<problem>[^;]*?) ; )?TTY=(?P<tty>\S*) ; PWD=(?P<pwd>.*?) ; "
                      r"USER=(?P<target>\S+) ;(?: GROUP=\S+ ;)?(?: ENV=.*? ;)? COMMAND=(?P<command>.*)$")
SUDO_NOT = re.compile(r"^\s*(?P<user>\S+) : (?P<problem>user NOT in sudoers|.*incorrect password attempts?)")
PAM_AUTH_FAIL = re.compile(r"^pam_unix\((?P<svc>[\w-]+):auth\): authentication failure;.*?logname=(?P<logname>\S*)"
                           r".*?ruser=(?P<ruser>\S*).*?rhost=(?P<rhost>\S*)(?:\s+user=(?P<user>\S+))?")
PAM_SESSION = re.compile(r"^pam_unix\((?P<svc>[\w-]+):session\): session (?P<what>opened|closed) for user "
                         r"(?P<user>[^\s(]+)(?:\(uid=\d+\))?(?: by (?P<by>[^\s(]*))?")
SU_OK = re.compile(r"^(?:\+ \S+ |Successful su for (?P<target2>\S+) by (?P<by2>\S+)|\(to (?P<target>\S+)\) "
                   r"(?P<by>\S+) on (?P<tty>\S+))")
SU_FAIL = re.compile(r"^(?:FAILED su for (?P<target>\S+) by (?P<by>\S+)|FAILED SU \(to (?P<target2>\S+)\) "
                     r"(?P<by2>\S+) on (?P<tty>\S+))")
NEW_USER = re.compile(r"^new user: name=(?P<user>[^,]+), UID=(?P<uid>\d+), GID=(?P<gid>\d+), home=(?P<home>[^,]*), "
                      r"shell=(?P<shell>[^,\s]*)")
NEW_GROUP = re.compile(r"^(?:new group: name=|group added to /etc/group: name=)(?P<group>[^,]+), GID=(?P<gid>\d+)")
ADD_TO_GROUP = re.compile(r"^add '(?P<user>[^']+)' to (?:shadow )?group '(?P<group>[^']+)'")
PASSWD = re.compile(r"^(?:pam_unix\((?:passwd|chpasswd):chauthtok\): )?password changed for (?P<user>\S+)")
USERMOD_OTHER = re.compile(r"^(?:change user '(?P<user>[^']+)' (?P<what>.*)|lock user '(?P<lock>[^']+)' password)")
LOGIND_NEW = re.compile(r"^New session (?P<session>\S+) of user (?P<user>[^.\s]+)\.?")
LOGIND_END = re.compile(r"^(?:Removed session (?P<session>[^.\s]+)|Session (?P<session2>\S+) logged out)")


def _port(v: str | None) -> int | None:
    return int(v) if v and v.isdigit() and int(v) < 65536 else None


def _ip(v: str | None) -> str | None:
    if not v:
        return None
    found = address(v)
    return found[0] if found else None


# The groups ``_sshd`` reads, in this order; each pattern's ``_slots`` are their group numbers in
# it (0 where it has none: ``_sshd`` reads slot 0 as None).
_SSHD_GROUPS = ("method", "invalid", "user", "ip", "port", "key", "preauth")


def _slots(rx: re.Pattern) -> operator.itemgetter:
    return operator.itemgetter(*(rx.groupindex.get(name, 0) for name in _SSHD_GROUPS))


# First word of a message -> the SSHD patterns that can match it (each is anchored at a literal
# word), so a line is tried against one or two patterns, not all ten in turn; each with the
# getter of its groups by position (one C call per line rather than a dict of its groups).
_SSHD_BY_WORD: dict[str, tuple[tuple[re.Pattern, str, str | None, operator.itemgetter], ...]] = {
    word: tuple((*SSHD[i], _slots(SSHD[i][0])) for i in found) for word, found in (
        ("Accepted", (0,)), ("Failed", (1,)), ("Invalid", (2,)), ("error:", (3,)), ("PAM", (4,)),
        ("pam_unix(sshd:auth):", (5,)), ("Connection", (6, 7)), ("Disconnected", (7,)), ("Received", (7,)),
        ("pam_unix(sshd:session):", (8, 9)))}


def _sshd(message: str) -> Parsed:
    for rx, action, outcome, slots in _SSHD_BY_WORD.get(message.split(" ", 1)[0], ()):
        m = rx.match(message)  # every pattern starts with ^: match is search
        if m is None:
            continue
        method, invalid, user, ip, port, key, preauth = slots((None, *m.groups()))
        fields: dict[str, Any] = {"action": action}
        if outcome:
            fields["outcome"] = outcome
        if method:
            fields["auth_method"] = method
        if invalid or action == "invalid user":
            fields["invalid_user"] = True
        if preauth or message.endswith("[preauth]"):
            fields["preauth"] = True
        if key:
            fields["key"] = key
        ip, port, user = _ip(ip), _port(port), user or None
        if user:
            fields["user"] = user
        if ip:
            fields["src_ip"] = ip
        if port:
            fields["src_port"] = port
        return Parsed("sshd", action, outcome, user, ip, port, fields)
    return _SSHD_NONE


_SSHD_NONE = Parsed("sshd")


def _sudo(message: str) -> Parsed:
    m = SUDO_CMD.match(message)
    if m:
        failed = bool(m.group("problem"))
        fields = {"user": m.group("user"), "target_user": m.group("target"), "command": m.group("command"),
                  "tty": m.group("tty"), "pwd": m.group("pwd"), "action": "sudo",
                  "outcome": "failure" if failed else "success"}
        if failed:
            fields["problem"] = m.group("problem")
        return Parsed("sudo", "sudo", fields["outcome"], m.group("user"), fields=fields)
    m = SUDO_NOT.match(message)
    if m:
        fields = {"user": m.group("user"), "problem": m.group("problem"), "action": "sudo", "outcome": "failure"}
        return Parsed("sudo", "sudo", "failure", m.group("user"), fields=fields)
    return _pam("sudo", message)


def _pam(kind: str, message: str) -> Parsed:
    m = PAM_AUTH_FAIL.search(message)
    if m:
        user = m.group("user") or m.group("ruser") or m.group("logname") or None
        fields = {"action": "authentication", "outcome": "failure", "by": m.group("ruser") or m.group("logname")}
        if user:
            fields["user"] = user
        ip = _ip(m.group("rhost"))
        if ip:
            fields["src_ip"] = ip
        return Parsed(kind, "authentication", "failure", user, ip, fields=fields)
    m = PAM_SESSION.search(message)
    if m:
        action = f"session {m.group('what')}"
        fields = {"action": action, "user": m.group("user"), "target_user": m.group("user")}
        if m.group("by"):
            fields["by"] = m.group("by")
        return Parsed(kind, action, "success" if m.group("what") == "opened" else None,
                      m.group("by") or m.group("user"), fields=fields)
    return Parsed(kind)


def _su(message: str) -> Parsed:
    m = SU_FAIL.match(message)
    if m:
        target, by = m.group("target") or m.group("target2"), m.group("by") or m.group("by2")
        return Parsed("su", "su", "failure", by, fields={"action": "su", "outcome": "failure", "user": by,
                                                          "target_user": target})
    m = SU_OK.match(message)
    if m and (m.group("target") or m.group("target2")):
        target, by = m.group("target") or m.group("target2"), m.group("by") or m.group("by2")
        return Parsed("su", "su", "success", by, fields={"action": "su", "outcome": "success", "user": by,
                                                          "target_user": target})
    return _pam("su", message)


def _accounts(program: str, message: str) -> Parsed:
    m = NEW_USER.match(message)
    if m:
        fields = {"action": "account created", "outcome": "success", **m.groupdict()}
        return Parsed(program, "account created", "success", m.group("user"), fields=fields)
    m = NEW_GROUP.match(message)
    if m:
        return Parsed(program, "group created", "success", None,
                      fields={"action": "group created", "outcome": "success", **m.groupdict()})
    m = ADD_TO_GROUP.match(message)
    if m:
        return Parsed(program, "added to group", "success", m.group("user"),
                      fields={"action": "added to group", "outcome": "success", **m.groupdict()})
    m = PASSWD.search(message)
    if m:
        return Parsed(program, "password changed", "success", m.group("user"),
                      fields={"action": "password changed", "outcome": "success", "user": m.group("user")})
    m = USERMOD_OTHER.match(message)
    if m:
        user = m.group("user") or m.group("lock")
        action = "account locked" if m.group("lock") else "account changed"
        return Parsed(program, action, "success", user, fields={"action": action, "user": user,
                                                                  "change": m.group("what")})
    return _pam(program, message)


def _logind(message: str) -> Parsed:
    m = LOGIND_NEW.match(message)
    if m:
        return Parsed("systemd-logind", "session opened", "success", m.group("user"),
                      fields={"action": "session opened", "session": m.group("session"), "user": m.group("user")})
    m = LOGIND_END.match(message)
    if m:
        session = m.group("session") or m.group("session2")
        return Parsed("systemd-logind", "session closed", None, None,
                      fields={"action": "session closed", "session": session})
    return Parsed("systemd-logind")


def _pam_as(kind: str) -> Callable[[str], Parsed]:
    return lambda message: _pam(kind, message)


def _accounts_as(name: str) -> Callable[[str], Parsed]:
    return lambda message: _accounts(name, message)


# Program name -> its message's reader: one dict lookup per line rather than a chain of tests.
_BY_PROGRAM: dict[str, Callable[[str], Parsed]] = {
    "sshd": _sshd, "sshd-session": _sshd, "sudo": _sudo, "su": _su, "systemd-logind": _logind,
    **{name: _accounts_as(name) for name in ("useradd", "usermod", "groupadd", "groupmod", "passwd", "chpasswd",
                                             "userdel", "gpasswd", "adduser")},
    **{name: _pam_as(name.lower()) for name in ("login", "cron", "CRON", "systemd")},
}


def parse_message(program: str, message: str) -> Parsed:
    """The message of one program (its syslog tag, without the pid)."""
    name = program.rsplit("/", 1)[-1] if "/" in program else program
    reader = _BY_PROGRAM.get(name)
    if reader is not None:
        return reader(message)
    return Parsed(name[:16] or "syslog")
