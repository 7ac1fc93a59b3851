"""Machines, their tags, latest status and presence history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import machine_status, machine_tags, machines, presence_events


async def get(conn: AsyncConnection, machine_id: str) -> Row[Any] | None:
    result = await conn.execute(select(machines).where(machines.c.id == machine_id))
    return result.first()


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
) -> Sequence[Row[Any]]:
    # Lists never show the inventory; decoding 2,000 JSON documents would be most of the cost.
    listed = [column for column in machines.c if column.name != "inventory"]
    query = select(*listed).order_by(machines.c.room, machines.c.hostname, machines.c.id)
    if room is not None:
        query = query.where(machines.c.room == room)
    if status is not None:
        query = query.where(machines.c.status == status)
    if tag is not None:
        query = query.where(
            machines.c.id.in_(select(machine_tags.c.machine_id).where(machine_tags.c.tag == tag))
        )
    return (await conn.execute(query)).all()


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


async def status_for(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    if not ids:
        return {}
    result = await conn.execute(
        select(machine_status.c.machine_id, machine_status.c.report).where(
            machine_status.c.machine_id.in_(ids)
        )
    )
    return {machine_id: report for machine_id, report in result}


async def create(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(machines).values(**values))


async def update_fields(conn: AsyncConnection, machine_id: str, values: dict[str, Any]) -> int:
    result = await conn.execute(
        update(machines).where(machines.c.id == machine_id).values(**values)
    )
    return result.rowcount


async def update_many(conn: AsyncConnection, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Update several machines, each with its own values, in as few statements as the
    shapes of the values allow."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for machine_id, values in items:
        by_shape.setdefault(tuple(sorted(values)), []).append(
            {"m_id": machine_id, **{f"v_{key}": value for key, value in values.items()}}
        )
    for shape, rows in by_shape.items():
        statement = (
            update(machines)
            .where(machines.c.id == bindparam("m_id"))
            .values({key: bindparam(f"v_{key}") for key in shape})
        )
        await conn.execute(statement, rows)


async def set_tags(conn: AsyncConnection, machine_id: str, tags: Iterable[str]) -> None:
    await conn.execute(delete(machine_tags).where(machine_tags.c.machine_id == machine_id))
    rows = [{"machine_id": machine_id, "tag": tag} for tag in sorted(set(tags))]
    if rows:
        await conn.execute(insert(machine_tags), rows)


async def delete_machine(conn: AsyncConnection, machine_id: str) -> int:
    result = await conn.execute(delete(machines).where(machines.c.id == machine_id))
    return result.rowcount


async def set_presence_many(
    conn: AsyncConnection, transitions: Sequence[tuple[str, str, str, datetime]]
) -> list[bool]:
    """Apply many (machine id, status, reason, at) transitions in order, recording
    those that change something; returns, per transition, whether it did.

    Callers funnel every presence write of this process through here, so the status
    read in step 1 is not changed by another writer before step 3.

    1. Read the current status of every machine involved (one query).
    2. Replay the transitions in order to find the ones that change a status.
    3. Write those (one executemany) and their presence events (another).
    """
    ids = {machine_id for machine_id, *_ in transitions}
    result = await conn.execute(
        select(machines.c.id, machines.c.status).where(machines.c.id.in_(ids))
    )
    current: dict[str, str] = {machine_id: status for machine_id, status in result}
    changed: list[bool] = []
    rows: list[dict[str, Any]] = []
    for machine_id, status, reason, at in transitions:
        moves = machine_id in current and current[machine_id] != status
        changed.append(moves)
        if moves:
            current[machine_id] = status
            rows.append({"m_id": machine_id, "m_status": status, "m_reason": reason, "m_at": at})
    if rows:
        await conn.execute(
            update(machines)
            .where(machines.c.id == bindparam("m_id"))
            .values(
                status=bindparam("m_status"),
                status_reason=bindparam("m_reason"),
                status_changed_at=bindparam("m_at"),
            ),
            rows,
        )
        await conn.execute(
            insert(presence_events),
            [
                {
                    "machine_id": r["m_id"],
                    "status": r["m_status"],
                    "reason": r["m_reason"],
                    "at": r["m_at"],
                }
                for r in rows
            ],
        )
    return changed


async def online_ids(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(select(machines.c.id).where(machines.c.status == "online"))
    return list(result.scalars())


async def presence_history(
    conn: AsyncConnection, machine_id: str, *, limit: int = 100
) -> Sequence[Any]:
    result = await conn.execute(
        select(presence_events.c.status, presence_events.c.reason, presence_events.c.at)
        .where(presence_events.c.machine_id == machine_id)
        .order_by(presence_events.c.at.desc(), presence_events.c.id.desc())
        .limit(limit)
    )
    return result.all()
