"""Live progress of running runs, and the extras of runs beyond their lifecycle
(wake relays)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import RunState
from wcms.server.store.tables import command_runs, commands

LIVE = (RunState.DELIVERED.value, RunState.RUNNING.value)


async def live_run(conn: AsyncConnection, run_id: int, attempt: int) -> Row[Any] | None:
    """The run attempt while it is delivered or running, with its command's secrets."""
    columns: list[Any] = [
        command_runs.c.id,
        command_runs.c.machine_id,
        command_runs.c.relay_id,
        command_runs.c.state,
        command_runs.c.stdout,
        command_runs.c.stderr,
        commands.c.sealed_secrets,
    ]
    query = (
        select(*columns)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.id == run_id,
            command_runs.c.attempt == attempt,
            command_runs.c.state.in_(LIVE),
        )
    )
    return (await conn.execute(query)).first()


async def save(conn: AsyncConnection, run_id: int, attempt: int, values: dict[str, Any]) -> None:
    """Store live output/progress unless the run has finished meanwhile."""
    await conn.execute(
        update(command_runs)
        .where(
            command_runs.c.id == run_id,
            command_runs.c.attempt == attempt,
            command_runs.c.state.in_(LIVE),
        )
        .values(**values)
    )
