"""Commands and runs as the API, the CLI and the dashboard show them."""

from __future__ import annotations

from wcms.protocol import (
    TERMINAL_STATES,
    CommandOut,
    RunEventOut,
    RunLiveOut,
    RunOut,
    RunResult,
    RunState,
)
from wcms.protocol.commands import CommandFilter
from wcms.server.errors import NotFound
from wcms.server.store import commands as store
from wcms.server.store import runs as run_store
from wcms.server.store.commands import CommandRecord, MachineRun
from wcms.server.store.engine import Database
from wcms.server.store.runs import RunRecord


class CommandViews:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, command_id: int, *, events: bool = False, runs: bool = True) -> CommandOut:
        """A command with its runs (``runs``), their lifecycle events (``events``) or only
        the count of runs in each state."""
        async with self._db.connect() as conn:
            command = await store.get_command(conn, command_id)
            if command is None:
                raise NotFound(f"no command {command_id}")
            if not runs:
                return _command(command, (await store.summaries(conn, [command_id]))[command_id])
            rows = await store.runs_of(conn, command)
            run_events = await run_store.events_of(conn, [r.run.id for r in rows]) if events else []
        by_run: dict[int, list[RunEventOut]] = {}
        for event in run_events:
            by_run.setdefault(event.run_id, []).append(
                RunEventOut(state=event.state, at=event.at, detail=event.detail)
            )
        out = _command(command, _summary([r.run for r in rows]))
        out.runs = [run_out(r, by_run.get(r.run.id) if events else None) for r in rows]
        return out

    async def list_commands(
        self, *, limit: int, before_id: int | None = None, where: CommandFilter = CommandFilter()
    ) -> list[CommandOut]:
        async with self._db.connect() as conn:
            commands = await store.list_commands(
                conn, limit=limit, before_id=before_id, where=where
            )
            summaries = await store.summaries(conn, [c.id for c in commands])
        return [_command(c, summaries.get(c.id, {})) for c in commands]

    async def machine_runs(self, machine_id: str, *, limit: int) -> list[RunOut]:
        """The machine's newest runs, newest first: its command history."""
        async with self._db.connect() as conn:
            runs = await store.runs_for_machine(conn, machine_id, limit=limit)
        return [run_out(run, None) for run in runs]

    async def is_done(self, command_id: int) -> bool:
        """Whether every run of the command is final."""
        async with self._db.connect() as conn:
            if await store.get_command(conn, command_id) is None:
                raise NotFound(f"no command {command_id}")
            summary = (await store.summaries(conn, [command_id]))[command_id]
        return _done(summary)


def _done(summary: dict[str, int]) -> bool:
    return all(RunState(state) in TERMINAL_STATES for state in summary)


def _summary(runs: list[RunRecord]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for run in runs:
        summary[run.state] = summary.get(run.state, 0) + 1
    return summary


def _command(command: CommandRecord, summary: dict[str, int]) -> CommandOut:
    return CommandOut(
        id=command.id,
        type=command.type,
        selector=command.selector,
        payload=command.payload,
        priority=command.priority,
        timeout_s=command.timeout_s,
        max_retries=command.max_retries,
        idempotent=command.idempotent,
        created_at=command.created_at,
        expires_at=command.expires_at,
        created_by=command.created_by,
        summary=summary,
        done=_done(summary),
    )


def run_out(machine_run: MachineRun, events: list[RunEventOut] | None) -> RunOut:
    run = machine_run.run
    finished = RunState(run.state) in TERMINAL_STATES
    result = None
    if finished:
        result = RunResult(
            exit_code=run.exit_code,
            stdout=run.stdout or "",
            stderr=run.stderr or "",
            stdout_truncated=run.stdout_truncated,
            stderr_truncated=run.stderr_truncated,
            duration_ms=run.duration_ms,
            error=run.error,
            data=run.result_data,
        )
    return RunOut(
        id=run.id,
        command_id=run.command_id,
        type=machine_run.type,
        machine_id=run.machine_id,
        hostname=machine_run.hostname,
        state=RunState(run.state),
        attempt=run.attempt,
        created_at=run.created_at,
        delivered_at=run.delivered_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        result=result,
        events=events,
        live=None if finished else _live(run),
        relay=run.relay_id,
    )


def _live(run: RunRecord) -> RunLiveOut | None:
    """What a delivered or running run reported so far, if anything."""
    if not (run.stdout or run.stderr or run.progress is not None or run.progress_note):
        return None
    return RunLiveOut(
        percent=run.progress,
        note=run.progress_note,
        stdout=run.stdout or "",
        stderr=run.stderr or "",
    )
