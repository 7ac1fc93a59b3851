"""Programs as defined by administrators, what their agents last reported of them, and
each machine's program set revision.

A machine's revision rises in the transaction of every change to its programs
(:func:`bump_revision`), so an agent that holds an older one is sent the whole set.
Desired-state changes are conditional updates: a start of a program already meant to
run changes nothing and raises no revision.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store import bulk
from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import program_sets, programs


@dataclass(frozen=True, slots=True)
class NewProgram:
    machine_id: str
    name: str
    preset: str
    # Free-form: the agent's ProgramSpec as JSON without name, desired, restart_seq and
    # secret_env, its probe URL's password as ***.
    spec: dict[str, Any]
    sealed_secrets: str | None
    desired: str
    restart_seq: int
    revision: int
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class ProgramRecord(NewProgram):
    """A stored program with what its agent last reported."""

    id: int
    state: str
    pid: int | None
    started_at: datetime | None
    restarts: int
    # Free-form: the last ProgramExit as JSON.
    last_exit: dict[str, Any] | None
    players: int | None
    cpu_percent: float | None
    rss_bytes: int | None
    # Free-form: the whole last ProgramStatus as JSON.
    status: dict[str, Any] | None
    reported_at: datetime | None
    troubled: bool


@dataclass(frozen=True, slots=True)
class Definition:
    """A changed definition: the new spec and secrets, at a new revision."""

    # Free-form: as NewProgram.spec.
    spec: dict[str, Any]
    sealed_secrets: str | None
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReportedStatus:
    """One program's status as its agent reported it."""

    name: str
    state: str
    pid: int | None
    started_at: datetime | None
    restarts: int
    # Free-form: the ProgramExit as JSON.
    last_exit: dict[str, Any] | None
    players: int | None
    cpu_percent: float | None
    rss_bytes: int | None
    # Free-form: the whole ProgramStatus as JSON.
    status: dict[str, Any]
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class SetRecord:
    """A machine's program set: the server's revision, and the agent's news of it."""

    machine_id: str
    revision: int
    applied_revision: int | None
    acked_seq: int
    reported_at: datetime | None


_program = mapper(ProgramRecord)
_set = mapper(SetRecord)


def upsert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of the connection's dialect, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def create(conn: AsyncConnection, program: NewProgram) -> int:
    """Insert a program; an IntegrityError when its machine has one of that name."""
    result = await conn.execute(insert(programs).values(**values(program)).returning(programs.c.id))
    return int(result.scalar_one())


async def get(conn: AsyncConnection, machine_id: str, name: str) -> ProgramRecord | None:
    result = await conn.execute(
        select(*columns(programs, ProgramRecord)).where(
            programs.c.machine_id == machine_id, programs.c.name == name
        )
    )
    row = result.first()
    return _program(row) if row is not None else None


async def of_machines(
    conn: AsyncConnection, machine_ids: Collection[str] | None
) -> list[ProgramRecord]:
    """The programs of these machines (None: of every machine), by machine and name."""
    query = select(*columns(programs, ProgramRecord)).order_by(
        programs.c.machine_id, programs.c.name
    )
    if machine_ids is not None:
        query = query.where(programs.c.machine_id.in_(list(machine_ids)))
    return [_program(row) for row in await conn.execute(query)]


async def redefine(conn: AsyncConnection, program_id: int, definition: Definition) -> None:
    await conn.execute(
        update(programs).where(programs.c.id == program_id).values(**values(definition))
    )


async def set_desired(
    conn: AsyncConnection,
    program_id: int,
    desired: str,
    *,
    restart: bool,
    revision: int,
    at: datetime,
) -> bool:
    """Mean the program to be ``desired`` (and, with ``restart``, raise its restart
    request); False when nothing changed: a program already meant so, not restarted."""
    query = update(programs).where(programs.c.id == program_id)
    changes: dict[str, Any] = {"desired": desired, "updated_at": at, "revision": revision}
    if restart:
        changes["restart_seq"] = programs.c.restart_seq + 1
    else:
        query = query.where(programs.c.desired != desired)
    result = await conn.execute(query.values(**changes).returning(programs.c.id))
    return result.first() is not None


