"""Programs' measurements over time: CPU, memory and players, sampled from reports.

Agents report on every change as well as with each heartbeat, so a sample is taken
only when the program has none newer than the sampling interval (:func:`due`). Rows
are kept as written: no retention nor rollups yet, so the table grows with the fleet's
running programs (5,760 rows a day each at the default 30 s heartbeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, cast, exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import values
from wcms.server.store.tables import program_samples, programs


@dataclass(frozen=True, slots=True)
class NewSample:
    machine_id: str
    name: str
    at: datetime
    cpu_percent: float | None
    rss_bytes: int | None
    players: int | None


@dataclass(frozen=True, slots=True)
class SampleBucket:
    """One time bucket of a program's samples: averages, and the highest memory and
    player count."""

    start_s: int
    cpu: float | None
    rss: float | None
    rss_max: int | None
    players: float | None
    players_max: int | None


async def due(
    conn: AsyncConnection, machine_id: str, names: Sequence[str], *, since: datetime
) -> set[str]:
    """Those of ``names`` that are programs of the machine with no sample at or after
    ``since``."""
    if not names:
        return set()
    recent = exists().where(
        program_samples.c.machine_id == machine_id,
        program_samples.c.name == programs.c.name,
        program_samples.c.at >= since,
    )
    query = select(programs.c.name).where(
        programs.c.machine_id == machine_id, programs.c.name.in_(list(names)), ~recent
    )
    return {str(name) for name in (await conn.execute(query)).scalars()}


async def add(conn: AsyncConnection, samples: Sequence[NewSample]) -> None:
    if samples:
        await conn.execute(insert(program_samples), [values(sample) for sample in samples])


async def buckets(
    conn: AsyncConnection, machine_id: str, name: str, *, since: datetime, bucket_s: int
) -> list[SampleBucket]:
    """The program's buckets of ``bucket_s`` seconds from ``since`` on, oldest first."""
    table = program_samples
    if conn.dialect.name == "sqlite":
        epoch: Any = cast(func.strftime("%s", table.c.at), Integer)
        bucket = epoch // bucket_s
    else:
        bucket = func.floor(func.extract("epoch", table.c.at) / bucket_s)
    bucket = bucket.label("bucket")
    query = (
        select(
            bucket,
            func.avg(table.c.cpu_percent),
            func.avg(table.c.rss_bytes),
            func.max(table.c.rss_bytes),
            func.avg(table.c.players),
            func.max(table.c.players),
        )
        .where(and_(table.c.machine_id == machine_id, table.c.name == name, table.c.at >= since))
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        SampleBucket(
            start_s=int(number) * bucket_s,
            cpu=_float(cpu),
            rss=_float(rss),
            rss_max=_int(rss_max),
            players=_float(players),
            players_max=_int(players_max),
        )
        for number, cpu, rss, rss_max, players, players_max in await conn.execute(query)
    ]


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
