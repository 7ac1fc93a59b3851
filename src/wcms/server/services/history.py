"""A machine's measurements over time, shaped for charts (and for scripts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.protocol.rooms import HistoryRange, StatusHistory
from wcms.server.errors import NotFound
from wcms.server.services.clock import utcnow
from wcms.server.store import history as store
from wcms.server.store import machines as machine_store

# Range -> (span, bucket seconds): about 360 points whatever the range.
RANGES: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 10),
    "24h": (timedelta(hours=24), 240),
    "7d": (timedelta(days=7), 1680),
    "90d": (timedelta(days=90), 21600),
}


async def status_history(
    engine: AsyncEngine, machine_id: str, *, range_: HistoryRange
) -> StatusHistory:
    """CPU, RAM and fullest-disk percentages, averaged per bucket over ``range_``."""
    span, bucket_s = RANGES[range_]
    async with engine.connect() as conn:
        if await machine_store.get(conn, machine_id) is None:
            raise NotFound(f"no machine {machine_id!r}")
        rows = await store.buckets(conn, machine_id, since=utcnow() - span, bucket_s=bucket_s)
        disks = await store.disks_of(conn, [row[3] for row in rows])
    return StatusHistory(
        machine_id=machine_id,
        range=range_,
        bucket_s=bucket_s,
        t=[int(row[0]) * bucket_s for row in rows],
        cpu=[_round(row[1]) for row in rows],
        ram=[_round(row[2]) for row in rows],
        disk=[_fullest(disks.get(row[3])) for row in rows],
    )


def _round(value: Any) -> float | None:
    return round(float(value), 1) if value is not None else None


def _fullest(disks: Any) -> float | None:
    if not disks:
        return None
    return round(max(float(d.get("percent", 0)) for d in disks), 1)
