"""Domain errors. Library code raises these; only entry points turn them into messages and exit codes.

Every error says where the problem is: the file, and the byte offset, packet number or line
when one is known. ``str(err)`` is the one line a user sees.
"""

from __future__ import annotations


class WiretrailError(Exception):
    """Base of every error Wiretrail reports to a user (exit 1 unless a subclass says otherwise)."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 packet: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset
        self.packet = packet
        self.line = line

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path if self.line is None else f"{self.path}:{self.line}")
        if self.packet is not None:
            where.append(f"packet {self.packet}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CaptureError(WiretrailError):
    """A capture file cannot be read: not a capture, corrupt header, unreadable."""


class CaptureWarning(WiretrailError):
    """A recoverable problem in a capture (truncated last record); reading stopped cleanly."""


class DamagedCaptureWarning(CaptureWarning):
    """Damaged records were skipped (and reading resynchronised after them): ``skipped`` holds
    the byte ranges, each (start, end) with the end exclusive."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 skipped: list[tuple[int, int]] | tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__(message, path=path, offset=offset)
        self.skipped = tuple(skipped)


class StoreError(WiretrailError):
    """The database cannot be opened, migrated or written."""


class ConfigError(WiretrailError):
    """A bad setting; the daemon exits 78 (EX_CONFIG) so systemd stops restarting it."""

    exit_code = 78


class ProblemsError(WiretrailError):
    """Every problem found in the user's files, one ``path:line: reason`` each (``errors``), so all
    of them are fixed in one round; ``str(err)`` is those lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors[0])
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(self.errors)
