"""The audit log: who did what, to what, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import audit_log


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    at: datetime
    actor: str
    action: str
    target: str | None
    # Free-form: what each action chooses to record about itself, as JSON.
    detail: dict[str, Any] | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry(NewAuditEntry):
    """A stored entry: what was recorded, and its id."""

    id: int


_entry = mapper(AuditEntry)


async def append(conn: AsyncConnection, entry: NewAuditEntry) -> None:
    await conn.execute(insert(audit_log).values(**values(entry)))


async def recent(
    conn: AsyncConnection, *, limit: int = 100, action: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, of one ``action`` when given."""
    query = select(*columns(audit_log, AuditEntry)).order_by(audit_log.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    return [_entry(row) for row in await conn.execute(query)]
