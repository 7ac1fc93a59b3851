"""Dashboard pages about the fleet: overview, rooms, the layout editor, machines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from wcms.protocol import MachineOut
from wcms.protocol.rooms import RoomCreate, RoomPatch
from wcms.server.api.deps import ActivityDep, CommandsDep, MachinesDep, ProgramsDep, RoomsDep
from wcms.server.errors import BadRequest
from wcms.server.services.activity import Activity
from wcms.server.services.machines import Machines
from wcms.server.services.rooms import Rooms, parse_seat
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.forms import command_forms
from wcms.server.web.programs import form_context, machine_programs
from wcms.server.web.render import address, render, whole_number

router = APIRouter(include_in_schema=False)

MachineId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
RoomName = Annotated[str, Path(min_length=1, max_length=128)]
PAGE_SIZE = 100
MAX_PAGE = 1_000_000
SORTS: dict[str, Callable[[MachineOut], Any]] = {
    "name": lambda m: (m.hostname.casefold(), m.id),
    "room": lambda m: (m.room or "\uffff", seat_key(m.seat), m.hostname.casefold()),
    "status": lambda m: (m.status != "online", m.hostname.casefold()),
    "cpu": lambda m: -(m.last_status.cpu_percent if m.last_status else -1),
    "ram": lambda m: -(m.last_status.ram_percent if m.last_status else -1),
    "seen": lambda m: -(m.last_seen_at.timestamp() if m.last_seen_at else 0),
}


def seat_key(seat: str | None) -> tuple[int, int]:
    return parse_seat(seat) or (9999, 9999)


@router.get("/")
async def overview(
    request: Request, rooms: RoomsDep, activity: ActivityDep, user: WebUser
) -> Response:
    context = await _overview(rooms, activity)
    return render(request, "overview.html", title="Overview", user=user, **context)


@router.get("/fragments/overview")
async def overview_fragment(
    request: Request, rooms: RoomsDep, activity: ActivityDep, _: WebUser
) -> Response:
    return render(request, "overview_body.html", **await _overview(rooms, activity))


async def _overview(room_service: Rooms, activity: Activity) -> dict[str, Any]:
    rooms = await room_service.list_rooms()
    unplaced, unplaced_online = await room_service.unplaced()
    total = sum(r.machines for r in rooms) + unplaced
    online = sum(r.online for r in rooms) + unplaced_online
    events = await activity.recent(limit=25)
    return {
        "rooms": rooms,
        "unplaced": unplaced,
        "total": total,
        "online": online,
        "events": events,
    }


@router.get("/rooms")
async def rooms_page(request: Request, room_service: RoomsDep, user: WebUser) -> Response:
    rooms = await room_service.list_rooms()
    return render(request, "rooms.html", title="Rooms", user=user, rooms=rooms)


@router.get("/rooms/{name}")
async def room_page(
    name: RoomName, request: Request, rooms: RoomsDep, machines: MachinesDep, user: WebUser
) -> Response:
    context = await _room_map(rooms, machines, name)
    return render(
        request,
        "room.html",
        title=name,
        user=user,
        forms=command_forms(),
        live_status=True,
        **context,
    )


@router.get("/rooms/{name}/map")
async def room_map(
    name: RoomName, request: Request, rooms: RoomsDep, machines: MachinesDep, _: WebUser
) -> Response:
    return render(request, "room_map.html", **await _room_map(rooms, machines, name))


async def _room_map(rooms: Rooms, machine_service: Machines, name: str) -> dict[str, Any]:
    layout = await rooms.layout(name)
    machines = await machine_service.list_machines(room=name)
    cells: dict[tuple[int, int], MachineOut] = {}
    tray: list[MachineOut] = []
    for machine in machines:
        place = parse_seat(machine.seat)
        if place and place[0] <= layout.room.rows and place[1] <= layout.room.cols:
            cells[place] = machine
        else:
            tray.append(machine)
    return {"room": layout.room, "cells": cells, "tray": tray, "machines": machines}


@router.get("/layout/editor")
async def layout_editor(
    request: Request,
    room_service: RoomsDep,
    machine_service: MachinesDep,
    user: WebUser,
    room: str | None = None,
) -> Response:
    rooms = await room_service.list_rooms()
    current = next((r for r in rooms if r.name == room), rooms[0] if rooms else None)
    machines = await machine_service.list_machines()
    placed = [m for m in machines if current and m.room == current.name]
    unplaced = [m for m in machines if m.room is None]
    return render(
        request,
        "layout.html",
        title="Layout editor",
        user=user,
        rooms=rooms,
        current=current,
        machines=[
            {"id": m.id, "hostname": m.hostname, "status": m.status, "seat": m.seat}
            for m in placed + unplaced
        ],
        seats={m.id: m.seat for m in placed if parse_seat(m.seat)},
    )


@router.post("/layout/rooms")
async def create_room(rooms: RoomsDep, actor: WebActor, form: CheckedForm) -> Response:
    body = _room_body(RoomCreate, form)
    await rooms.create(body, actor=actor)
    return RedirectResponse(f"/layout/editor?room={body.name}", status_code=303)


@router.post("/layout/rooms/{name}")
async def update_room(
    name: RoomName, rooms: RoomsDep, actor: WebActor, form: CheckedForm
) -> Response:
    room = await rooms.update(name, _room_body(RoomPatch, form), actor=actor)
    return RedirectResponse(f"/layout/editor?room={room.name}", status_code=303)


@router.post("/layout/rooms/{name}/delete")
async def delete_room(name: RoomName, rooms: RoomsDep, actor: WebActor, _: CheckedForm) -> Response:
    await rooms.delete(name, actor=actor)
    return RedirectResponse("/layout/editor", status_code=303)


def _room_body(model: Any, form: Any) -> Any:
    values = {k: form.get(k) for k in ("name", "rows", "cols") if form.get(k) not in (None, "")}
    try:
        return model.model_validate(values)
    except ValueError as exc:
        error = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in error["loc"])
        raise BadRequest(f"{where}: {error['msg']}", field=where) from None


@router.get("/machines")
async def machines_page(
    request: Request, machines: MachinesDep, room_service: RoomsDep, user: WebUser
) -> Response:
    context = await _machine_table(machines, request)
    rooms = await room_service.list_rooms()
    return render(
        request,
        "machines.html",
        title="Machines",
        live_status=True,
        user=user,
        rooms=rooms,
        forms=command_forms(),
        **context,
    )


@router.get("/machines/table")
async def machines_table(request: Request, machines: MachinesDep, _: WebUser) -> Response:
    """The table as its filters or pager refresh it; the address bar follows, so a
    reload, a bookmark or Back shows the same list (not this fragment)."""
    context = await _machine_table(machines, request)
    response = render(request, "machines_table.html", **context)
    defaults = {"page": "1", "sort": "room"}
    shown = {k: v for k, v in context["q"].items() if defaults.get(k) != v}
    response.headers["HX-Replace-Url"] = address("/machines", shown)
    return response


async def _machine_table(machine_service: Machines, request: Request) -> dict[str, Any]:
    query = _filters(request)
    machines = await filtered_machines(machine_service, query)
    page = max(1, int(query["page"] or 1))
    start = (page - 1) * PAGE_SIZE
    return {
        "q": query,
        "rows": machines[start : start + PAGE_SIZE],
        "matching": len(machines),
        "page": page,
        "pages": max(1, -(-len(machines) // PAGE_SIZE)),
    }


def _filters(request: Request) -> dict[str, str]:
    params = request.query_params
    query = {k: params.get(k, "").strip()[:128] for k in ("q", "room", "tag", "status", "sort")}
    query["page"] = str(whole_number(params.get("page", ""), maximum=MAX_PAGE) or 1)
    return query


async def filtered_machines(service: Machines, query: dict[str, str]) -> list[MachineOut]:
    """Machines matching the list page's filters, sorted as asked."""
    unplaced = query["room"] == "-"  # the list's name for "in no room"
    machines = await service.list_machines(
        room=None if unplaced else query["room"] or None,
        tag=query["tag"] or None,
        status=query["status"] or None,
    )
    if unplaced:
        machines = [m for m in machines if m.room is None]
    needle = query["q"].casefold()
    if needle:
        machines = [m for m in machines if needle in _haystack(m)]
    machines.sort(key=SORTS.get(query["sort"], SORTS["room"]))
    return machines


