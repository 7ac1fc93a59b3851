"""What happened lately: machines coming and going, commands failing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.server.store import activity as store
from wcms.server.store import commands as command_store


@dataclass(frozen=True, slots=True)
class Happening:
    at: datetime
    kind: str  # "online", "offline" or "command_failed"
    machine_id: str
    hostname: str
    room: str | None
    detail: str
    command_id: int | None = None


async def recent(engine: AsyncEngine, *, limit: int = 30) -> list[Happening]:
    """The newest ``limit`` presence changes and failed runs, newest first."""
    async with engine.connect() as conn:
        presence = await store.recent_presence(conn, limit=limit)
        failures = await store.recent_failures(conn, limit=limit)
    items = [
        Happening(r.at, r.status, r.machine_id, r.hostname or r.machine_id, r.room, r.reason)
        for r in presence
    ]
    items += [
        Happening(
            r.finished_at,
            "command_failed",
            r.machine_id,
            r.hostname or r.machine_id,
            r.room,
            f"{r.type} #{r.command_id}: {r.state}" + (f" ({r.error[:120]})" if r.error else ""),
            r.command_id,
        )
        for r in failures
    ]
    return sorted(items, key=lambda item: item.at, reverse=True)[:limit]


@dataclass(frozen=True, slots=True)
class MachineRun:
    """One run on a machine, with the command it belongs to."""

    command_id: int
    type: str
    state: str
    attempt: int
    exit_code: int | None
    created_at: datetime


async def machine_runs(engine: AsyncEngine, machine_id: str, *, limit: int) -> list[MachineRun]:
    """The machine's newest runs, newest first: its command history."""
    async with engine.connect() as conn:
        rows = await command_store.runs_for_machine(conn, machine_id, limit=limit)
    return [
        MachineRun(r.command_id, r.type, r.state, r.attempt, r.exit_code, r.created_at)
        for r in rows
    ]
