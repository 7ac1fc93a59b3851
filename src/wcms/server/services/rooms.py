"""Rooms and the seat map: which machine sits where."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.rooms import LayoutUpdate, RoomCreate, RoomLayout, RoomOut, RoomPatch
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import BadRequest, Conflict, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.store import rooms as store
from wcms.server.store.engine import Database
from wcms.server.store.rooms import NewRoom, Occupancy, Placement, RoomRecord

DEFAULT_ROWS = 5
DEFAULT_COLS = 8
_EMPTY = Occupancy(machines=0, online=0)


class Rooms:
    def __init__(self, db: Database, *, bus: Bus | None = None) -> None:
        self._db = db
        self._bus = bus or InProcessBus()

    async def list_rooms(self) -> list[RoomOut]:
        """Every created room, and every room a machine names, with machine counts."""
        async with self._db.connect() as conn:
            created = await store.list_rooms(conn)
            counts = await store.counts(conn)
        out = {room.name: room_out(room) for room in created}
        for name, occupancy in counts.items():
            if name is None:
                continue
            room = out.setdefault(
                name, RoomOut(name=name, rows=DEFAULT_ROWS, cols=DEFAULT_COLS, defined=False)
            )
            room.machines, room.online = occupancy.machines, occupancy.online
        return sorted(out.values(), key=lambda room: room.name.casefold())

    async def unplaced(self) -> tuple[int, int]:
        """(machines, online) of the machines in no room."""
        async with self._db.connect() as conn:
            unplaced = (await store.counts(conn)).get(None, _EMPTY)
        return unplaced.machines, unplaced.online

    async def layout(self, name: str) -> RoomLayout:
        async with self._db.connect() as conn:
            room = await _room(conn, name)
            seats = await store.placements(conn, name)
            occupancy = (await store.counts(conn)).get(name, _EMPTY)
        room.machines, room.online = occupancy.machines, occupancy.online
        return RoomLayout(room=room, seats=seats)

    async def create(self, body: RoomCreate, *, actor: Actor) -> RoomOut:
        try:
            async with self._db.begin() as conn:
                room = NewRoom(name=body.name, rows=body.rows, cols=body.cols, created_at=utcnow())
                await store.create(conn, room)
                await record(conn, actor, "room.create", target=body.name, detail=body.model_dump())
        except IntegrityError as exc:
            raise Conflict(f"room {body.name!r} already exists", field="name") from exc
        self._bus.publish("layout", {"room": body.name})
        return RoomOut(name=body.name, rows=body.rows, cols=body.cols)

    async def update(self, name: str, patch: RoomPatch, *, actor: Actor) -> RoomOut:
        """Rename or resize a room; machines whose seat falls off a smaller grid go back
        to the room's tray."""
        async with self._db.begin() as conn:
            room = await _defined_room(conn, name)
            new_name = patch.name or name
            rows, cols = patch.rows or room.rows, patch.cols or room.cols
            if new_name != name and await store.get(conn, new_name) is not None:
                raise Conflict(f"room {new_name!r} already exists", field="name")
            await store.update_room(conn, name, new_name=new_name, rows=rows, cols=cols)
            if new_name != name:
                await store.rename_machines_room(conn, name, new_name)
            seats = await store.placements(conn, new_name)
            now = utcnow()
            off_grid = [
                Placement(machine_id=m, room=new_name, seat=None, at=now)
                for m, seat in seats.items()
                if seat and not _on_grid(seat, rows, cols)
            ]
            await store.place(conn, off_grid)
            detail = patch.model_dump(exclude_none=True)
            await record(conn, actor, "room.update", target=name, detail=detail)
        self._bus.publish("layout", {"room": new_name, "renamed_from": name})
        return RoomOut(name=new_name, rows=rows, cols=cols)

    async def delete(self, name: str, *, actor: Actor) -> None:
        """Remove a room; its machines go to the unplaced tray."""
        async with self._db.begin() as conn:
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
        async with self._db.begin() as conn:
            room = await _defined_room(conn, name)
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
            placed = [
                Placement(machine_id=m, room=name if s else None, seat=s, at=now)
                for m, s in body.seats.items()
            ]
            await store.place(conn, placed)
            await record(conn, actor, "room.layout", target=name, detail={"placed": len(placed)})
        self._bus.publish("layout", {"room": name})
        return await self.layout(name)


def room_out(room: RoomRecord) -> RoomOut:
    return RoomOut.model_validate(room, from_attributes=True)


async def _room(conn: AsyncConnection, name: str) -> RoomOut:
    """Room ``name``; one that only machines name has the default grid."""
    created = await store.get(conn, name)
    if created is not None:
        return room_out(created)
    if name in (await store.counts(conn)):
        return RoomOut(name=name, rows=DEFAULT_ROWS, cols=DEFAULT_COLS, defined=False)
    raise NotFound(f"no room {name!r}")


async def _defined_room(conn: AsyncConnection, name: str) -> RoomOut:
    """Room ``name``, created with the default grid if only machines named it."""
    room = await _room(conn, name)
    if not room.defined:
        await store.create(
            conn, NewRoom(name=name, rows=room.rows, cols=room.cols, created_at=utcnow())
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
