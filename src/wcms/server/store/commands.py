"""Commands, their per-machine runs, and the run event log.

Every state change is a conditional UPDATE on the run's current state, so two workers
(or two replicas) racing on one run cannot both move it: the loser sees rowcount 0.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import TERMINAL_STATES, RunState
from wcms.server.store import bulk
from wcms.server.store.tables import command_events, command_runs, commands, machines

ACTIVE = (RunState.QUEUED, RunState.DELIVERED, RunState.RUNNING)
FINAL = tuple(TERMINAL_STATES)
# A run may move to a state only from these states: the lifecycle never goes back.
_FROM: dict[RunState, tuple[RunState, ...]] = {
    RunState.DELIVERED: (RunState.QUEUED,),
    RunState.RUNNING: (RunState.QUEUED, RunState.DELIVERED),
    RunState.SUCCEEDED: ACTIVE,
    RunState.FAILED: ACTIVE,
    RunState.TIMED_OUT: ACTIVE,
    RunState.CANCELLED: ACTIVE,
    RunState.EXPIRED: (RunState.QUEUED, RunState.DELIVERED),
}


async def create(
    conn: AsyncConnection,
    command: dict[str, Any],
    machine_ids: Sequence[str],
    *,
    delivered: Collection[str] = (),
    deadline: datetime | None = None,
    relays: Mapping[str, str] | None = None,
    refusals: Mapping[str, str] | None = None,
) -> tuple[int, list[tuple[int, str]]]:
    """Insert a command and one run per machine; returns (id, [(run_id, machine)]).

    A run is born queued; one for a machine in ``delivered`` (about to be pushed to
    its live agent) is born delivered with ``deadline``, and one in ``refusals``
    failed with that reason, each with both events: no second write per run."""
    delivered = set(delivered)
    relays = relays or {}
    refusals = refusals or {}
    at = command["created_at"]
    command_id = int(
        (
            await conn.execute(insert(commands).values(**command).returning(commands.c.id))
        ).scalar_one()
    )
    rows = []
    for machine_id in machine_ids:
        refusal = refusals.get(machine_id)
        sent = refusal is None and machine_id in delivered
        state = RunState.FAILED if refusal else RunState.DELIVERED if sent else RunState.QUEUED
        rows.append(
            {
                "command_id": command_id,
                "machine_id": machine_id,
                "state": state.value,
                "attempt": 1,
                "priority": command["priority"],
                "expires_at": command["expires_at"],
                "created_at": at,
                "relay_id": relays.get(machine_id),
                "delivered_at": at if sent else None,
                "deadline_at": deadline if sent else None,
                "finished_at": at if refusal else None,
                "error": refusal,
            }
        )
    inserted = await bulk.insert_rows(conn, command_runs, rows, returning=("id", "machine_id"))
    runs = sorted((int(run_id), str(machine_id)) for run_id, machine_id in inserted)
    then = [
        (run_id, RunState.FAILED, refusals[m])
        if m in refusals
        else (run_id, RunState.DELIVERED, None)
        for run_id, m in runs
        if m in refusals or m in delivered
    ]
    await add_events(conn, [*((run_id, RunState.QUEUED, None) for run_id, _ in runs), *then], at=at)
    return command_id, runs


async def add_events(
    conn: AsyncConnection,
    events: Iterable[tuple[int, RunState | str, str | None]],
    *,
    at: datetime,
) -> None:
    rows = [
        {"run_id": run_id, "state": str(state), "at": at, "detail": detail}
        for run_id, state, detail in events
    ]
    await bulk.insert_rows(conn, command_events, rows)


async def add_events_at(
    conn: AsyncConnection, events: Iterable[tuple[int, RunState | str, datetime]]
) -> None:
    """Events that each happened at their own time."""
    rows = [
        {"run_id": run_id, "state": str(state), "at": at, "detail": None}
        for run_id, state, at in events
    ]
    await bulk.insert_rows(conn, command_events, rows)


async def transition(
    conn: AsyncConnection,
    run_ids: Sequence[int],
    to: RunState,
    *,
    at: datetime,
    values: dict[str, Any] | None = None,
    attempt: int | None = None,
    detail: str | None = None,
    details: Mapping[int, str | None] | None = None,
) -> list[int]:
    """Move runs to ``to`` where the lifecycle allows it; returns the ids that moved.

    Each moved run's event gets ``details[run_id]`` when given, else ``detail``."""
    if not run_ids:
        return []
    query = update(command_runs).where(
        command_runs.c.id.in_(run_ids),
        command_runs.c.state.in_([s.value for s in _FROM[to]]),
    )
    if attempt is not None:
        query = query.where(command_runs.c.attempt == attempt)
    result = await conn.execute(
        query.values(state=to.value, **(values or {})).returning(command_runs.c.id)
    )
    moved = [int(run_id) for run_id in result.scalars()]
    details = details or {}
    await add_events(conn, [(run_id, to, details.get(run_id, detail)) for run_id in moved], at=at)
    return moved


