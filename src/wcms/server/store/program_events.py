"""Programs' state changes, as their agents numbered them.

An agent re-sends every change it has not seen acknowledged, so the same change may
arrive twice (a reconnect, a second replica): ``(machine_id, seq)`` is unique, and a
change already stored is skipped, not refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.programs import upsert
from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import program_events


@dataclass(frozen=True, slots=True)
class NewProgramEvent:
    machine_id: str
    name: str
    seq: int
    at: datetime
    from_state: str
    to_state: str
    reason: str
    detail: str | None
    # Free-form: the ProgramExit of a change that ended a run, as JSON.
    exit: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ProgramEventRecord(NewProgramEvent):
    id: int


_event = mapper(ProgramEventRecord)


async def add(conn: AsyncConnection, events: Sequence[NewProgramEvent]) -> set[int]:
    """Store the changes not stored yet; returns the seqs of those that were new."""
    if not events:
        return set()
    statement = (
        upsert(conn, program_events)
        .values([values(event) for event in events])
        .on_conflict_do_nothing(index_elements=["machine_id", "seq"])
        .returning(program_events.c.seq)
    )
    return {int(seq) for seq in (await conn.execute(statement)).scalars()}


async def of_program(
    conn: AsyncConnection, machine_id: str, name: str, *, limit: int
) -> list[ProgramEventRecord]:
    """The program's newest ``limit`` changes, oldest first."""
    query = (
        select(*columns(program_events, ProgramEventRecord))
        .where(program_events.c.machine_id == machine_id, program_events.c.name == name)
        .order_by(program_events.c.seq.desc())
        .limit(limit)
    )
    return [_event(row) for row in reversed((await conn.execute(query)).all())]
