"""Admin API: commands."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from wcms.protocol import CommandCreate, CommandOut
from wcms.protocol.bounds import INT64_MAX
from wcms.protocol.bulk import BulkCommandCreate
from wcms.protocol.commands import CommandFilter
from wcms.server.api.deps import AdminActor, CommandsDep

router = APIRouter(prefix="/api/commands", tags=["commands"])

CommandId = Annotated[int, Path(ge=1, le=2**62, description="Command id")]


@router.post("", response_model=CommandOut, status_code=201)
async def create_command(
    request: CommandCreate, commands: CommandsDep, actor: AdminActor
) -> CommandOut:
    """Send a command to every machine the selector matches."""
    command_id = await commands.create(request, actor=actor)
    return await commands.get(command_id)


@router.post("/bulk", response_model=CommandOut, status_code=201)
async def create_bulk_command(
    request: BulkCommandCreate, commands: CommandsDep, actor: AdminActor
) -> CommandOut:
    """Send a command to the machines listed in ``targets`` (a selection of any size)."""
    command_id = await commands.create(request, actor=actor)
    return await commands.get(command_id)


@router.get("", response_model=list[CommandOut])
async def list_commands(
    commands: CommandsDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    type: Annotated[str | None, Query(max_length=64, description="Of this type")] = None,
    state: Annotated[
        Literal["active", "succeeded", "failed", "cancelled"] | None,
        Query(
            description="active: a run not finished; succeeded: every run succeeded; "
            "failed: a run failed, timed out or expired; cancelled: a run cancelled"
        ),
    ] = None,
    selector: Annotated[
        str | None, Query(max_length=512, description="Whose selector contains this")
    ] = None,
    created_by: Annotated[str | None, Query(max_length=128, description="Sent by")] = None,
) -> list[CommandOut]:
    """The newest commands first, matching every filter given."""
    where = CommandFilter(type=type, state=state, selector=selector, created_by=created_by)
    return await commands.list_commands(limit=limit, before_id=before_id, where=where)


@router.get("/{command_id}", response_model=CommandOut)
async def get_command(
    command_id: CommandId,
    commands: CommandsDep,
    _: AdminActor,
    events: bool = False,
    runs: Annotated[
        bool, Query(description="Include every run; false: only the summary of their states")
    ] = True,
    wait: Annotated[
        float, Query(ge=0, le=300, description="Seconds to wait for all runs to finish")
    ] = 0,
) -> CommandOut:
    """A command with every run; with ``wait`` the answer comes when all runs are final
    (or when the wait is over)."""
    if wait:
        await commands.wait(command_id, timeout_s=wait)
    return await commands.get(command_id, events=events, runs=runs)


@router.post("/{command_id}/cancel", response_model=CommandOut)
async def cancel_command(
    command_id: CommandId, commands: CommandsDep, actor: AdminActor
) -> CommandOut:
    await commands.cancel(command_id, actor=actor)
    return await commands.get(command_id)


@router.post("/{command_id}/retry", response_model=CommandOut)
async def retry_command(
    command_id: CommandId, commands: CommandsDep, actor: AdminActor
) -> CommandOut:
    await commands.retry(command_id, actor=actor)
    return await commands.get(command_id)
