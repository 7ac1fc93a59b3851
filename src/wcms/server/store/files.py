"""Files kept in the database: documents uploaded to print, screenshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import files


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file's metadata; its content is read on its own, only when it is sent."""

    id: str
    kind: str
    name: str
    content_type: str
    size: int
    sha256: str
    machine_id: str | None
    run_id: int | None
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewFile:
    meta: FileRecord
    content: bytes


_file = mapper(FileRecord)


async def add(conn: AsyncConnection, file: NewFile) -> None:
    await conn.execute(insert(files).values(content=file.content, **values(file.meta)))


async def get(conn: AsyncConnection, file_id: str) -> FileRecord | None:
    result = await conn.execute(select(*columns(files, FileRecord)).where(files.c.id == file_id))
    row = result.first()
    return _file(row) if row is not None else None


async def content(conn: AsyncConnection, file_id: str) -> bytes | None:
    value = (await conn.execute(select(files.c.content).where(files.c.id == file_id))).scalar()
    return bytes(value) if value is not None else None


async def list_files(
    conn: AsyncConnection, *, kind: str | None, machine_id: str | None, limit: int
) -> list[FileRecord]:
    query = (
        select(*columns(files, FileRecord))
        .order_by(files.c.created_at.desc(), files.c.id)
        .limit(limit)
    )
    if kind is not None:
        query = query.where(files.c.kind == kind)
    if machine_id is not None:
        query = query.where(files.c.machine_id == machine_id)
    return [_file(row) for row in await conn.execute(query)]


async def remove(conn: AsyncConnection, file_id: str) -> int:
    return (await conn.execute(delete(files).where(files.c.id == file_id))).rowcount
