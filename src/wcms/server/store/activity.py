"""Recent happenings across the fleet: presence transitions and failed runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import command_runs, commands, machines, presence_events

FAILED = ("failed", "timed_out", "expired")


async def recent_presence(conn: AsyncConnection, *, limit: int) -> Sequence[Any]:
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
    return (await conn.execute(query)).all()


async def recent_failures(conn: AsyncConnection, *, limit: int) -> Sequence[Any]:
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
    return (await conn.execute(query)).all()
