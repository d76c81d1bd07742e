"""Credential secrets at rest, with the recorder's ``encrypt_to``.

Each secret the parsers hand the store (``credentials.secret``, ``http.password``,
``ftp.password``) is written encrypted for the capture files' age recipient, as an armored age
message (``-----BEGIN AGE ENCRYPTED FILE-----``; ``age -d`` opens it too), so a copy of the
database alone gives no password away. So that one password used by several accounts still
shows, ``credentials.secret_fp`` holds a keyed fingerprint: HMAC-SHA256 under a 32-byte key
that stays on the sensor (``FINGERPRINT_KEY`` in the capture directory, created owner-only on
first use), never in the database: without it a stolen database does not let anyone test
guessed passwords against the fingerprints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.core.agecrypt import fingerprint, open_secret, seal_armored
from recorder.core.errors import ConfigError
from recorder.core.secure_files import PRIVATE, create_private

SEALED_FIELDS: dict[str, tuple[str, ...]] = {"credentials": ("secret",), "http": ("password",), "ftp": ("password",)}
ARMOR = "-----BEGIN AGE ENCRYPTED FILE-----"
FINGERPRINT_KEY = ".wiretrail-fingerprint.key"  # hidden: retention, verify and ingest pass it by


@dataclass(frozen=True, slots=True)
class SecretSealer:
    recipient: Any  # pyrage.x25519.Recipient
    key: bytes  # the fingerprint key

    def seal(self, name: str, record: dict) -> dict:
        """``record`` of log ``name`` with its secret fields encrypted (and the credential's
        fingerprint set); other logs unchanged."""
        fields = SEALED_FIELDS.get(name)
        if not fields:
            return record
        record = dict(record)
        for f in fields:
            value = record.get(f)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "surrogateescape")
            if isinstance(value, str) and value:
                if name == "credentials":
                    record["secret_fp"] = fingerprint(value, self.key)
                record[f] = seal_armored(value, self.recipient)
        return record


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ARMOR)


def unseal(value: str, identities: Sequence[Any]) -> str | None:
    """The secret of an armored value, or None when none of ``identities`` opens it."""
    return open_secret(value.encode("ascii"), identities)


def load_key(path: Path) -> bytes:
    """The fingerprint key at ``path``, created (32 random bytes, owner-only) if missing. Made
    under a temporary name and linked into place, so recorder processes starting together all
    read the same whole key."""
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            with os.fdopen(create_private(tmp, PRIVATE), "wb") as f:
                f.write(os.urandom(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use that one
        except OSError as err:
            raise ConfigError(f"cannot create the credential fingerprint key: {err.strerror or err}",
                              path=str(path)) from None
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:
        key = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the credential fingerprint key: {err.strerror or err}", path=str(path)) from None
    if len(key) != 32:
        raise ConfigError("the credential fingerprint key is not 32 bytes (damaged?)", path=str(path))
    return key


def sealer_for(recipient, directory: Path) -> SecretSealer | None:
    """The recorder's sealer: None without ``encrypt_to``."""
    if recipient is None:
        return None
    return SecretSealer(recipient, load_key(Path(directory) / FINGERPRINT_KEY))

