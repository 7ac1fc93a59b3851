"""Files kept in the database: documents uploaded to print, screenshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import files

# Every column but the content, for listings.
_META = [c for c in files.c if c.name != "content"]


async def add(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(files).values(**values))


async def get(conn: AsyncConnection, file_id: str) -> Row[Any] | None:
    return (await conn.execute(select(*_META).where(files.c.id == file_id))).first()


async def content(conn: AsyncConnection, file_id: str) -> bytes | None:
    value = (await conn.execute(select(files.c.content).where(files.c.id == file_id))).scalar()
    return bytes(value) if value is not None else None


async def list_files(
    conn: AsyncConnection, *, kind: str | None, machine_id: str | None, limit: int
) -> Sequence[Row[Any]]:
    query = select(*_META).order_by(files.c.created_at.desc(), files.c.id).limit(limit)
    if kind is not None:
        query = query.where(files.c.kind == kind)
    if machine_id is not None:
        query = query.where(files.c.machine_id == machine_id)
    return (await conn.execute(query)).all()


async def remove(conn: AsyncConnection, file_id: str) -> int:
    return (await conn.execute(delete(files).where(files.c.id == file_id))).rowcount
