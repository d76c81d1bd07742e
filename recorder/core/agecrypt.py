"""Encryption at rest in the ``age`` format (pyrage, the Rust implementation's binding).

The recorder seals each capture file for one X25519 recipient (``encrypt_to = "age1..."``) as
it writes it; the sensor holds only the public key, so nothing on it can read past traffic.
Debian's ``age -d -i KEYFILE`` opens the files independently.

* :class:`EncryptingFile` is a write-only file object: what is written goes through a pipe into
  a thread running ``pyrage.encrypt_io``, which writes the ciphertext, 64 KiB chunk by chunk,
  into the real file (through ``on_cipher``, so the caller hashes the bytes on disk). No
  plaintext is written to disk; at most about 200 KiB of it waits in memory (the pipe, the
  encryptor's chunk).
* :class:`DecryptingReader` reads a file's plaintext, streamed the same way, forward only
  (``seek`` skips ahead): ``age`` has no random access through pyrage, so reading a range
  decrypts the file up to it.
* :func:`decrypt_to_file` writes a file's plaintext to an owner-only file (ingest reads it).
* :func:`seal_armored` / :func:`open_secret` encrypt and decrypt short values (credential
  secrets, as armored age text); :func:`fingerprint` is the keyed HMAC that shows a reused
  password without revealing it.

Errors are one-line :class:`CaptureError`/:class:`ConfigError`/:class:`WiretrailError`.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from recorder.core.errors import CaptureError, ConfigError, WiretrailError
from recorder.core.secure_files import PRIVATE, open_private

MAGIC = b"age-encryption.org/v1\n"
SUFFIX = ".age"  # the recorder's encrypted files: <name>.pcap.age
_BLOCK = 64 << 10


def is_age(path: str | os.PathLike[str]) -> bool:
    """True if the file starts with the age header line."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def parse_recipient(text: str):
    """An ``age1...`` X25519 public key; raises ConfigError with one line otherwise."""
    import pyrage

    text = text.strip()
    if text.startswith("AGE-SECRET-KEY-"):
        raise ConfigError("this is a private key (AGE-SECRET-KEY-...); give the public key (age1...), and keep the "
                          "private key off the sensor")
    try:
        return pyrage.x25519.Recipient.from_str(text)
    except (pyrage.RecipientError, ValueError) as err:
        raise ConfigError(f"not an age X25519 public key (age1..., as age-keygen prints): {text[:24]!r}: "
                          f"{str(err).splitlines()[0] if str(err) else 'invalid'}") from None


def recipient_or_none(text: str):
    """``parse_recipient(text)``, or None for an empty setting (no encryption)."""
    return parse_recipient(text) if text else None


def load_identities(path: str) -> list[Any]:
    """The X25519 identities (``AGE-SECRET-KEY-1...`` lines) of an age-keygen key file."""
    import pyrage

    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise WiretrailError(f"cannot read the identity file: {err.strerror or err}", path=path) from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(pyrage.x25519.Identity.from_str(line))
        except (pyrage.IdentityError, ValueError):
            raise WiretrailError("not an age identity (AGE-SECRET-KEY-1..., as age-keygen writes)", path=path,
                                 line=n) from None
    if not out:
        raise WiretrailError("no age identity (AGE-SECRET-KEY-1...) in this file", path=path)
    return out