def _haystack(machine: MachineOut) -> str:
    users = machine.last_status.users if machine.last_status else []
    parts = [machine.id, machine.hostname, machine.ip or "", machine.os, *machine.tags, *users]
    return " ".join(parts).casefold()


@router.get("/pc/{machine_id}")
async def machine_page(
    machine_id: MachineId,
    request: Request,
    machines: MachinesDep,
    commands: CommandsDep,
    programs: ProgramsDep,
    user: WebUser,
) -> Response:
    machine = await machines.get(machine_id)
    presence = await machines.presence_history(machine_id, limit=50)
    runs = await commands.machine_runs(machine_id, limit=30)
    return render(
        request,
        "machine.html",
        title=machine.hostname,
        live_status=True,
        live_programs=True,
        user=user,
        m=machine,
        presence=presence,
        runs=runs,
        forms=command_forms(),
        programs=await machine_programs(programs, machine_id),
        values={},
        errors={},
        **form_context(),
    )


@router.get("/pc/{machine_id}/history")
async def machine_history(machine_id: MachineId) -> Response:
    return RedirectResponse(f"/pc/{machine_id}#history", status_code=307)


@router.get("/pc/{machine_id}/runs")
async def machine_runs(
    machine_id: MachineId, request: Request, commands: CommandsDep, _: WebUser
) -> Response:
    runs = await commands.machine_runs(machine_id, limit=30)
    return render(request, "machine_runs.html", runs=runs)
