"""Machines, their tags, latest status and presence history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store import bulk
from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import machine_status, machine_tags, machines, presence_events


@dataclass(frozen=True, slots=True)
class MachineRecord:
    """A machine as stored; lists leave ``inventory`` out (it is most of a row's size)."""

    id: str
    hostname: str
    room: str | None
    seat: str | None
    os: str
    agent_version: str
    ip: str | None
    status: str
    status_reason: str | None
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    transport: str | None
    # Free-form: who else claimed this machine id, and when.
    conflict: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    # Free-form: the agent's inventory report, as JSON.
    inventory: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InventoryFields:
    """The machine columns an agent's inventory report sets."""

    hostname: str
    os: str
    agent_version: str
    ip: str | None
    # Free-form: the agent's inventory report, as JSON.
    inventory: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewMachine:
    id: str
    room: str | None
    created_at: datetime
    fields: InventoryFields


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A machine going online or offline, and why."""

    machine_id: str
    status: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LinkSeen:
    """A machine's agent connected over ``transport`` at ``at``."""

    machine_id: str
    transport: str
    at: datetime


@dataclass(frozen=True, slots=True)
class NetworkPlace:
    """Where a machine is: its room and address (to find a neighbour that can wake it)."""

    id: str
    room: str | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    status: str
    reason: str
    at: datetime


_machine = mapper(MachineRecord)
_listed = mapper(MachineRecord, omit=("inventory",))
_presence_event = mapper(PresenceEvent)
_place = mapper(NetworkPlace)


async def get(conn: AsyncConnection, machine_id: str) -> MachineRecord | None:
    result = await conn.execute(
        select(*columns(machines, MachineRecord)).where(machines.c.id == machine_id)
    )
    row = result.first()
    return _machine(row) if row is not None else None


async def exists(conn: AsyncConnection, machine_id: str) -> bool:
    result = await conn.execute(select(machines.c.id).where(machines.c.id == machine_id))
    return result.first() is not None


async def ids_by_hostname(conn: AsyncConnection, hostname: str) -> list[str]:
    result = await conn.execute(select(machines.c.id).where(machines.c.hostname == hostname))
    return list(result.scalars())


async def ids_where(
    conn: AsyncConnection,
    *,
    room: str | None = None,
    tag: str | None = None,
    status: str | None = None,
) -> list[str]:
    query = select(machines.c.id)
    if room is not None:
        query = query.where(machines.c.room == room)
    if status is not None:
        query = query.where(machines.c.status == status)
    if tag is not None:
        query = query.join(machine_tags, machine_tags.c.machine_id == machines.c.id).where(
            machine_tags.c.tag == tag
        )
    result = await conn.execute(query.order_by(machines.c.id))
    return list(result.scalars())


async def list_all(
    conn: AsyncConnection,
    *,
    room: str | None = None,
    tag: str | None = None,
    status: str | None = None,
) -> list[MachineRecord]:
    """Machines without their inventory; decoding 2,000 JSON documents would be most of
    the cost of a list."""
    query = select(*columns(machines, MachineRecord, omit=("inventory",))).order_by(
        machines.c.room, machines.c.hostname, machines.c.id
    )
    if room is not None:
        query = query.where(machines.c.room == room)
    if status is not None:
        query = query.where(machines.c.status == status)
    if tag is not None:
        query = query.where(
            machines.c.id.in_(select(machine_tags.c.machine_id).where(machine_tags.c.tag == tag))
        )
    return [_listed(row) for row in await conn.execute(query)]


async def many(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, MachineRecord]:
    """Several machines, with their inventory, by id."""
    result = await conn.execute(
        select(*columns(machines, MachineRecord)).where(machines.c.id.in_(list(ids)))
    )
    return {record.id: record for record in map(_machine, result)}


async def online_places(conn: AsyncConnection) -> list[NetworkPlace]:
    """Where each online machine is, by id."""
    result = await conn.execute(
        select(*columns(machines, NetworkPlace))
        .where(machines.c.status == "online")
        .order_by(machines.c.id)
    )
    return [_place(row) for row in result]


async def rooms_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, str | None]:
    """Each machine's room (None: in no room); unknown ids are left out."""
    result = await conn.execute(
        select(machines.c.id, machines.c.room).where(machines.c.id.in_(list(ids)))
    )
    return {machine_id: room for machine_id, room in result}


