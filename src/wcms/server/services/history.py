"""A machine's measurements over time, shaped for charts (and for scripts)."""

from __future__ import annotations

from datetime import timedelta

from wcms.protocol.rooms import HistoryRange, StatusHistory
from wcms.server.errors import NotFound
from wcms.server.services.clock import utcnow
from wcms.server.store import history as store
from wcms.server.store import machines as machine_store
from wcms.server.store.engine import Database

# Range -> (span, bucket seconds): about 360 points whatever the range.
RANGES: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 10),
    "24h": (timedelta(hours=24), 240),
    "7d": (timedelta(days=7), 1680),
    "90d": (timedelta(days=90), 21600),
}


class History:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def status(self, machine_id: str, *, range_: HistoryRange) -> StatusHistory:
        """CPU, RAM and fullest-disk percentages, averaged per bucket over ``range_``."""
        span, bucket_s = RANGES[range_]
        async with self._db.connect() as conn:
            if not await machine_store.exists(conn, machine_id):
                raise NotFound(f"no machine {machine_id!r}")
            buckets = await store.buckets(
                conn, machine_id, since=utcnow() - span, bucket_s=bucket_s
            )
            disks = await store.fullest_disks(conn, [b.newest_id for b in buckets])
        return StatusHistory(
            machine_id=machine_id,
            range=range_,
            bucket_s=bucket_s,
            t=[b.start_s for b in buckets],
            cpu=[_round(b.cpu) for b in buckets],
            ram=[_round(b.ram) for b in buckets],
            disk=[_round(disks.get(b.newest_id)) for b in buckets],
        )


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