async def set_results(conn: AsyncConnection, results: Mapping[int, dict[str, Any]]) -> None:
    """Store runs' result columns (exit code, output...), each run its own values."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, values in results.items():
        by_shape.setdefault(tuple(sorted(values)), []).append({"id": run_id, **values})
    for rows in by_shape.values():
        await bulk.update_rows(conn, command_runs, "id", rows)


async def undeliver(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, detail: str
) -> list[int]:
    """Delivered runs that never reached their agent: back to queued, same attempt."""
    if not run_ids:
        return []
    result = await conn.execute(
        update(command_runs)
        .where(command_runs.c.id.in_(run_ids), command_runs.c.state == RunState.DELIVERED.value)
        .values(state=RunState.QUEUED.value, delivered_at=None, deadline_at=None)
        .returning(command_runs.c.id)
    )
    moved = [int(run_id) for run_id in result.scalars()]
    await add_events(conn, [(run_id, RunState.QUEUED, detail) for run_id in moved], at=at)
    return moved


async def mark_delivered(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, slack: float
) -> list[int]:
    """queued -> delivered, setting the deadline by which a result must arrive."""
    if not run_ids:
        return []
    moved: list[int] = []
    rows = await conn.execute(
        select(command_runs.c.id, commands.c.timeout_s)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.id.in_(run_ids), command_runs.c.state == RunState.QUEUED.value)
    )
    by_timeout: dict[float, list[int]] = {}
    for run_id, timeout_s in rows:
        by_timeout.setdefault(float(timeout_s), []).append(int(run_id))
    for timeout_s, ids in by_timeout.items():
        moved += await transition(
            conn,
            ids,
            RunState.DELIVERED,
            at=at,
            values={"delivered_at": at, "deadline_at": at + timedelta(seconds=timeout_s + slack)},
        )
    return moved


def _run_columns() -> list[Any]:
    return [
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


async def pending_for_machine(
    conn: AsyncConnection, machine_id: str, *, now: datetime
) -> Sequence[Row[Any]]:
    """Runs the machine should (re)receive: queued or delivered, unexpired, best first."""
    query = (
        select(*_run_columns())
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.machine_id == machine_id,
            command_runs.c.state.in_([RunState.QUEUED.value, RunState.DELIVERED.value]),
            or_(command_runs.c.expires_at.is_(None), command_runs.c.expires_at > now),
        )
        .order_by(command_runs.c.priority.desc(), command_runs.c.id)
    )
    return (await conn.execute(query)).all()


async def runs_by_ids(conn: AsyncConnection, run_ids: Sequence[int]) -> Sequence[Row[Any]]:
    query = (
        select(*_run_columns())
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.id.in_(run_ids))
    )
    return (await conn.execute(query)).all()


async def runs_for_updates(conn: AsyncConnection, run_ids: Iterable[int]) -> dict[int, Row[Any]]:
    """Runs by id with what applying an agent's report needs from their command."""
    query = (
        select(
            command_runs,
            commands.c.max_retries,
            commands.c.timeout_s,
            commands.c.sealed_secrets,
        )
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.id.in_(list(run_ids)))
    )
    return {row.id: row for row in await conn.execute(query)}


