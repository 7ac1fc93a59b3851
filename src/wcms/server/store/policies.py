"""Action policies: command types switched off for a machine or a room."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import action_policies


async def all_policies(conn: AsyncConnection) -> Sequence[Row[Any]]:
    query = select(action_policies).order_by(action_policies.c.scope)
    return (await conn.execute(query)).all()


async def for_scopes(conn: AsyncConnection, scopes: Iterable[str]) -> dict[str, list[str]]:
    wanted = list(set(scopes))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(action_policies.c.scope, action_policies.c.disabled).where(
            action_policies.c.scope.in_(wanted)
        )
    )
    return {scope: list(disabled) for scope, disabled in rows}


async def put(
    conn: AsyncConnection, scope: str, disabled: list[str], *, at: datetime, by: str
) -> None:
    values = {"disabled": disabled, "updated_at": at, "updated_by": by}
    result = await conn.execute(
        update(action_policies).where(action_policies.c.scope == scope).values(**values)
    )
    if result.rowcount == 0:
        await conn.execute(insert(action_policies).values(scope=scope, **values))


async def remove(conn: AsyncConnection, scope: str) -> int:
    result = await conn.execute(delete(action_policies).where(action_policies.c.scope == scope))
    return result.rowcount
