"""Recent happenings across the fleet: presence transitions and failed runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import RunState
from wcms.server.store.records import mapper
from wcms.server.store.tables import command_runs, commands, machines, presence_events

FAILED = (RunState.FAILED.value, RunState.TIMED_OUT.value, RunState.EXPIRED.value)


@dataclass(frozen=True, slots=True)
class PresenceHappening:
    machine_id: str
    hostname: str | None
    room: str | None
    status: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FailedRun:
    machine_id: str
    hostname: str | None
    room: str | None
    command_id: int
    type: str
    state: str
    error: str | None
    finished_at: datetime


_presence = mapper(PresenceHappening)
_failed = mapper(FailedRun)


async def recent_presence(conn: AsyncConnection, *, limit: int) -> list[PresenceHappening]:
    query = (
        select(
            presence_events.c.machine_id,
            machines.c.hostname,
            machines.c.room,
            presence_events.c.status,
            presence_events.c.reason,
            presence_events.c.at,
        )
        .join(machines, machines.c.id == presence_events.c.machine_id, isouter=True)
        .order_by(presence_events.c.id.desc())
        .limit(limit)
    )
    return [_presence(row) for row in await conn.execute(query)]


async def recent_failures(conn: AsyncConnection, *, limit: int) -> list[FailedRun]:
    query = (
        select(
            command_runs.c.machine_id,
            machines.c.hostname,
            machines.c.room,
            command_runs.c.command_id,
            commands.c.type,
            command_runs.c.state,
            command_runs.c.error,
            command_runs.c.finished_at,
        )
        .join(commands, commands.c.id == command_runs.c.command_id)
        .join(machines, machines.c.id == command_runs.c.machine_id, isouter=True)
        .where(command_runs.c.state.in_(FAILED), command_runs.c.finished_at.is_not(None))
        .order_by(command_runs.c.finished_at.desc())
        .limit(limit)
    )
    return [_failed(row) for row in await conn.execute(query)]