async def pending_for_machines(
    conn: AsyncConnection, machine_ids: Iterable[str], *, now: datetime
) -> dict[str, list[Row[Any]]]:
    """Runs each machine should (re)receive: queued or delivered, unexpired, best first."""
    query = (
        select(*_run_columns())
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(
            command_runs.c.machine_id.in_(list(machine_ids)),
            command_runs.c.state.in_([RunState.QUEUED.value, RunState.DELIVERED.value]),
            or_(command_runs.c.expires_at.is_(None), command_runs.c.expires_at > now),
        )
        .order_by(command_runs.c.priority.desc(), command_runs.c.id)
    )
    pending: dict[str, list[Row[Any]]] = {}
    for row in await conn.execute(query):
        pending.setdefault(row.machine_id, []).append(row)
    return pending


async def get_command(conn: AsyncConnection, command_id: int) -> Row[Any] | None:
    return (await conn.execute(select(commands).where(commands.c.id == command_id))).first()


async def runs_of(conn: AsyncConnection, command_id: int) -> Sequence[Row[Any]]:
    query = (
        select(command_runs, machines.c.hostname)
        .outerjoin(machines, machines.c.id == command_runs.c.machine_id)
        .where(command_runs.c.command_id == command_id)
        .order_by(command_runs.c.id)
    )
    return (await conn.execute(query)).all()


async def events_of(conn: AsyncConnection, run_ids: Sequence[int]) -> Sequence[Row[Any]]:
    if not run_ids:
        return []
    query = (
        select(command_events)
        .where(command_events.c.run_id.in_(run_ids))
        .order_by(command_events.c.run_id, command_events.c.at, command_events.c.id)
    )
    return (await conn.execute(query)).all()


async def summaries(conn: AsyncConnection, command_ids: Sequence[int]) -> dict[int, dict[str, int]]:
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


async def list_commands(
    conn: AsyncConnection, *, limit: int, before_id: int | None = None
) -> Sequence[Row[Any]]:
    query = select(commands).order_by(commands.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(commands.c.id < before_id)
    return (await conn.execute(query)).all()


async def runs_for_machine(
    conn: AsyncConnection, machine_id: str, *, limit: int = 50
) -> Sequence[Row[Any]]:
    query = (
        select(command_runs, commands.c.type)
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.machine_id == machine_id)
        .order_by(command_runs.c.id.desc())
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def expired_queued(conn: AsyncConnection, *, now: datetime) -> list[int]:
    result = await conn.execute(
        select(command_runs.c.id).where(
            command_runs.c.state == RunState.QUEUED.value,
            command_runs.c.expires_at.is_not(None),
            command_runs.c.expires_at <= now,
        )
    )
    return [int(run_id) for run_id in result.scalars()]


async def overdue(conn: AsyncConnection, *, now: datetime) -> list[int]:
    """Delivered or running runs whose result deadline has passed."""
    result = await conn.execute(
        select(command_runs.c.id).where(
            command_runs.c.state.in_([RunState.DELIVERED.value, RunState.RUNNING.value]),
            command_runs.c.deadline_at.is_not(None),
            command_runs.c.deadline_at <= now,
        )
    )
    return [int(run_id) for run_id in result.scalars()]


async def requeue(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, detail: str
) -> list[int]:
    """Final runs back to queued as a new attempt (retry), clearing the old result."""
    if not run_ids:
        return []
    result = await conn.execute(
        update(command_runs)
        .where(command_runs.c.id.in_(run_ids), command_runs.c.state.in_([s.value for s in FINAL]))
        .values(
            state=RunState.QUEUED.value,
            attempt=command_runs.c.attempt + 1,
            delivered_at=None,
            started_at=None,
            finished_at=None,
            deadline_at=None,
            exit_code=None,
            stdout=None,
            stderr=None,
            stdout_truncated=False,
            stderr_truncated=False,
            duration_ms=None,
            error=None,
            result_data=None,
            progress=None,
            progress_note=None,
        )
        .returning(command_runs.c.id)
    )
    moved = [int(run_id) for run_id in result.scalars()]
    await add_events(conn, [(run_id, RunState.QUEUED, detail) for run_id in moved], at=at)
    return moved


async def extend_expiry(
    conn: AsyncConnection, run_ids: Sequence[int], *, expires_at: datetime | None
) -> None:
    if run_ids:
        await conn.execute(
            update(command_runs).where(command_runs.c.id.in_(run_ids)).values(expires_at=expires_at)
        )
