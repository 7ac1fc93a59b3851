"""Admin API: programs (game servers) that agents supervise."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wcms.protocol.program_admin import (
    ProgramCreate,
    ProgramEventOut,
    ProgramHistory,
    ProgramOut,
    ProgramPatch,
)
from wcms.server.api.deps import AdminActor, ProgramsDep
from wcms.server.services.clock import utcnow
from wcms.server.services.programs import Goal
from wcms.server.services.programs.history import window

router = APIRouter(prefix="/api/programs", tags=["programs"])

MachinePath = Annotated[str, Path(min_length=1, max_length=128, description="Machine id")]
NamePath = Annotated[str, Path(min_length=1, max_length=64, description="Program name")]
WaitQuery = Annotated[
    float,
    Query(
        ge=0,
        le=300,
        description="Seconds to wait for the agent to report the state asked for (running "
        "or stopped); the answer's state tells whether it was reached",
    ),
]


@router.get("", response_model=list[ProgramOut])
async def list_programs(
    programs: ProgramsDep,
    _: AdminActor,
    selector: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=512,
            description="Machines as for commands (id, hostname, room:NAME, tag:NAME, "
            "online, all); every program without",
        ),
    ] = None,
) -> list[ProgramOut]:
    return await programs.list_programs(selector)


@router.post("", response_model=ProgramOut, status_code=201)
async def create_program(
    body: ProgramCreate, programs: ProgramsDep, actor: AdminActor
) -> ProgramOut:
    """Define a program on a machine; its preset fills what the body leaves out."""
    return await programs.create(body, actor=actor)


@router.get("/{machine}/{name}", response_model=ProgramOut)
async def get_program(
    machine: MachinePath, name: NamePath, programs: ProgramsDep, _: AdminActor
) -> ProgramOut:
    return await programs.get(machine, name)


@router.patch("/{machine}/{name}", response_model=ProgramOut)
async def update_program(
    machine: MachinePath,
    name: NamePath,
    patch: ProgramPatch,
    programs: ProgramsDep,
    actor: AdminActor,
) -> ProgramOut:
    return await programs.update(machine, name, patch, actor=actor)


@router.delete("/{machine}/{name}", status_code=204)
async def remove_program(
    machine: MachinePath, name: NamePath, programs: ProgramsDep, actor: AdminActor
) -> Response:
    """Forget the program; its agent stops it."""
    await programs.remove(machine, name, actor=actor)
    return Response(status_code=204)


@router.post("/{machine}/{name}/start", response_model=ProgramOut)
async def start_program(
    machine: MachinePath,
    name: NamePath,
    programs: ProgramsDep,
    actor: AdminActor,
    wait: WaitQuery = 0,
) -> ProgramOut:
    return await _act(programs, "start", programs.start(machine, name, actor=actor), wait)


@router.post("/{machine}/{name}/stop", response_model=ProgramOut)
async def stop_program(
    machine: MachinePath,
    name: NamePath,
    programs: ProgramsDep,
    actor: AdminActor,
    wait: WaitQuery = 0,
) -> ProgramOut:
    return await _act(programs, "stop", programs.stop(machine, name, actor=actor), wait)


@router.post("/{machine}/{name}/restart", response_model=ProgramOut)
async def restart_program(
    machine: MachinePath,
    name: NamePath,
    programs: ProgramsDep,
    actor: AdminActor,
    wait: WaitQuery = 0,
) -> ProgramOut:
    return await _act(programs, "restart", programs.restart(machine, name, actor=actor), wait)


async def _act(
    programs: ProgramsDep, action: str, asked: Awaitable[ProgramOut], wait: float
) -> ProgramOut:
    """Ask for the change, then wait up to ``wait`` s for the agent to report it."""
    since = utcnow()
    out = await asked
    return await _waited(programs, out, Goal.of(action, out, since=since), wait)


@router.get("/{machine}/{name}/events", response_model=list[ProgramEventOut])
async def program_events(
    machine: MachinePath,
    name: NamePath,
    programs: ProgramsDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ProgramEventOut]:
    """The program's newest state changes, oldest first."""
    return await programs.events(machine, name, limit=limit)


@router.get("/{machine}/{name}/history", response_model=ProgramHistory)
async def program_history(
    machine: MachinePath,
    name: NamePath,
    programs: ProgramsDep,
    _: AdminActor,
    hours: Annotated[float, Query(gt=0, le=2160, description="How far back (90 days at most)")] = 1,
) -> ProgramHistory:
    """The program's CPU percent, memory and players while it ran, in about 360 buckets
    as parallel arrays ready for a chart: CPU averaged, memory and players averaged and
    at their highest."""
    since, bucket_s = window(hours, now=utcnow())
    return await programs.history(machine, name, since=since, bucket_s=bucket_s)


async def _waited(programs: ProgramsDep, out: ProgramOut, goal: Goal, wait: float) -> ProgramOut:
    if not wait:
        return out
    return await programs.wait(out.machine, out.name, goal, timeout_s=wait)
