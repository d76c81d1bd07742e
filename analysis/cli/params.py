"""Command-line parameters shared by several commands: address and network checks, ``--var``
NAME=VALUE pairs, and times (RFC 3339, a date or epoch seconds)."""

from __future__ import annotations

import calendar
import ipaddress
import re
from decimal import Decimal, InvalidOperation

import click

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}:?\d{2})?)?"
)
_EPOCH = re.compile(r"\d+(?:\.\d{1,9})?")


def parse_time(text: str) -> int:
    """RFC 3339 (``Z`` or an offset; none means UTC), a date (midnight UTC) or epoch seconds -> ns."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            raise ValueError(text) from None
    m = _RFC3339.fullmatch(text)
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, tz = m.groups()
    fields = [int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0)]
    if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= calendar.monthrange(fields[0], fields[1])[1]
            and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        raise ValueError(text)
    secs = calendar.timegm((*fields, 0, 0, 0))
    if tz and tz not in "Zz":
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        secs -= sign * (hh * 3600 + mm * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


class TimeType(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_time(value)
        except ValueError:
            self.fail(f"{value!r} is not a time: use RFC 3339 (2024-05-01T12:00:00Z), a date "
                      "(2024-05-01) or epoch seconds", param, ctx)


def check_host(ctx, param, value):
    """Callback of ``--host``: an IP address or CIDR (as recorder.core.store.host_range takes it)."""
    if value is not None:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not an IP address or CIDR") from None
    return value


def check_cidr(ctx, param, values):
    """Callback of the repeatable ``--local-net``: every value an IP network (CIDR)."""
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise click.BadParameter(f"{v!r} is not an IP network (CIDR)") from None
    return list(values)


def parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    """``--var NAME=VALUE`` pairs as a mapping (usage error naming the bad one)."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        out[name.strip()] = value.strip()
    return out


def identity_option(f):
    """``--identity KEYFILE``: the age identities (age-keygen's private key file) that open
    encrypted capture files and credential secrets (``encrypt_to``). The command gets a list of
    identities or None; an unreadable or malformed file is one line, exit 1."""

    def load(ctx, param, value):
        if value is None:
            return None
        from recorder.core.agecrypt import load_identities

        return load_identities(value)

    return click.option("--identity", "identities", metavar="KEYFILE", callback=load,
                        help="age private key file (age-keygen's) to read files and secrets encrypted with "
                             "encrypt_to.")(f)
