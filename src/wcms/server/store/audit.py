"""The audit log: who did what, to what, when."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import audit_log


async def append(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(audit_log).values(**values))


async def recent(
    conn: AsyncConnection, *, limit: int = 100, action: str | None = None
) -> Sequence[Row[Any]]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    return (await conn.execute(query)).all()
