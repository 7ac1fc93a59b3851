"""Enrolment tokens and per-agent credentials."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import agent_credentials, enrollment_tokens


@dataclass(frozen=True, slots=True)
class EnrollTokenRecord:
    id: str
    secret_hash: str
    uses_allowed: int
    uses_count: int
    expires_at: datetime
    created_at: datetime
    created_by: str | None
    note: str | None
    revoked_at: datetime | None
    room: str | None


@dataclass(frozen=True, slots=True)
class NewEnrollToken:
    """A token for ``uses_allowed`` enrolments; machines it enrols start in ``room``."""

    id: str
    secret_hash: str
    uses_allowed: int
    expires_at: datetime
    created_at: datetime
    created_by: str | None
    note: str | None
    room: str | None


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    id: str
    machine_id: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


@dataclass(frozen=True, slots=True)
class NewCredential:
    id: str
    machine_id: str
    secret_hash: str
    created_at: datetime


_token = mapper(EnrollTokenRecord)
_credential = mapper(CredentialRecord)


async def create_token(conn: AsyncConnection, token: NewEnrollToken) -> None:
    await conn.execute(insert(enrollment_tokens).values(uses_count=0, **values(token)))


async def get_token(conn: AsyncConnection, token_id: str) -> EnrollTokenRecord | None:
    result = await conn.execute(
        select(*columns(enrollment_tokens, EnrollTokenRecord)).where(
            enrollment_tokens.c.id == token_id
        )
    )
    row = result.first()
    return _token(row) if row is not None else None


async def list_tokens(conn: AsyncConnection) -> list[EnrollTokenRecord]:
    result = await conn.execute(
        select(*columns(enrollment_tokens, EnrollTokenRecord)).order_by(
            enrollment_tokens.c.created_at.desc()
        )
    )
    return [_token(row) for row in result]


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


async def create_credential(conn: AsyncConnection, credential: NewCredential) -> None:
    await conn.execute(insert(agent_credentials).values(**values(credential)))


async def get_credential(conn: AsyncConnection, credential_id: str) -> CredentialRecord | None:
    result = await conn.execute(
        select(*columns(agent_credentials, CredentialRecord)).where(
            agent_credentials.c.id == credential_id
        )
    )
    row = result.first()
    return _credential(row) if row is not None else None


async def get_credentials(
    conn: AsyncConnection, credential_ids: Iterable[str]
) -> dict[str, CredentialRecord]:
    """Several credentials in one query, by id."""
    result = await conn.execute(
        select(*columns(agent_credentials, CredentialRecord)).where(
            agent_credentials.c.id.in_(list(credential_ids))
        )
    )
    return {record.id: record for record in map(_credential, result)}


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
