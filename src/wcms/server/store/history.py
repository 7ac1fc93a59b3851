"""Reading a machine's status history, averaged into time buckets by the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import status_history


@dataclass(frozen=True, slots=True)
class Bucket:
    """The averages of one time bucket, and the newest history row in it."""

    start_s: int
    cpu: float | None
    ram: float | None
    newest_id: int


async def buckets(
    conn: AsyncConnection, machine_id: str, *, since: datetime, bucket_s: int
) -> list[Bucket]:
    """The machine's buckets of ``bucket_s`` seconds from ``since`` on, oldest first."""
    column = status_history.c.at
    if conn.dialect.name == "sqlite":
        epoch: Any = cast(func.strftime("%s", column), Integer)
        bucket = epoch // bucket_s
    else:
        bucket = func.floor(func.extract("epoch", column) / bucket_s)
    bucket = bucket.label("bucket")
    query = (
        select(
            bucket,
            func.avg(status_history.c.cpu_percent),
            func.avg(status_history.c.ram_percent),
            func.max(status_history.c.id),
        )
        .where(status_history.c.machine_id == machine_id, column >= since)
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        Bucket(
            int(number) * bucket_s,
            float(cpu) if cpu is not None else None,
            float(ram) if ram is not None else None,
            int(newest),
        )
        for number, cpu, ram, newest in await conn.execute(query)
    ]


async def fullest_disks(conn: AsyncConnection, row_ids: Sequence[int]) -> dict[int, float | None]:
    """The percentage of the fullest disk in each history row."""
    if not row_ids:
        return {}
    result = await conn.execute(
        select(status_history.c.id, status_history.c.disks).where(status_history.c.id.in_(row_ids))
    )
    return {row_id: _fullest(disks) for row_id, disks in result}


# Free-form: the stored JSON of a heartbeat's DiskUsage list.
def _fullest(disks: list[dict[str, Any]] | None) -> float | None:
    if not disks:
        return None
    return max(float(d.get("percent", 0)) for d in disks)
