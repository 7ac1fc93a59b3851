"""Read-side views of commands and runs for the API and CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.protocol import (
    TERMINAL_STATES,
    CommandOut,
    RunEventOut,
    RunLiveOut,
    RunOut,
    RunResult,
    RunState,
)
from wcms.server.errors import NotFound
from wcms.server.store import commands as store


async def get_command(
    engine: AsyncEngine, command_id: int, *, events: bool = False, runs: bool = True
) -> CommandOut:
    """A command with its runs (``runs``), their lifecycle events (``events``) or only
    the count of runs in each state."""
    async with engine.connect() as conn:
        command = await store.get_command(conn, command_id)
        if command is None:
            raise NotFound(f"no command {command_id}")
        if not runs:
            return _command(command, (await store.summaries(conn, [command_id]))[command_id])
        rows = await store.runs_of(conn, command_id)
        run_events = await store.events_of(conn, [r.id for r in rows]) if events else []
    by_run: dict[int, list[RunEventOut]] = {}
    for event in run_events:
        by_run.setdefault(event.run_id, []).append(
            RunEventOut(state=event.state, at=event.at, detail=event.detail)
        )
    out = _command(command, _summary(rows))
    out.runs = [_run(r, r.hostname, by_run.get(r.id) if events else None) for r in rows]
    return out


async def list_commands(
    engine: AsyncEngine, *, limit: int, before_id: int | None = None
) -> list[CommandOut]:
    async with engine.connect() as conn:
        rows = await store.list_commands(conn, limit=limit, before_id=before_id)
        summaries = await store.summaries(conn, [row.id for row in rows])
    return [_command(row, summaries.get(row.id, {})) for row in rows]


async def machine_runs(engine: AsyncEngine, machine_id: str, *, limit: int) -> list[RunOut]:
    async with engine.connect() as conn:
        rows = await store.runs_for_machine(conn, machine_id, limit=limit)
    return [_run(row, None, None) for row in rows]


def _summary(runs: Any) -> dict[str, int]:
    summary: dict[str, int] = {}
    for run in runs:
        summary[run.state] = summary.get(run.state, 0) + 1
    return summary


def _command(row: Row[Any], summary: dict[str, int]) -> CommandOut:
    return CommandOut(
        id=row.id,
        type=row.type,
        selector=row.selector,
        payload=row.payload,
        priority=row.priority,
        timeout_s=row.timeout_s,
        max_retries=row.max_retries,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        summary=summary,
        done=all(RunState(state) in TERMINAL_STATES for state in summary),
    )


def _run(row: Row[Any], hostname: str | None, events: list[RunEventOut] | None) -> RunOut:
    finished = RunState(row.state) in TERMINAL_STATES
    result = None
    if finished:
        result = RunResult(
            exit_code=row.exit_code,
            stdout=row.stdout or "",
            stderr=row.stderr or "",
            stdout_truncated=row.stdout_truncated,
            stderr_truncated=row.stderr_truncated,
            duration_ms=row.duration_ms,
            error=row.error,
            data=row.result_data,
        )
    return RunOut(
        id=row.id,
        machine_id=row.machine_id,
        hostname=hostname,
        state=RunState(row.state),
        attempt=row.attempt,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=result,
        events=events,
        live=None if finished else _live(row),
        relay=row.relay_id,
    )


def _live(row: Row[Any]) -> RunLiveOut | None:
    """What a delivered or running run reported so far, if anything."""
    if not (row.stdout or row.stderr or row.progress is not None or row.progress_note):
        return None
    return RunLiveOut(
        percent=row.progress,
        note=row.progress_note,
        stdout=row.stdout or "",
        stderr=row.stderr or "",
    )