class _Tap:
    """The writer pyrage's thread writes ciphertext to: every byte to ``out`` and ``on_cipher``."""

    def __init__(self, out, on_cipher: Callable[[bytes], None] | None) -> None:
        self.out = out
        self.on_cipher = on_cipher
        self.size = 0
        self.error: OSError | None = None  # the file's own error (pyrage wraps what it raises)

    def write(self, data) -> int:
        view = memoryview(data)
        try:
            while view:
                n = self.out.write(view)
                if not n:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
        except OSError as err:
            self.error = err
            raise
        if self.on_cipher is not None:
            self.on_cipher(memoryview(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


class EncryptingFile:
    """A write-only file object whose bytes reach ``out`` encrypted for ``recipient``.

    ``write`` is unbuffered towards the encryptor (a short write is retried); ``close`` ends the
    age stream (its last chunk) and waits for it; it does not close ``out``. An error of the
    encrypting thread (a full disk) is raised by the next ``write`` or by ``close``.
    """

    def __init__(self, out, recipient, on_cipher: Callable[[bytes], None] | None = None) -> None:
        import pyrage

        self.tap = _Tap(out, on_cipher)
        rfd, wfd = os.pipe()
        self._reader = os.fdopen(rfd, "rb", buffering=0)
        self._writer = os.fdopen(wfd, "wb", buffering=0)
        self._error: BaseException | None = None

        def run() -> None:
            try:
                pyrage.encrypt_io(self._reader, self.tap, [recipient])
            except BaseException as err:  # noqa: BLE001 - handed to the writing thread
                self._error = err
            finally:
                self._reader.close()  # a writer still writing gets EPIPE instead of blocking

        self._thread = threading.Thread(target=run, name="age-encrypt", daemon=True)
        self._thread.start()

    @property
    def cipher_size(self) -> int:
        return self.tap.size

    def write(self, data) -> int:
        view = memoryview(data)
        try:
            while view:
                n = self._writer.write(view)
                view = view[n:]
        except BrokenPipeError:
            self._thread.join()
            self._raise()
            raise OSError(32, "the age encryptor stopped") from None
        return len(data)

    def _raise(self) -> None:
        if self.tap.error is not None:
            raise self.tap.error
        err = self._error
        if isinstance(err, OSError):
            raise err
        if err is not None:
            raise OSError(5, f"age encryption failed: {err}")

    def close(self) -> None:
        if not self._writer.closed:
            try:
                self._writer.close()
            except BrokenPipeError:
                pass
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without raising (the file is left incomplete)."""
        try:
            self.close()
        except OSError:
            pass


class DecryptingReader:
    """The plaintext of an age file, read forward (``seek`` only forward; it reads and drops)."""

    def __init__(self, path: str, identities: Sequence[Any]) -> None:
        import pyrage

        self.path = path
        try:
            self._src = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as err:
            raise CaptureError(f"cannot read: {err.strerror or err}", path=path) from None
        rfd, wfd = os.pipe()
        self._reader = os.fdopen(rfd, "rb")
        self._writer = os.fdopen(wfd, "wb", buffering=0)
        self._error: BaseException | None = None
        self.pos = 0

        def run() -> None:
            try:
                pyrage.decrypt_io(self._src, self._writer, list(identities))
            except BaseException as err:  # noqa: BLE001 - raised by the reading thread
                self._error = err
            finally:
                try:
                    self._writer.close()
                except OSError:
                    pass

        self._thread = threading.Thread(target=run, name="age-decrypt", daemon=True)
        self._thread.start()

    @property
    def cipher_read(self) -> int:
        """Bytes of the encrypted file read so far."""
        try:
            return self._src.tell()
        except (OSError, ValueError):
            return 0

    def read(self, n: int) -> bytes:
        data = self._reader.read(n)
        self.pos += len(data)
        if len(data) < n:
            self._thread.join()
            self._check()
        return data

    def _check(self) -> None:
        if self._error is not None:
            raise decrypt_error(self._error, self.path)

    def seek(self, pos: int) -> None:
        if pos < self.pos:
            raise CaptureError(f"cannot seek back to offset {pos} in an encrypted file", path=self.path, offset=pos)
        while self.pos < pos:
            if not self.read(min(_BLOCK, pos - self.pos)):
                break

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self._reader.close()  # the decryptor, if still writing, gets EPIPE and ends
        self._thread.join()
        self._src.close()

    def __enter__(self) -> DecryptingReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decrypt_error(err: BaseException, path: str) -> CaptureError:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "No matching keys" in text or "no identity matched" in text.lower():
        return CaptureError("cannot decrypt: the identity given is not the one this file was encrypted to", path=path)
    return CaptureError(f"cannot decrypt (damaged or truncated age file?): {text}", path=path)


def decrypt_to_file(path: str, dest: str, identities: Sequence[Any]) -> None:
    """Write the plaintext of the age file ``path`` to a new owner-only file ``dest``."""
    import pyrage

    try:
        src = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise CaptureError(f"cannot read: {err.strerror or err}", path=path) from None
    with src, open_private(dest, PRIVATE) as out:
        try:
            pyrage.decrypt_io(src, out, list(identities))
        except (pyrage.DecryptError, ValueError, OSError) as err:
            raise decrypt_error(err, path) from None


def seal_armored(value: str, recipient) -> str:
    """``value`` encrypted for ``recipient`` as armored age text (``-----BEGIN AGE ENCRYPTED
    FILE-----``, about 510 bytes for a password)."""
    import pyrage

    return pyrage.encrypt(value.encode("utf-8", "surrogateescape"), [recipient], armored=True).decode("ascii")


def open_secret(blob: bytes, identities: Sequence[Any]) -> str | None:
    """The value :func:`seal_armored` sealed (as ASCII bytes), or None when none of ``identities``
    opens it."""
    import pyrage

    try:
        return pyrage.decrypt(bytes(blob), list(identities)).decode("utf-8", "surrogateescape")
    except (pyrage.DecryptError, ValueError):
        return None


def fingerprint(value: str, key: bytes) -> str:
    """A keyed fingerprint (HMAC-SHA256, 16 hex digits) of a secret: equal secrets give equal
    fingerprints, and without the key nobody can test a guessed password against it."""
    return hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:16]
