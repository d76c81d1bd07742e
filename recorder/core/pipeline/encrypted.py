"""Encrypted inputs of an ingest (``*.pcap.age``, the recorder's ``encrypt_to``).

Each age file among the inputs (named, in a directory, or matched by a glob) is decrypted into
an owner-only file in a private temporary directory (0700), which the ingest reads like any
capture and deletes when it ends; the store records the encrypted file (its path, size and
SHA-256), and the packet index offsets are those of the pcap inside it, as for the recorder's
own encrypted files. The plaintext is on the investigator's machine (where the key is), for the
ingest's duration only.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import Any

from recorder.core.agecrypt import decrypt_to_file, is_age
from recorder.core.errors import CaptureError


def _candidates(arg: str) -> list[str] | None:
    """The files a directory or glob argument names, or None for a plain file argument."""
    if os.path.isdir(arg):
        return [os.path.join(arg, n) for n in sorted(os.listdir(arg)) if not n.startswith(".")
                and os.path.isfile(os.path.join(arg, n))]
    if not os.path.exists(arg) and any(c in arg for c in "*?["):
        return [p for p in sorted(glob.glob(arg)) if os.path.isfile(p)]
    return None


def decrypt_inputs(args: Sequence[str], identities: Sequence[Any] | None,
                   tmpdir: str) -> tuple[list[str], dict[str, str]]:
    """``args`` with each age file replaced by its plaintext in ``tmpdir``; and plaintext path ->
    encrypted path. A directory or glob holding age files is replaced by its files (the age ones
    decrypted; the others kept when they are captures). Raises CaptureError for an age file
    without ``identities`` or one they do not open."""
    from recorder.core.capio.pcapio import probe

    out: list[str] = []
    originals: dict[str, str] = {}

    def decrypt(path: str) -> str:
        if not identities:
            raise CaptureError("encrypted (age); give the private key with --identity KEYFILE", path=path)
        dest = os.path.join(tmpdir, f"{len(originals):06d}-{os.path.basename(path)[:-4] or 'capture'}")
        decrypt_to_file(path, dest, identities)
        originals[dest] = path
        return dest

    for arg in args:
        files = _candidates(arg)
        if files is None:
            out.append(decrypt(arg) if os.path.isfile(arg) and is_age(arg) else arg)
            continue
        if not any(is_age(p) for p in files):
            out.append(arg)
            continue
        for p in files:
            if is_age(p):
                out.append(decrypt(p))
            else:
                try:
                    probe(p)
                except CaptureError:
                    continue
                out.append(p)
    return out, originals
