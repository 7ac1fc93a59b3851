"""Commands as the admin sent them, born with one run per target machine, and the
reads that show them.

The runs' lifecycle after their birth (delivery, reports, retries, the sweep) is in
:mod:`wcms.server.store.runs`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import CommandFilter, RunState
from wcms.server.store import bulk
from wcms.server.store.records import columns, mapper, values
from wcms.server.store.runs import FINAL, RunRecord, add_events, run_record
from wcms.server.store.tables import command_runs, commands, machines


@dataclass(frozen=True, slots=True)
class NewCommand:
    type: str
    selector: str
    # Free-form: the action's payload, validated by its protocol model, secrets removed.
    payload: dict[str, Any]
    sealed_secrets: str | None
    priority: int
    timeout_s: float
    max_retries: int
    # Safe to run twice: a run its agent was interrupted in is retried too.
    idempotent: bool
    expires_at: datetime | None
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class CommandRecord(NewCommand):
    """A stored command: what was sent, and its id."""

    id: int


@dataclass(frozen=True, slots=True)
class Births:
    """How each run of a new command is born: queued, unless its machine is in
    ``delivered`` (about to be pushed to its live agent, with ``deadline``) or in
    ``refusals`` (failed at once, with the reason). ``relays`` names the machine whose
    agent carries out a run for another (a wake)."""

    machine_ids: Sequence[str]
    delivered: Collection[str] = ()
    deadline: datetime | None = None
    relays: Mapping[str, str] | None = None
    refusals: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class MachineRun:
    """A run with its command's type and the machine's current host name."""

    run: RunRecord
    type: str
    hostname: str | None


_command = mapper(CommandRecord)


async def create(
    conn: AsyncConnection, command: NewCommand, births: Births
) -> tuple[int, list[tuple[int, str]]]:
    """Insert a command and one run per machine; returns (id, [(run_id, machine)]).

    Each run is born in its state with both of its events: no second write per run."""
    delivered = set(births.delivered)
    relays = births.relays or {}
    refusals = births.refusals or {}
    at = command.created_at
    inserted = await conn.execute(
        insert(commands).values(**values(command)).returning(commands.c.id)
    )
    command_id = int(inserted.scalar_one())
    rows = []
    for machine_id in births.machine_ids:
        refusal = refusals.get(machine_id)
        sent = refusal is None and machine_id in delivered
        state = RunState.FAILED if refusal else RunState.DELIVERED if sent else RunState.QUEUED
        rows.append(
            {
                "command_id": command_id,
                "machine_id": machine_id,
                "state": state.value,
                "attempt": 1,
                "priority": command.priority,
                "expires_at": command.expires_at,
                "created_at": at,
                "relay_id": relays.get(machine_id),
                "delivered_at": at if sent else None,
                "deadline_at": births.deadline if sent else None,
                "finished_at": at if refusal else None,
                "error": refusal,
            }
        )
    born = await bulk.insert_rows(conn, command_runs, rows, returning=("id", "machine_id"))
    runs = sorted((int(run_id), str(machine_id)) for run_id, machine_id in born)
    then = [
        (run_id, RunState.FAILED, refusals[m])
        if m in refusals
        else (run_id, RunState.DELIVERED, None)
        for run_id, m in runs
        if m in refusals or m in delivered
    ]
    await add_events(conn, [*((run_id, RunState.QUEUED, None) for run_id, _ in runs), *then], at=at)
    return command_id, runs


async def get_command(conn: AsyncConnection, command_id: int) -> CommandRecord | None:
    result = await conn.execute(
        select(*columns(commands, CommandRecord)).where(commands.c.id == command_id)
    )
    row = result.first()
    return _command(row) if row is not None else None


_FAILED = (RunState.FAILED, RunState.TIMED_OUT, RunState.EXPIRED)


async def list_commands(
    conn: AsyncConnection,
    *,
    limit: int,
    before_id: int | None = None,
    where: CommandFilter = CommandFilter(),
) -> list[CommandRecord]:
    query = select(*columns(commands, CommandRecord)).order_by(commands.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(commands.c.id < before_id)
    if where.type:
        query = query.where(commands.c.type == where.type)
    if where.created_by:
        query = query.where(commands.c.created_by == where.created_by)
    if where.selector:
        query = query.where(commands.c.selector.contains(where.selector, autoescape=True))
    if where.state:
        query = query.where(_in_state(where.state))
    return [_command(row) for row in await conn.execute(query)]


def _in_state(state: str) -> Any:
    run = command_runs.alias("run")
    of_command = run.c.command_id == commands.c.id
    if state == "active":
        return exists().where(of_command, run.c.state.not_in(FINAL))
    if state == "failed":
        return exists().where(of_command, run.c.state.in_(_FAILED))
    if state == "cancelled":
        return exists().where(of_command, run.c.state == RunState.CANCELLED)
    if state == "succeeded":
        return exists().where(of_command) & ~exists().where(
            of_command, run.c.state != RunState.SUCCEEDED
        )
    raise ValueError(f"unknown command state {state!r}")


async def summaries(conn: AsyncConnection, command_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """How many runs of each command are in each state."""
    if not command_ids:
        return {}
    result = await conn.execute(
        select(command_runs.c.command_id, command_runs.c.state, func.count())
        .where(command_runs.c.command_id.in_(command_ids))
        .group_by(command_runs.c.command_id, command_runs.c.state)
    )
    out: dict[int, dict[str, int]] = {command_id: {} for command_id in command_ids}
    for command_id, state, count in result:
        out[int(command_id)][state] = int(count)
    return out


async def runs_of(conn: AsyncConnection, command: CommandRecord) -> list[MachineRun]:
    """Every run of ``command``, in run order."""
    query = (
        select(command_runs, machines.c.hostname)
        .outerjoin(machines, machines.c.id == command_runs.c.machine_id)
        .where(command_runs.c.command_id == command.id)
        .order_by(command_runs.c.id)
    )
    return [
        MachineRun(run_record(row), command.type, row.hostname) for row in await conn.execute(query)
    ]


async def runs_for_machine(
    conn: AsyncConnection, machine_id: str, *, limit: int = 50
) -> list[MachineRun]:
    """The machine's newest runs, newest first."""
    query = (
        select(command_runs, commands.c.type, machines.c.hostname)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .outerjoin(machines, machines.c.id == command_runs.c.machine_id)
        .where(command_runs.c.machine_id == machine_id)
        .order_by(command_runs.c.id.desc())
        .limit(limit)
    )
    return [
        MachineRun(run_record(row), row.type, row.hostname) for row in await conn.execute(query)
    ]
