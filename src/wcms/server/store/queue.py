"""The run queue: runs waiting for their machine (to be handed over) or for time (to
expire or time out)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import RunState
from wcms.server.store.records import mapper
from wcms.server.store.tables import command_runs, commands


@dataclass(frozen=True, slots=True)
class PendingRun:
    """A run to hand to an agent, with what its envelope needs from its command."""

    run_id: int
    attempt: int
    state: str
    machine_id: str
    run_expires_at: datetime | None
    command_id: int
    type: str
    # Free-form: the action's payload, validated when the command was created.
    payload: dict[str, Any]
    sealed_secrets: str | None
    timeout_s: float
    priority: int


_pending = mapper(PendingRun)
_PENDING_COLUMNS = [
    command_runs.c.id.label("run_id"),
    command_runs.c.attempt,
    command_runs.c.state,
    command_runs.c.machine_id,
    command_runs.c.expires_at.label("run_expires_at"),
    commands.c.id.label("command_id"),
    commands.c.type,
    commands.c.payload,
    commands.c.sealed_secrets,
    commands.c.timeout_s,
    commands.c.priority,
]


async def pending_for_machines(
    conn: AsyncConnection, machine_ids: Iterable[str], *, now: datetime
) -> dict[str, list[PendingRun]]:
    """Runs each machine should (re)receive: queued or delivered, unexpired, best first."""
    query = (
        select(*_PENDING_COLUMNS)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.machine_id.in_(list(machine_ids)),
            command_runs.c.state.in_([RunState.QUEUED.value, RunState.DELIVERED.value]),
            or_(command_runs.c.expires_at.is_(None), command_runs.c.expires_at > now),
        )
        .order_by(command_runs.c.priority.desc(), command_runs.c.id)
    )
    pending: dict[str, list[PendingRun]] = {}
    for run in map(_pending, await conn.execute(query)):
        pending.setdefault(run.machine_id, []).append(run)
    return pending


async def pending_by_ids(conn: AsyncConnection, run_ids: Sequence[int]) -> list[PendingRun]:
    query = (
        select(*_PENDING_COLUMNS)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.id.in_(run_ids))
    )
    return [_pending(row) for row in await conn.execute(query)]


async def expired_queued(conn: AsyncConnection, *, now: datetime) -> list[int]:
    result = await conn.execute(
        select(command_runs.c.id).where(
            command_runs.c.state == RunState.QUEUED.value,
            command_runs.c.expires_at.is_not(None),
            command_runs.c.expires_at <= now,
        )
    )
    return [int(run_id) for run_id in result.scalars()]


async def overdue(conn: AsyncConnection, state: RunState, *, now: datetime) -> list[int]:
    """Runs in ``state`` past their deadline: delivered ones their agent never
    acknowledged, running ones whose result did not come in time."""
    result = await conn.execute(
        select(command_runs.c.id).where(
            command_runs.c.state == state.value,
            command_runs.c.deadline_at.is_not(None),
            command_runs.c.deadline_at <= now,
        )
    )
    return [int(run_id) for run_id in result.scalars()]
