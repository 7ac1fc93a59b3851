"""Users, their sessions, and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import api_keys, sessions, users


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as lists and sessions show it; the password hash is left out."""

    id: int
    username: str
    role: str
    created_at: datetime
    last_login_at: datetime | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class UserLogin:
    """What a login checks; the only read that carries the password hash."""

    id: int
    username: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    password_hash: str
    role: str
    created_at: datetime
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class NewSession:
    """A login session; ``id`` is the hash of the token the browser holds."""

    id: str
    user_id: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    name: str
    secret_hash: str
    user_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: str
    name: str
    secret_hash: str
    created_at: datetime
    user_id: int | None = None


_user = mapper(UserRecord)
_login = mapper(UserLogin)
_api_key = mapper(ApiKeyRecord)


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def get_login(conn: AsyncConnection, username: str) -> UserLogin | None:
    result = await conn.execute(
        select(*columns(users, UserLogin)).where(users.c.username == username)
    )
    row = result.first()
    return _login(row) if row is not None else None


async def list_users(conn: AsyncConnection) -> list[UserRecord]:
    result = await conn.execute(select(*columns(users, UserRecord)).order_by(users.c.username))
    return [_user(row) for row in result]


async def create_user(conn: AsyncConnection, user: NewUser) -> int:
    result = await conn.execute(insert(users).values(**values(user)).returning(users.c.id))
    return int(result.scalar_one())


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> int:
    result = await conn.execute(
        update(users).where(users.c.username == username).values(password_hash=password_hash)
    )
    return result.rowcount


async def touch_login(conn: AsyncConnection, user_id: int, *, now: datetime) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))


async def create_session(conn: AsyncConnection, session: NewSession) -> None:
    await conn.execute(insert(sessions).values(**values(session)))


async def session_user(
    conn: AsyncConnection, session_id: str, *, now: datetime
) -> UserRecord | None:
    """The enabled user of an unexpired session."""
    result = await conn.execute(
        select(*columns(users, UserRecord))
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(
            sessions.c.id == session_id, sessions.c.expires_at > now, users.c.disabled.is_(False)
        )
    )
    row = result.first()
    return _user(row) if row is not None else None


async def delete_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(delete(sessions).where(sessions.c.id == session_id))


async def create_api_key(conn: AsyncConnection, key: NewApiKey) -> None:
    await conn.execute(insert(api_keys).values(**values(key)))


async def get_api_key(conn: AsyncConnection, key_id: str) -> ApiKeyRecord | None:
    result = await conn.execute(
        select(*columns(api_keys, ApiKeyRecord)).where(api_keys.c.id == key_id)
    )
    row = result.first()
    return _api_key(row) if row is not None else None


async def list_api_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    result = await conn.execute(
        select(*columns(api_keys, ApiKeyRecord)).order_by(api_keys.c.created_at.desc())
    )
    return [_api_key(row) for row in result]


async def revoke_api_key(conn: AsyncConnection, key_id: str, *, now: datetime) -> int:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def touch_api_key(conn: AsyncConnection, key_id: str, *, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))
