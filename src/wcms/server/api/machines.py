"""Admin API: machines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wcms.protocol import MachineOut, MachinePatch, PresenceEventOut, RunOut
from wcms.protocol.rooms import HistoryRange, StatusHistory
from wcms.server.api.deps import (
    AdminActor,
    CommandsDep,
    EnrollmentDep,
    HistoryDep,
    MachinesDep,
)

router = APIRouter(prefix="/api/machines", tags=["machines"])

MachineId = Annotated[
    str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$", description="Machine id")
]


@router.get("", response_model=list[MachineOut])
async def list_machines(
    machines: MachinesDep,
    _: AdminActor,
    room: str | None = None,
    tag: str | None = None,
    status: str | None = None,
) -> list[MachineOut]:
    return await machines.list_machines(room=room, tag=tag, status=status)


@router.get("/{machine_id}", response_model=MachineOut)
async def get_machine(machine_id: MachineId, machines: MachinesDep, _: AdminActor) -> MachineOut:
    return await machines.get(machine_id)


@router.patch("/{machine_id}", response_model=MachineOut)
async def patch_machine(
    machine_id: MachineId, patch: MachinePatch, machines: MachinesDep, actor: AdminActor
) -> MachineOut:
    return await machines.patch(machine_id, patch, actor=actor)


@router.delete("/{machine_id}", status_code=204)
async def delete_machine(
    machine_id: MachineId, machines: MachinesDep, actor: AdminActor
) -> Response:
    await machines.delete(machine_id, actor=actor)
    return Response(status_code=204)


@router.post("/{machine_id}/revoke")
async def revoke_machine(
    machine_id: MachineId, enrollment: EnrollmentDep, actor: AdminActor
) -> dict[str, object]:
    """Revoke the machine's agent credential: its agent is disconnected and refused."""
    revoked = await enrollment.revoke_machine(machine_id, actor=actor)
    return {"machine_id": machine_id, "revoked_credentials": len(revoked)}


@router.post("/{machine_id}/clear-conflict", status_code=204)
async def clear_conflict(
    machine_id: MachineId, machines: MachinesDep, actor: AdminActor
) -> Response:
    """Dismiss the duplicate-agent flag once the cloned machine has its own id."""
    await machines.clear_conflict(machine_id, actor=actor)
    return Response(status_code=204)


@router.get("/{machine_id}/presence", response_model=list[PresenceEventOut])
async def presence_history(
    machine_id: MachineId,
    machines: MachinesDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PresenceEventOut]:
    return await machines.presence_history(machine_id, limit=limit)


@router.get("/{machine_id}/runs", response_model=list[RunOut])
async def machine_runs(
    machine_id: MachineId,
    machines: MachinesDep,
    commands: CommandsDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunOut]:
    await machines.get(machine_id)
    return await commands.machine_runs(machine_id, limit=limit)


@router.get("/{machine_id}/history", response_model=StatusHistory)
async def status_history(
    machine_id: MachineId,
    history: HistoryDep,
    _: AdminActor,
    span: Annotated[HistoryRange, Query(alias="range")] = "1h",
) -> StatusHistory:
    """CPU, RAM and fullest-disk percentages over 1h, 24h, 7d or 90d, averaged into
    about 360 buckets, as parallel arrays ready for a chart."""
    return await history.status(machine_id, range_=span)
