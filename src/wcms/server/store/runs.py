"""The lifecycle of runs (one per command and machine) and their event log.

Every state change is a conditional UPDATE on the run's current state, so two workers
(or two replicas) racing on one run cannot both move it: the loser sees rowcount 0.
What a state stamps on the run (``started_at`` for running, ``finished_at`` for a final
state, the delivery time and result deadline for delivered) follows from the state, so
no caller can move a run without its timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.commands import TERMINAL_STATES, RunState
from wcms.server.store import bulk
from wcms.server.store.records import columns, mapper
from wcms.server.store.tables import command_events, command_runs, commands

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


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    command_id: int
    machine_id: str
    state: str
    attempt: int
    priority: int
    expires_at: datetime | None
    deadline_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    stdout: str | None
    stderr: str | None
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: int | None
    error: str | None
    # Free-form: the action's structured result (a file id, a process list...).
    result_data: Any
    progress: float | None
    progress_note: str | None
    relay_id: str | None


@dataclass(frozen=True, slots=True)
class ReportedRun:
    """A run an agent reports on, with what applying the report needs."""

    id: int
    command_id: int
    machine_id: str
    relay_id: str | None
    state: str
    attempt: int
    delivered_at: datetime | None
    started_at: datetime | None
    max_retries: int
    idempotent: bool
    sealed_secrets: str | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class RunEvent:
    run_id: int
    state: str
    at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a finished run leaves: its output capped and masked, its structured result."""

    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: int | None
    error: str | None
    # Free-form: the action's structured result (a file id, a process list...).
    result_data: Any
    # When the run started, if its agent never said (a run that ended at once).
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """A transition: runs move ``to`` a state at ``at``."""

    to: RunState
    at: datetime
    # Only runs of this attempt move (an agent's report on an older attempt is stale).
    attempt: int | None = None
    # Why the run ended, stored on it (cancelled, expired, timed out).
    error: str | None = None
    # For ``delivered``: by when the agent must acknowledge the run (report it
    # running); for ``running``: by when its result must arrive.
    deadline: datetime | None = None
    # The event's detail: per run, else the one for all.
    detail: str | None = None
    details: Mapping[int, str | None] = field(default_factory=dict)


run_record = mapper(RunRecord)
_reported = mapper(ReportedRun)
_event = mapper(RunEvent)


async def add_events(
    conn: AsyncConnection,
    events: Iterable[tuple[int, RunState | str, str | None]],
    *,
    at: datetime,
) -> None:
    """(run id, state, detail) events that happened at ``at``."""
    rows = [
        {"run_id": run_id, "state": str(state), "at": at, "detail": detail}
        for run_id, state, detail in events
    ]
    await bulk.insert_rows(conn, command_events, rows)


async def transition(conn: AsyncConnection, run_ids: Sequence[int], move: Move) -> list[int]:
    """Move runs where the lifecycle allows it; returns the ids that moved."""
    if not run_ids:
        return []
    query = update(command_runs).where(
        command_runs.c.id.in_(run_ids),
        command_runs.c.state.in_([s.value for s in _FROM[move.to]]),
    )
    if move.attempt is not None:
        query = query.where(command_runs.c.attempt == move.attempt)
    result = await conn.execute(
        query.values(state=move.to.value, **_stamps(move)).returning(command_runs.c.id)
    )
    moved = [int(run_id) for run_id in result.scalars()]
    await add_events(
        conn,
        [(run_id, move.to, move.details.get(run_id, move.detail)) for run_id in moved],
        at=move.at,
    )
    return moved


# Column name -> value for the UPDATE that moves the runs.
def _stamps(move: Move) -> dict[str, Any]:
    if move.to == RunState.RUNNING:
        return {"started_at": move.at, "deadline_at": move.deadline}
    if move.to == RunState.DELIVERED:
        return {"delivered_at": move.at, "deadline_at": move.deadline}
    stamps: dict[str, Any] = {"finished_at": move.at}
    if move.error is not None:
        stamps["error"] = move.error
    return stamps


async def set_outcomes(conn: AsyncConnection, outcomes: Mapping[int, RunOutcome]) -> None:
    """Store finished runs' results, each run its own, in one statement per shape."""
    # Rows for bulk.update_rows (column name -> value), one list per shape.
    with_start: list[dict[str, Any]] = []
    without: list[dict[str, Any]] = []
    for run_id, outcome in outcomes.items():
        row = {
            "id": run_id,
            "exit_code": outcome.exit_code,
            "stdout": outcome.stdout,
            "stderr": outcome.stderr,
            "stdout_truncated": outcome.stdout_truncated,
            "stderr_truncated": outcome.stderr_truncated,
            "duration_ms": outcome.duration_ms,
            "error": outcome.error,
            "result_data": outcome.result_data,
        }
        if outcome.started_at is not None:
            with_start.append({**row, "started_at": outcome.started_at})
        else:
            without.append(row)
    for rows in (with_start, without):
        await bulk.update_rows(conn, command_runs, "id", rows)
    started = [(run_id, o.started_at) for run_id, o in outcomes.items() if o.started_at]
    await bulk.insert_rows(
        conn,
        command_events,
        [
            {"run_id": run_id, "state": RunState.RUNNING.value, "at": at, "detail": None}
            for run_id, at in started
        ],
    )


