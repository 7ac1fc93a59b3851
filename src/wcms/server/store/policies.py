"""Action policies: command types switched off for a machine or a room."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import action_policies


@dataclass(frozen=True, slots=True)
class ActionPolicyRecord:
    """The command types switched off for ``scope`` ("machine:ID" or "room:NAME")."""

    scope: str
    disabled: list[str]
    updated_at: datetime
    updated_by: str | None


_policy = mapper(ActionPolicyRecord)


async def all_policies(conn: AsyncConnection) -> list[ActionPolicyRecord]:
    query = select(*columns(action_policies, ActionPolicyRecord)).order_by(action_policies.c.scope)
    return [_policy(row) for row in await conn.execute(query)]


async def for_scopes(conn: AsyncConnection, scopes: Iterable[str]) -> dict[str, list[str]]:
    """The command types switched off, by scope, for those of ``scopes`` that have any."""
    wanted = list(set(scopes))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(action_policies.c.scope, action_policies.c.disabled).where(
            action_policies.c.scope.in_(wanted)
        )
    )
    return {scope: list(disabled) for scope, disabled in rows}


async def put(conn: AsyncConnection, policy: ActionPolicyRecord) -> None:
    """Create or replace the policy of ``policy.scope``."""
    fields = values(policy, skip=("scope",))
    result = await conn.execute(
        update(action_policies).where(action_policies.c.scope == policy.scope).values(**fields)
    )
    if result.rowcount == 0:
        await conn.execute(insert(action_policies).values(**values(policy)))


async def remove(conn: AsyncConnection, scope: str) -> int:
    result = await conn.execute(delete(action_policies).where(action_policies.c.scope == scope))
    return result.rowcount