async def remove(conn: AsyncConnection, program_id: int) -> bool:
    result = await conn.execute(
        delete(programs).where(programs.c.id == program_id).returning(programs.c.id)
    )
    return result.first() is not None


async def set_statuses(
    conn: AsyncConnection, machine_id: str, statuses: Sequence[ReportedStatus]
) -> None:
    """Store the agent's statuses of its programs, one statement for all; a status of a
    program the server no longer has is dropped."""
    if not statuses:
        return
    ids = await _ids(conn, machine_id, [status.name for status in statuses])
    rows = [
        {"id": ids[status.name], **values(status, skip=("name",))}
        for status in statuses
        if status.name in ids
    ]
    await bulk.update_rows(conn, programs, "id", rows)


async def set_troubled(conn: AsyncConnection, machine_id: str, troubled: dict[str, bool]) -> None:
    """Whether each named program is in trouble (its next ``running`` is a recovery)."""
    for flag in (True, False):
        names = [name for name, value in troubled.items() if value is flag]
        if names:
            await conn.execute(
                update(programs)
                .where(programs.c.machine_id == machine_id, programs.c.name.in_(names))
                .values(troubled=flag)
            )


async def _ids(conn: AsyncConnection, machine_id: str, names: Sequence[str]) -> dict[str, int]:
    result = await conn.execute(
        select(programs.c.name, programs.c.id).where(
            programs.c.machine_id == machine_id, programs.c.name.in_(list(names))
        )
    )
    return {str(name): int(program_id) for name, program_id in result}


# --- the per-machine set ---------------------------------------------------------


async def bump_revision(conn: AsyncConnection, machine_id: str) -> int:
    """Raise the machine's program set revision; returns the new one (1 for the first)."""
    first = upsert(conn, program_sets).values(machine_id=machine_id, revision=1, acked_seq=0)
    statement = first.on_conflict_do_update(
        index_elements=["machine_id"], set_={"revision": program_sets.c.revision + 1}
    ).returning(program_sets.c.revision)
    return int((await conn.execute(statement)).scalar_one())


async def set_of(conn: AsyncConnection, machine_id: str) -> SetRecord:
    """The machine's set; revision 0 for a machine that never had a program."""
    found = await sets_of(conn, [machine_id])
    return found.get(machine_id) or SetRecord(machine_id, 0, None, 0, None)


async def sets_of(conn: AsyncConnection, machine_ids: Collection[str]) -> dict[str, SetRecord]:
    if not machine_ids:
        return {}
    result = await conn.execute(
        select(*columns(program_sets, SetRecord)).where(
            program_sets.c.machine_id.in_(list(machine_ids))
        )
    )
    return {record.machine_id: record for record in map(_set, result)}


async def record_report(
    conn: AsyncConnection, machine_id: str, *, applied: int, acked_seq: int, at: datetime
) -> SetRecord:
    """Note the revision the agent applies and the highest event seq stored (it never
    goes down); returns the set as it now is."""
    first = upsert(conn, program_sets).values(
        machine_id=machine_id,
        revision=0,
        applied_revision=applied,
        acked_seq=acked_seq,
        reported_at=at,
    )
    kept = program_sets.c.acked_seq
    statement = first.on_conflict_do_update(
        index_elements=["machine_id"],
        set_={
            "applied_revision": applied,
            "reported_at": at,
            "acked_seq": _greater(kept, acked_seq),
        },
    ).returning(*columns(program_sets, SetRecord))
    return _set((await conn.execute(statement)).one())


def _greater(column: Any, value: int) -> Any:
    # Portable max(column, value): SQLite's two-argument max() is PostgreSQL's GREATEST.
    return case((column > value, column), else_=value)
