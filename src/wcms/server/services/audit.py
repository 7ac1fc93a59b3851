"""Recording admin actions, and reading them back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.services.clock import utcnow
from wcms.server.store import audit as audit_store
from wcms.server.store.audit import AuditEntry, NewAuditEntry
from wcms.server.store.engine import Database


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a user, an API key, a local CLI user, or an agent."""

    name: str
    ip: str | None = None


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    *,
    target: str | None = None,
    # Free-form: what this action chooses to record about itself, as JSON.
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the audit log, in the caller's transaction."""
    entry = NewAuditEntry(
        at=utcnow(), actor=actor.name, action=action, target=target, detail=detail, ip=actor.ip
    )
    await audit_store.append(conn, entry)


class AuditLog:
    """The audit log as the API and the dashboard read it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, *, limit: int, action: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries, of one ``action`` when given."""
        async with self._db.connect() as conn:
            return await audit_store.recent(conn, limit=limit, action=action)
