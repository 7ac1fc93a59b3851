"""Reading a machine's status history, averaged into time buckets by the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.tables import status_history


async def buckets(
    conn: AsyncConnection, machine_id: str, *, since: datetime, bucket_s: int
) -> Sequence[Any]:
    """Rows of (bucket, avg cpu, avg ram percent, newest row id) from ``since`` on."""
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
    return (await conn.execute(query)).all()


async def disks_of(conn: AsyncConnection, row_ids: Sequence[int]) -> dict[int, Any]:
    if not row_ids:
        return {}
    result = await conn.execute(
        select(status_history.c.id, status_history.c.disks).where(status_history.c.id.in_(row_ids))
    )
    return {row_id: disks for row_id, disks in result}
