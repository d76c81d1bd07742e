"""SASL as the mail protocols carry it (SMTP AUTH, POP3 AUTH, IMAP AUTHENTICATE): base64
responses, PLAIN's ``authzid NUL authcid NUL passwd``, LOGIN's user then password, CRAM-MD5's
``user digest``, NTLM's AUTHENTICATE message (``DOMAIN\\user``, no secret)."""

from __future__ import annotations

import binascii

from recorder.core.apps.ntlm import authenticate_user


def b64text(s: str) -> str | None:
    """Base64 to text, None when it is not base64."""
    try:
        return binascii.a2b_base64(s.strip().encode("ascii", "replace")).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def sasl_plain(s: str) -> tuple[str, str] | None:
    """AUTH PLAIN's base64 ``authzid NUL authcid NUL passwd`` -> (user, password)."""
    text = b64text(s)
    if text is None or text.count("\0") < 2:
        return None
    authz, user, password = text.split("\0", 2)
    return (user or authz), password


def sasl_response(auth: dict, value: str) -> None:
    """Take one client response of an exchange into ``auth`` (keys mech, user, secret)."""
    mech = auth["mech"]
    if mech == "PLAIN":
        pair = sasl_plain(value)
        if pair:
            auth["user"], auth["secret"] = pair
    elif mech == "LOGIN":
        text = b64text(value)
        if auth["user"] is None:
            auth["user"] = text
        else:
            auth["secret"] = text
    elif mech == "CRAM-MD5":
        text = b64text(value)
        if text:
            auth["user"] = text.rsplit(" ", 1)[0]
    elif mech == "NTLM":
        try:
            user = authenticate_user(binascii.a2b_base64(value.strip().encode("ascii", "replace")))
        except (binascii.Error, ValueError):
            user = None
        if user:
            auth["user"] = user
