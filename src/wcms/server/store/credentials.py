"""Enrolment tokens and per-agent credentials."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import agent_credentials, enrollment_tokens


async def create_token(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(enrollment_tokens).values(**values))


async def get_token(conn: AsyncConnection, token_id: str) -> Row[Any] | None:
    result = await conn.execute(select(enrollment_tokens).where(enrollment_tokens.c.id == token_id))
    return result.first()


async def list_tokens(conn: AsyncConnection) -> Sequence[Row[Any]]:
    result = await conn.execute(
        select(enrollment_tokens).order_by(enrollment_tokens.c.created_at.desc())
    )
    return result.all()


async def consume_token(conn: AsyncConnection, token_id: str, *, now: datetime) -> bool:
    """Use one of the token's uses, atomically; False when expired, revoked or used up."""
    result = await conn.execute(
        update(enrollment_tokens)
        .where(
            enrollment_tokens.c.id == token_id,
            enrollment_tokens.c.revoked_at.is_(None),
            enrollment_tokens.c.expires_at > now,
            enrollment_tokens.c.uses_count < enrollment_tokens.c.uses_allowed,
        )
        .values(uses_count=enrollment_tokens.c.uses_count + 1)
    )
    return result.rowcount == 1


async def revoke_token(conn: AsyncConnection, token_id: str, *, now: datetime) -> int:
    result = await conn.execute(
        update(enrollment_tokens)
        .where(enrollment_tokens.c.id == token_id, enrollment_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def create_credential(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(agent_credentials).values(**values))


async def get_credential(conn: AsyncConnection, credential_id: str) -> Row[Any] | None:
    result = await conn.execute(
        select(agent_credentials).where(agent_credentials.c.id == credential_id)
    )
    return result.first()


async def get_credentials(
    conn: AsyncConnection, credential_ids: Iterable[str]
) -> dict[str, Row[Any]]:
    """Several credentials in one query, by id."""
    result = await conn.execute(
        select(agent_credentials).where(agent_credentials.c.id.in_(list(credential_ids)))
    )
    return {row.id: row for row in result}


async def revoke_credentials(
    conn: AsyncConnection, machine_id: str, *, now: datetime, reason: str
) -> list[str]:
    """Revoke every live credential of a machine; returns the revoked ids."""
    result = await conn.execute(
        update(agent_credentials)
        .where(
            agent_credentials.c.machine_id == machine_id,
            agent_credentials.c.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoke_reason=reason)
        .returning(agent_credentials.c.id)
    )
    return list(result.scalars())


async def has_live_credential(conn: AsyncConnection, machine_id: str) -> bool:
    result = await conn.execute(
        select(agent_credentials.c.id)
        .where(
            agent_credentials.c.machine_id == machine_id,
            agent_credentials.c.revoked_at.is_(None),
        )
        .limit(1)
    )
    return result.first() is not None
