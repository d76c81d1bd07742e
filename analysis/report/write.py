"""Writing a report file whole or not at all, owner-only (it names accounts and hosts): through
``recorder.core.secure_files.atomic_output``, a temporary file beside the target, then a rename."""

from __future__ import annotations

import os

from recorder.core.errors import WiretrailError
from recorder.core.secure_files import atomic_output


class ReportWriteError(WiretrailError):
    """The report file cannot be written (the message names the file and the reason)."""


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` (0600) so a reader never sees half a report and a
    failure leaves nothing behind."""
    if os.path.isdir(path):
        raise ReportWriteError(f"{path}: cannot write: is a directory")
    try:
        with atomic_output(path, text=True) as f:
            f.write(text)
    except OSError as err:
        raise ReportWriteError(f"{path}: cannot write: {err.strerror or err}") from None
