"""Rooms: a name and a seat grid; machines name their room and seat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import machines, rooms


async def list_rooms(conn: AsyncConnection) -> Sequence[Row[Any]]:
    result = await conn.execute(select(rooms).order_by(rooms.c.name))
    return result.all()


async def get(conn: AsyncConnection, name: str) -> Row[Any] | None:
    return (await conn.execute(select(rooms).where(rooms.c.name == name))).first()


async def create(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(rooms).values(**values))


async def update_room(conn: AsyncConnection, name: str, values: dict[str, Any]) -> int:
    result = await conn.execute(update(rooms).where(rooms.c.name == name).values(**values))
    return result.rowcount


async def delete_room(conn: AsyncConnection, name: str) -> int:
    return (await conn.execute(delete(rooms).where(rooms.c.name == name))).rowcount


async def rename_machines_room(conn: AsyncConnection, old: str, new: str | None) -> None:
    values: dict[str, Any] = {"room": new} if new is not None else {"room": None, "seat": None}
    await conn.execute(update(machines).where(machines.c.room == old).values(**values))


async def counts(conn: AsyncConnection) -> dict[str | None, tuple[int, int]]:
    """(machines, online) per room name; None for machines in no room."""
    online = func.sum(case((machines.c.status == "online", 1), else_=0))
    result = await conn.execute(
        select(machines.c.room, func.count(), online).group_by(machines.c.room)
    )
    return {room: (total, int(up or 0)) for room, total, up in result}


async def placements(conn: AsyncConnection, room: str) -> dict[str, str | None]:
    result = await conn.execute(
        select(machines.c.id, machines.c.seat).where(machines.c.room == room)
    )
    return {machine_id: seat for machine_id, seat in result}


async def existing_ids(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    result = await conn.execute(select(machines.c.id).where(machines.c.id.in_(ids)))
    return set(result.scalars())


async def place(conn: AsyncConnection, placements: Sequence[dict[str, Any]]) -> None:
    """Set room and seat of many machines: rows of {"m_id", "m_room", "m_seat", "m_at"}."""
    if not placements:
        return
    await conn.execute(
        update(machines)
        .where(machines.c.id == bindparam("m_id"))
        .values(room=bindparam("m_room"), seat=bindparam("m_seat"), updated_at=bindparam("m_at")),
        list(placements),
    )
