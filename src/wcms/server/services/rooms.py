"""Rooms and the seat map: which machine sits where."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wcms.protocol.rooms import LayoutUpdate, RoomCreate, RoomLayout, RoomOut, RoomPatch
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import BadRequest, Conflict, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.store import rooms as store

DEFAULT_ROWS = 5
DEFAULT_COLS = 8


class Rooms:
    def __init__(self, engine: AsyncEngine, *, bus: Bus | None = None) -> None:
        self._engine = engine
        self._bus = bus or InProcessBus()

    async def list_rooms(self) -> list[RoomOut]:
        """Every created room, and every room a machine names, with machine counts."""
        async with self._engine.connect() as conn:
            rows = await store.list_rooms(conn)
            counts = await store.counts(conn)
        out = {r.name: RoomOut(name=r.name, rows=r.rows, cols=r.cols) for r in rows}
        for name, (total, online) in counts.items():
            if name is None:
                continue
            room = out.setdefault(
                name, RoomOut(name=name, rows=DEFAULT_ROWS, cols=DEFAULT_COLS, defined=False)
            )
            room.machines, room.online = total, online
        return sorted(out.values(), key=lambda room: room.name.casefold())

    async def unplaced(self) -> tuple[int, int]:
        """(machines, online) of the machines in no room."""
        async with self._engine.connect() as conn:
            return (await store.counts(conn)).get(None, (0, 0))

    async def layout(self, name: str) -> RoomLayout:
        async with self._engine.connect() as conn:
            room = await _room(conn, name)
            seats = await store.placements(conn, name)
            total, online = (await store.counts(conn)).get(name, (0, 0))
        room.machines, room.online = total, online
        return RoomLayout(room=room, seats=seats)

    async def create(self, body: RoomCreate, *, actor: Actor) -> RoomOut:
        try:
            async with self._engine.begin() as conn:
                values = body.model_dump()
                await store.create(conn, {**values, "created_at": utcnow()})
                await record(conn, actor, "room.create", target=body.name, detail=values)
        except IntegrityError as exc:
            raise Conflict(f"room {body.name!r} already exists", field="name") from exc
        self._bus.publish("layout", {"room": body.name})
        return RoomOut(name=body.name, rows=body.rows, cols=body.cols)

    async def update(self, name: str, patch: RoomPatch, *, actor: Actor) -> RoomOut:
        """Rename or resize a room; machines whose seat falls off a smaller grid go back
        to the room's tray."""
        changes = patch.model_dump(exclude_none=True)
        async with self._engine.begin() as conn:
            room = await _defined_room(conn, name)
            new_name = changes.get("name", name)
            if new_name != name and await store.get(conn, new_name) is not None:
                raise Conflict(f"room {new_name!r} already exists", field="name")
            await store.update_room(conn, name, changes)
            if new_name != name:
                await store.rename_machines_room(conn, name, new_name)
            rows, cols = changes.get("rows", room.rows), changes.get("cols", room.cols)
            seats = await store.placements(conn, new_name)
            off_grid = [m for m, seat in seats.items() if seat and not _on_grid(seat, rows, cols)]
            now = utcnow()
            await store.place(
                conn,
                [{"m_id": m, "m_room": new_name, "m_seat": None, "m_at": now} for m in off_grid],
            )
            await record(conn, actor, "room.update", target=name, detail=changes)
        self._bus.publish("layout", {"room": new_name, "renamed_from": name})
        return RoomOut(name=new_name, rows=rows, cols=cols)

    async def delete(self, name: str, *, actor: Actor) -> None:
        """Remove a room; its machines go to the unplaced tray."""
        async with self._engine.begin() as conn:
            deleted = await store.delete_room(conn, name)
            moved = await store.placements(conn, name)
            if not deleted and not moved:
                raise NotFound(f"no room {name!r}")
            await store.rename_machines_room(conn, name, None)
            await record(conn, actor, "room.delete", target=name, detail={"machines": len(moved)})
        self._bus.publish("layout", {"room": name, "deleted": True})

    async def set_layout(self, name: str, body: LayoutUpdate, *, actor: Actor) -> RoomLayout:
        """Place machines on seats of room ``name`` (a null seat sends a machine back to
        the unplaced tray).

        1. The room must exist; a room only machines name is created with a default grid.
        2. Every machine must exist, every seat be on the grid, and no two machines may
           end up on one seat.
        3. All placements are written in one transaction, and watchers are told.
        """
        async with self._engine.begin() as conn:
            room = await _room(conn, name)
            if not room.defined:
                await store.create(
                    conn,
                    {"name": name, "rows": room.rows, "cols": room.cols, "created_at": utcnow()},
                )
            ids = list(body.seats)
            missing = sorted(set(ids) - await store.existing_ids(conn, ids))
            if missing:
                raise NotFound(f"no machine {missing[0]!r}", field="seats", code="unknown_machine")
            final = await store.placements(conn, name)
            for machine_id, seat in body.seats.items():
                _check_seat(machine_id, seat, room)
                final[machine_id] = seat
            _refuse_shared_seats(final)
            now = utcnow()
            rows = [
                {"m_id": m, "m_room": name if s else None, "m_seat": s, "m_at": now}
                for m, s in body.seats.items()
            ]
            await store.place(conn, rows)
            await record(conn, actor, "room.layout", target=name, detail={"placed": len(rows)})
        self._bus.publish("layout", {"room": name})
        return await self.layout(name)


async def _room(conn: AsyncConnection, name: str) -> RoomOut:
    row = await store.get(conn, name)
    if row is not None:
        return RoomOut(name=row.name, rows=row.rows, cols=row.cols)
    if name in (await store.counts(conn)):
        return RoomOut(name=name, rows=DEFAULT_ROWS, cols=DEFAULT_COLS, defined=False)
    raise NotFound(f"no room {name!r}")


async def _defined_room(conn: AsyncConnection, name: str) -> RoomOut:
    room = await _room(conn, name)
    if not room.defined:
        await store.create(
            conn, {"name": name, "rows": room.rows, "cols": room.cols, "created_at": utcnow()}
        )
    return room


def parse_seat(seat: str | None) -> tuple[int, int] | None:
    """(row, col) of a "ROW-COL" seat; None for no seat or one in another notation."""
    if not seat:
        return None
    row, _, col = seat.partition("-")
    if not (row.isdigit() and col.isdigit()):
        return None
    return int(row), int(col)


def _on_grid(seat: str, rows: int, cols: int) -> bool:
    place = parse_seat(seat)
    return place is not None and 1 <= place[0] <= rows and 1 <= place[1] <= cols


def _check_seat(machine_id: str, seat: str | None, room: RoomOut) -> None:
    if seat is not None and not _on_grid(seat, room.rows, room.cols):
        raise BadRequest(
            f"seat {seat!r} of {machine_id!r} is not on the {room.rows}x{room.cols} grid "
            "(seats are ROW-COL, counted from 1)",
            field=f"seats.{machine_id}",
            code="invalid_seat",
        )


def _refuse_shared_seats(final: dict[str, str | None]) -> None:
    taken: dict[str, str] = {}
    for machine_id, seat in final.items():
        if seat is None:
            continue
        if seat in taken:
            raise Conflict(
                f"seat {seat} would hold both {taken[seat]!r} and {machine_id!r}",
                field=f"seats.{machine_id}",
                code="seat_taken",
            )
        taken[seat] = machine_id
