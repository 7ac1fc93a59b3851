"""Live progress of running runs: their output so far and how far they got."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import RunState
from wcms.server.store.records import mapper
from wcms.server.store.tables import command_runs, commands

LIVE = (RunState.DELIVERED.value, RunState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class LiveRun:
    """A delivered or running run attempt, with its command's sealed secrets."""

    id: int
    machine_id: str
    relay_id: str | None
    state: str
    stdout: str | None
    stderr: str | None
    sealed_secrets: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """What to store of a progress report; None leaves a column as it is."""

    stdout: str | None = None
    stderr: str | None = None
    percent: float | None = None
    note: str | None = None


_live = mapper(LiveRun)


async def live_run(conn: AsyncConnection, run_id: int, attempt: int) -> LiveRun | None:
    """The run attempt while it is delivered or running."""
    query = (
        select(
            command_runs.c.id,
            command_runs.c.machine_id,
            command_runs.c.relay_id,
            command_runs.c.state,
            command_runs.c.stdout,
            command_runs.c.stderr,
            commands.c.sealed_secrets,
        )
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.id == run_id,
            command_runs.c.attempt == attempt,
            command_runs.c.state.in_(LIVE),
        )
    )
    row = (await conn.execute(query)).first()
    return _live(row) if row is not None else None


async def save(conn: AsyncConnection, run_id: int, attempt: int, progress: Progress) -> None:
    """Store live output/progress unless the run has finished meanwhile."""
    changes = {
        column: value
        for column, value in (
            ("stdout", progress.stdout),
            ("stderr", progress.stderr),
            ("progress", progress.percent),
            ("progress_note", progress.note),
        )
        if value is not None
    }
    if not changes:
        return
    await conn.execute(
        update(command_runs)
        .where(
            command_runs.c.id == run_id,
            command_runs.c.attempt == attempt,
            command_runs.c.state.in_(LIVE),
        )
        .values(**changes)
    )