async def undeliver(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, detail: str
) -> list[int]:
    """Delivered runs that never reached their agent: back to queued, same attempt."""
    return await _back_to_queue(
        conn,
        run_ids,
        (RunState.DELIVERED,),
        {"delivered_at": None, "deadline_at": None},
        at=at,
        detail=detail,
    )


async def mark_delivered(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, ack_within: float
) -> list[int]:
    """queued -> delivered, to be acknowledged within ``ack_within`` seconds."""
    deadline = at + timedelta(seconds=ack_within)
    return await transition(conn, run_ids, Move(RunState.DELIVERED, at, deadline=deadline))


async def redeliver(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, ack_within: float, detail: str
) -> list[int]:
    """Delivered runs their agent never acknowledged, just offered again over a live
    link: still delivered, to be acknowledged within ``ack_within`` seconds of ``at``.
    Only runs still delivered and overdue move (an acknowledgement in between wins)."""
    if not run_ids:
        return []
    result = await conn.execute(
        update(command_runs)
        .where(
            command_runs.c.id.in_(run_ids),
            command_runs.c.state == RunState.DELIVERED.value,
            command_runs.c.deadline_at <= at,
        )
        .values(delivered_at=at, deadline_at=at + timedelta(seconds=ack_within))
        .returning(command_runs.c.id)
    )
    moved = [int(run_id) for run_id in result.scalars()]
    await add_events(conn, [(run_id, RunState.DELIVERED, detail) for run_id in moved], at=at)
    return moved


async def mark_running(
    conn: AsyncConnection,
    timeouts: Mapping[int, float],
    *,
    at: datetime,
    attempt: int,
    slack: float,
) -> list[int]:
    """-> running (the agent's acknowledgement), with the deadline by which a result
    must arrive: each run's command timeout (``timeouts``, by run id) from now, plus
    ``slack``."""
    by_timeout: dict[float, list[int]] = {}
    for run_id, timeout_s in timeouts.items():
        by_timeout.setdefault(float(timeout_s), []).append(run_id)
    moved: list[int] = []
    for timeout_s, ids in by_timeout.items():
        deadline = at + timedelta(seconds=timeout_s + slack)
        move = Move(RunState.RUNNING, at, attempt=attempt, deadline=deadline)
        moved += await transition(conn, ids, move)
    return moved


async def requeue(
    conn: AsyncConnection, run_ids: Sequence[int], *, at: datetime, detail: str
) -> list[int]:
    """Final runs back to queued as a new attempt (retry), clearing the old result."""
    cleared = {
        "attempt": command_runs.c.attempt + 1,
        "delivered_at": None,
        "started_at": None,
        "finished_at": None,
        "deadline_at": None,
        "exit_code": None,
        "stdout": None,
        "stderr": None,
        "stdout_truncated": False,
        "stderr_truncated": False,
        "duration_ms": None,
        "error": None,
        "result_data": None,
        "progress": None,
        "progress_note": None,
    }
    return await _back_to_queue(conn, run_ids, FINAL, cleared, at=at, detail=detail)


async def _back_to_queue(
    conn: AsyncConnection,
    run_ids: Sequence[int],
    states: Sequence[RunState],
    # Column name -> new value (or SQL expression) for the runs that go back.
    changes: Mapping[str, Any],
    *,
    at: datetime,
    detail: str,
) -> list[int]:
    """Runs in one of ``states`` back to queued, with ``changes``; the only moves the
    lifecycle table does not allow, each for its own reason (see the callers)."""
    if not run_ids:
        return []
    result = await conn.execute(
        update(command_runs)
        .where(command_runs.c.id.in_(run_ids), command_runs.c.state.in_([s.value for s in states]))
        .values(state=RunState.QUEUED.value, **changes)
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


async def reported(conn: AsyncConnection, run_ids: Iterable[int]) -> dict[int, ReportedRun]:
    """Runs by id with what applying an agent's report needs from their command."""
    query = (
        select(
            *columns(
                command_runs,
                ReportedRun,
                omit=("max_retries", "idempotent", "sealed_secrets", "timeout_s"),
            ),
            commands.c.max_retries,
            commands.c.idempotent,
            commands.c.sealed_secrets,
            commands.c.timeout_s,
        )
        .join(commands, commands.c.id == command_runs.c.command_id)
        .where(command_runs.c.id.in_(list(run_ids)))
    )
    return {run.id: run for run in map(_reported, await conn.execute(query))}


async def of_command(conn: AsyncConnection, command_id: int) -> list[RunRecord]:
    query = (
        select(command_runs)
        .where(command_runs.c.command_id == command_id)
        .order_by(command_runs.c.id)
    )
    return [run_record(row) for row in await conn.execute(query)]


async def commands_of(conn: AsyncConnection, run_ids: Sequence[int]) -> set[int]:
    """The commands the runs belong to."""
    if not run_ids:
        return set()
    result = await conn.execute(
        select(command_runs.c.command_id).where(command_runs.c.id.in_(run_ids)).distinct()
    )
    return {int(command_id) for command_id in result.scalars()}


async def events_of(conn: AsyncConnection, run_ids: Sequence[int]) -> list[RunEvent]:
    """The lifecycle events of runs, each run's in the order they happened."""
    if not run_ids:
        return []
    query = (
        select(*columns(command_events, RunEvent))
        .where(command_events.c.run_id.in_(run_ids))
        .order_by(command_events.c.run_id, command_events.c.at, command_events.c.id)
    )
    return [_event(row) for row in await conn.execute(query)]
