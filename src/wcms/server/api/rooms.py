"""Admin API: rooms and their seat layout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from wcms.protocol.rooms import LayoutUpdate, RoomCreate, RoomLayout, RoomOut, RoomPatch
from wcms.server.api.deps import AdminActor, RoomsDep

router = APIRouter(prefix="/api/rooms", tags=["rooms"])

RoomPath = Annotated[str, Path(min_length=1, max_length=128, description="Room name")]


@router.get("", response_model=list[RoomOut])
async def list_rooms(rooms: RoomsDep, _: AdminActor) -> list[RoomOut]:
    """Every room with its grid size and how many machines are in it and online."""
    return await rooms.list_rooms()


@router.post("", response_model=RoomOut, status_code=201)
async def create_room(body: RoomCreate, rooms: RoomsDep, actor: AdminActor) -> RoomOut:
    return await rooms.create(body, actor=actor)


@router.get("/{name}", response_model=RoomLayout)
async def get_room(name: RoomPath, rooms: RoomsDep, _: AdminActor) -> RoomLayout:
    """The room and the seat ("ROW-COL") of every machine in it."""
    return await rooms.layout(name)


@router.patch("/{name}", response_model=RoomOut)
async def update_room(
    name: RoomPath, patch: RoomPatch, rooms: RoomsDep, actor: AdminActor
) -> RoomOut:
    """Rename or resize; machines off a smaller grid lose their seat, not their room."""
    return await rooms.update(name, patch, actor=actor)


@router.delete("/{name}", status_code=204)
async def delete_room(name: RoomPath, rooms: RoomsDep, actor: AdminActor) -> Response:
    """Remove the room; its machines become unplaced."""
    await rooms.delete(name, actor=actor)
    return Response(status_code=204)


@router.put("/{name}/layout", response_model=RoomLayout)
async def set_layout(
    name: RoomPath, body: LayoutUpdate, rooms: RoomsDep, actor: AdminActor
) -> RoomLayout:
    """Seat machines in this room: ``{"seats": {"lab-01": "1-1", "lab-02": null}}``."""
    return await rooms.set_layout(name, body, actor=actor)
