"""The fleet as the alert engine reads it: every machine with its presence, tags and
latest measurements, the programs, and the command runs that failed lately. Columns
only the rules need, read once per evaluation for all of them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper
from wcms.server.store.tables import (
    command_runs,
    commands,
    machine_status,
    machine_tags,
    machines,
    programs,
)


@dataclass(frozen=True, slots=True)
class MachineFacts:
    id: str
    hostname: str
    room: str | None
    status: str
    status_reason: str | None
    status_changed_at: datetime | None
    # Free-form: who else claimed this machine id (see store.machines).
    conflict: dict[str, Any] | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    machine_id: str
    name: str
    desired: str
    state: str
    troubled: bool
    restarts: int
    rss_bytes: int | None
    # Free-form: the agent's ProgramExit of its last run, as JSON.
    last_exit: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FailedRun:
    id: int
    command_id: int
    type: str
    machine_id: str
    state: str
    exit_code: int | None
    error: str | None
    finished_at: datetime


_machine = mapper(MachineFacts, omit=("tags",))
_program = mapper(ProgramFacts)


async def machine_facts(conn: AsyncConnection) -> list[MachineFacts]:
    tags: defaultdict[str, list[str]] = defaultdict(list)
    for machine_id, tag in await conn.execute(
        select(machine_tags.c.machine_id, machine_tags.c.tag)
    ):
        tags[machine_id].append(tag)
    result = await conn.execute(select(*columns(machines, MachineFacts, omit=("tags",))))
    found = [_machine(row) for row in result]
    return [replace(m, tags=tuple(tags[m.id])) if m.id in tags else m for m in found]


# Free-form: each report is the stored JSON of a StatusReport.
async def latest_reports(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    result = await conn.execute(select(machine_status.c.machine_id, machine_status.c.report))
    return {machine_id: report for machine_id, report in result}


async def program_facts(conn: AsyncConnection) -> list[ProgramFacts]:
    result = await conn.execute(select(*columns(programs, ProgramFacts)))
    return [_program(row) for row in result]


async def failed_runs(conn: AsyncConnection, *, since: datetime) -> list[FailedRun]:
    """Runs that failed or timed out at or after ``since``, oldest first."""
    query = (
        select(
            command_runs.c.id,
            command_runs.c.command_id,
            commands.c.type,
            command_runs.c.machine_id,
            command_runs.c.state,
            command_runs.c.exit_code,
            command_runs.c.error,
            command_runs.c.finished_at,
        )
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.state.in_(("failed", "timed_out")),
            command_runs.c.finished_at >= since,
        )
        .order_by(command_runs.c.finished_at, command_runs.c.id)
    )
    return [FailedRun(*row) for row in await conn.execute(query)]


async def machines_by_id(conn: AsyncConnection, ids: set[str]) -> dict[str, MachineFacts]:
    """Some machines, with their tags, by id."""
    if not ids:
        return {}
    wanted = list(ids)
    tags: defaultdict[str, list[str]] = defaultdict(list)
    result = await conn.execute(
        select(machine_tags.c.machine_id, machine_tags.c.tag).where(
            machine_tags.c.machine_id.in_(wanted)
        )
    )
    for machine_id, tag in result:
        tags[machine_id].append(tag)
    query = select(*columns(machines, MachineFacts, omit=("tags",))).where(
        machines.c.id.in_(wanted)
    )
    found = [_machine(row) for row in await conn.execute(query)]
    return {m.id: replace(m, tags=tuple(tags[m.id])) for m in found}
