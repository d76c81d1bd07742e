"""What an ``extract`` is asked for (``Selection``), without the database library that finding
the flows needs (``select``): a selection by uid on a SQLite file is served without SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.core.errors import WiretrailError

LOOKBACK_NS = 3600 * 10**9  # --since also takes flows that started up to this long before it


@dataclass(frozen=True, slots=True)
class Selection:
    uids: tuple[str, ...] = ()
    community_ids: tuple[str, ...] = ()
    alert: int | None = None
    incident: str | None = None
    host: str | None = None
    port: int | None = None
    proto: str | None = None
    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise WiretrailError("empty time range: --until is not after --since")

    @property
    def by_flow(self) -> bool:
        return bool(self.uids or self.community_ids or self.alert is not None or self.incident is not None)
