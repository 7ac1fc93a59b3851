"""Rooms: a name and a seat grid; machines name their room and seat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import machines, rooms


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: int
    name: str
    rows: int
    cols: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewRoom:
    name: str
    rows: int
    cols: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Occupancy:
    """How many machines a room holds, and how many of them are online."""

    machines: int
    online: int


@dataclass(frozen=True, slots=True)
class Placement:
    """Machine ``machine_id`` goes to ``seat`` of ``room`` (None: no room, or no seat)."""

    machine_id: str
    room: str | None
    seat: str | None
    at: datetime


_room = mapper(RoomRecord)


async def list_rooms(conn: AsyncConnection) -> list[RoomRecord]:
    result = await conn.execute(select(*columns(rooms, RoomRecord)).order_by(rooms.c.name))
    return [_room(row) for row in result]


async def get(conn: AsyncConnection, name: str) -> RoomRecord | None:
    result = await conn.execute(select(*columns(rooms, RoomRecord)).where(rooms.c.name == name))
    row = result.first()
    return _room(row) if row is not None else None


async def create(conn: AsyncConnection, room: NewRoom) -> None:
    await conn.execute(insert(rooms).values(**values(room)))


async def update_room(
    conn: AsyncConnection, name: str, *, new_name: str, rows: int, cols: int
) -> int:
    result = await conn.execute(
        update(rooms).where(rooms.c.name == name).values(name=new_name, rows=rows, cols=cols)
    )
    return result.rowcount


async def delete_room(conn: AsyncConnection, name: str) -> int:
    return (await conn.execute(delete(rooms).where(rooms.c.name == name))).rowcount


async def rename_machines_room(conn: AsyncConnection, old: str, new: str | None) -> None:
    """Move the machines of room ``old`` to room ``new``; with None they lose their seat
    too, and go to the unplaced tray."""
    moved = update(machines).where(machines.c.room == old)
    await conn.execute(
        moved.values(room=new) if new is not None else moved.values(room=None, seat=None)
    )


async def counts(conn: AsyncConnection) -> dict[str | None, Occupancy]:
    """Machines and online machines per room name; None for machines in no room."""
    online = func.sum(case((machines.c.status == "online", 1), else_=0))
    result = await conn.execute(
        select(machines.c.room, func.count(), online).group_by(machines.c.room)
    )
    return {room: Occupancy(int(total), int(up or 0)) for room, total, up in result}


async def placements(conn: AsyncConnection, room: str) -> dict[str, str | None]:
    """The seat of each machine in ``room``, by machine id."""
    result = await conn.execute(
        select(machines.c.id, machines.c.seat).where(machines.c.room == room)
    )
    return {machine_id: seat for machine_id, seat in result}


async def existing_ids(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that name a machine."""
    if not ids:
        return set()
    result = await conn.execute(select(machines.c.id).where(machines.c.id.in_(list(ids))))
    return set(result.scalars())


async def place(conn: AsyncConnection, placements: Sequence[Placement]) -> None:
    """Set the room and seat of many machines, in one statement."""
    if not placements:
        return
    await conn.execute(
        update(machines)
        .where(machines.c.id == bindparam("m_id"))
        .values(room=bindparam("m_room"), seat=bindparam("m_seat"), updated_at=bindparam("m_at")),
        [
            {"m_id": p.machine_id, "m_room": p.room, "m_seat": p.seat, "m_at": p.at}
            for p in placements
        ],
    )
