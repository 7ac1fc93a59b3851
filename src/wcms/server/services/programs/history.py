"""A program's measurements over time, shaped for charts (and for scripts).

The samples are those :mod:`.reports` takes of running programs; a stopped program's
chart has gaps. Samples are never thinned nor deleted here (retention and rollups are
not done yet).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from wcms.protocol.program_admin import ProgramHistory
from wcms.server.store.program_samples import SampleBucket

# About this many points whatever the span; never finer than this many seconds.
POINTS = 360
MIN_BUCKET_S = 10


def window(hours: float, *, now: datetime) -> tuple[datetime, int]:
    """Where ``hours`` back from ``now`` starts, and the bucket for about POINTS points."""
    span_s = hours * 3600
    return now - timedelta(seconds=span_s), max(MIN_BUCKET_S, math.ceil(span_s / POINTS))


def history_out(
    machine_id: str, name: str, buckets: list[SampleBucket], *, since: datetime, bucket_s: int
) -> ProgramHistory:
    return ProgramHistory(
        machine=machine_id,
        name=name,
        since=since,
        bucket_s=bucket_s,
        t=[b.start_s for b in buckets],
        cpu=[_round(b.cpu) for b in buckets],
        rss=[_round(b.rss, 0) for b in buckets],
        rss_max=[b.rss_max for b in buckets],
        players=[_round(b.players) for b in buckets],
        players_max=[b.players_max for b in buckets],
    )


def _round(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None
