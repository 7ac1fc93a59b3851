"""Users, their sessions, and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import api_keys, sessions, users


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def get_user(conn: AsyncConnection, username: str) -> Row[Any] | None:
    return (await conn.execute(select(users).where(users.c.username == username))).first()


async def list_users(conn: AsyncConnection) -> Sequence[Row[Any]]:
    return (await conn.execute(select(users).order_by(users.c.username))).all()


async def get_user_by_id(conn: AsyncConnection, user_id: int) -> Row[Any] | None:
    return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def create_user(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(insert(users).values(**values).returning(users.c.id))
    return int(result.scalar_one())


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> int:
    result = await conn.execute(
        update(users).where(users.c.username == username).values(password_hash=password_hash)
    )
    return result.rowcount


async def touch_login(conn: AsyncConnection, user_id: int, *, now: datetime) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))


async def create_session(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(sessions).values(**values))


async def session_user(conn: AsyncConnection, session_id: str, *, now: datetime) -> Row[Any] | None:
    result = await conn.execute(
        select(users)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(
            sessions.c.id == session_id, sessions.c.expires_at > now, users.c.disabled.is_(False)
        )
    )
    return result.first()


async def delete_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(delete(sessions).where(sessions.c.id == session_id))


async def create_api_key(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(api_keys).values(**values))


async def get_api_key(conn: AsyncConnection, key_id: str) -> Row[Any] | None:
    return (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()


async def list_api_keys(conn: AsyncConnection) -> Sequence[Row[Any]]:
    return (await conn.execute(select(api_keys).order_by(api_keys.c.created_at.desc()))).all()


async def revoke_api_key(conn: AsyncConnection, key_id: str, *, now: datetime) -> int:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def touch_api_key(conn: AsyncConnection, key_id: str, *, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))
