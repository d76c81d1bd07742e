"""What the report says about itself: when and by which Wiretrail it was made, from which store,
the evidence-chain check, and the commands that make it again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReportMeta:
    """The report's own facts (the evidence appendix)."""

    version: str  # Wiretrail's version
    generated_ns: int  # when the report was made (UTC nanoseconds)
    database: str  # the store it was read from, as displayed (no password)
    since_ns: int | None = None
    until_ns: int | None = None
    chain_check: str | None = None  # the evidence-chain check's result line (`wiretrail verify`)
    chain_ok: bool | None = None  # None when nothing was checked
    commands: tuple[str, ...] = ()  # the commands that reproduce the report
    company: str | None = None  # the company's name for the customer notification, when given
