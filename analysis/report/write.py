"""Writing a report file whole or not at all: a temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile

from recorder.core.errors import WiretrailError


class ReportWriteError(WiretrailError):
    """The report file cannot be written (the message names the file and the reason)."""


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees half a report and a failure leaves nothing behind."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ReportWriteError(f"{path}: cannot write: is a directory")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".wiretrail-report-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise ReportWriteError(f"{path}: cannot write: {err.strerror or err}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
