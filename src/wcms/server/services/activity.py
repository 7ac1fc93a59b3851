"""What happened lately: machines coming and going, commands failing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wcms.server.store import activity as store
from wcms.server.store.engine import Database


@dataclass(frozen=True, slots=True)
class Happening:
    at: datetime
    kind: str  # "online", "offline" or "command_failed"
    machine_id: str
    hostname: str
    room: str | None
    detail: str
    command_id: int | None = None


class Activity:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, *, limit: int = 30) -> list[Happening]:
        """The newest ``limit`` presence changes and failed runs, newest first."""
        async with self._db.connect() as conn:
            presence = await store.recent_presence(conn, limit=limit)
            failures = await store.recent_failures(conn, limit=limit)
        items = [
            Happening(p.at, p.status, p.machine_id, p.hostname or p.machine_id, p.room, p.reason)
            for p in presence
        ]
        items += [
            Happening(
                f.finished_at,
                "command_failed",
                f.machine_id,
                f.hostname or f.machine_id,
                f.room,
                f"{f.type} #{f.command_id}: {f.state}" + (f" ({f.error[:120]})" if f.error else ""),
                f.command_id,
            )
            for f in failures
        ]
        return sorted(items, key=lambda item: item.at, reverse=True)[:limit]