async def tags_for(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(ids)
    tags: dict[str, list[str]] = {machine_id: [] for machine_id in ids}
    if not ids:
        return tags
    result = await conn.execute(
        select(machine_tags.c.machine_id, machine_tags.c.tag)
        .where(machine_tags.c.machine_id.in_(ids))
        .order_by(machine_tags.c.tag)
    )
    for machine_id, tag in result:
        tags[machine_id].append(tag)
    return tags


# Free-form: each report is the stored JSON of a StatusReport.
async def status_for(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest status report of each machine that sent one.

    Free-form: the report is the stored JSON of a ``StatusReport``, validated when it
    arrived and again by the model it is shown in."""
    ids = list(ids)
    if not ids:
        return {}
    result = await conn.execute(
        select(machine_status.c.machine_id, machine_status.c.report).where(
            machine_status.c.machine_id.in_(ids)
        )
    )
    return {machine_id: report for machine_id, report in result}


async def create(conn: AsyncConnection, machine: NewMachine) -> None:
    await conn.execute(
        insert(machines).values(
            id=machine.id,
            room=machine.room,
            created_at=machine.created_at,
            status="offline",
            **values(machine.fields),
        )
    )


async def set_inventory(conn: AsyncConnection, machine_id: str, fields: InventoryFields) -> None:
    await conn.execute(update(machines).where(machines.c.id == machine_id).values(**values(fields)))


async def set_inventories(
    conn: AsyncConnection, items: Sequence[tuple[str, InventoryFields]]
) -> None:
    """Many machines' inventory columns, in one statement."""
    rows = [{"id": machine_id, **values(fields)} for machine_id, fields in items]
    await bulk.update_rows(conn, machines, "id", rows)


async def set_links_seen(conn: AsyncConnection, seen: Sequence[LinkSeen]) -> None:
    rows = [{"id": s.machine_id, "transport": s.transport, "last_seen_at": s.at} for s in seen]
    await bulk.update_rows(conn, machines, "id", rows)


async def set_place(
    conn: AsyncConnection, machine_id: str, *, room: str | None, seat: str | None, at: datetime
) -> None:
    await conn.execute(
        update(machines)
        .where(machines.c.id == machine_id)
        .values(room=room, seat=seat, updated_at=at)
    )


# Free-form: what is known of the claimant (session, host name, address, MACs).
async def set_conflict(
    conn: AsyncConnection, machine_id: str, conflict: dict[str, Any] | None
) -> bool:
    """Flag (or, with None, clear) a second agent claiming the machine; False if unknown."""
    result = await conn.execute(
        update(machines).where(machines.c.id == machine_id).values(conflict=conflict)
    )
    return result.rowcount > 0


async def set_tags(conn: AsyncConnection, machine_id: str, tags: Iterable[str]) -> None:
    await conn.execute(delete(machine_tags).where(machine_tags.c.machine_id == machine_id))
    rows = [{"machine_id": machine_id, "tag": tag} for tag in sorted(set(tags))]
    if rows:
        await conn.execute(insert(machine_tags), rows)


async def delete_machine(conn: AsyncConnection, machine_id: str) -> bool:
    result = await conn.execute(delete(machines).where(machines.c.id == machine_id))
    return result.rowcount > 0


async def set_presence_many(
    conn: AsyncConnection, transitions: Sequence[PresenceChange]
) -> list[bool]:
    """Apply many transitions in order, recording those that change something; returns,
    per transition, whether it did.

    Callers funnel every presence write of this process through here, so the status
    read in step 1 is not changed by another writer before step 3.

    1. Read the current status of every machine involved (one query).
    2. Replay the transitions in order to find the ones that change a status.
    3. Write those (one executemany) and their presence events (another).
    """
    ids = {change.machine_id for change in transitions}
    result = await conn.execute(
        select(machines.c.id, machines.c.status).where(machines.c.id.in_(ids))
    )
    current: dict[str, str] = {machine_id: status for machine_id, status in result}
    changed: list[bool] = []
    moved: list[PresenceChange] = []
    for change in transitions:
        moves = change.machine_id in current and current[change.machine_id] != change.status
        changed.append(moves)
        if moves:
            current[change.machine_id] = change.status
            moved.append(change)
    if moved:
        await conn.execute(
            update(machines)
            .where(machines.c.id == bindparam("m_id"))
            .values(
                status=bindparam("m_status"),
                status_reason=bindparam("m_reason"),
                status_changed_at=bindparam("m_at"),
            ),
            [
                {"m_id": c.machine_id, "m_status": c.status, "m_reason": c.reason, "m_at": c.at}
                for c in moved
            ],
        )
        await conn.execute(insert(presence_events), [values(change) for change in moved])
    return changed


async def online_ids(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(select(machines.c.id).where(machines.c.status == "online"))
    return list(result.scalars())


async def presence_history(
    conn: AsyncConnection, machine_id: str, *, limit: int = 100
) -> list[PresenceEvent]:
    result = await conn.execute(
        select(*columns(presence_events, PresenceEvent))
        .where(presence_events.c.machine_id == machine_id)
        .order_by(presence_events.c.at.desc(), presence_events.c.id.desc())
        .limit(limit)
    )
    return [_presence_event(row) for row in result]
