"""Heartbeat storage: the latest report per machine and the history rows, in batches.

This is the busiest write path of the server (one row per machine per heartbeat). A
heartbeat becomes a flat tuple of strings and numbers the moment it arrives: cheap to
hold, and invisible to the garbage collector while thousands wait for the writer. A
batch then goes to the database as one statement per table (see :mod:`bulk`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol import StatusReport
from wcms.protocol.messages import DiskUsage
from wcms.server.store import bulk
from wcms.server.store.bulk import Encoded
from wcms.server.store.tables import machine_status, machines, status_history

# machine_id, at, cpu_percent, ram_used, ram_percent, disks (JSON), users (JSON),
# uptime_s, process_count, and the whole report (JSON).
StatusRow = tuple[str, datetime, float, int, float, str, str, float, int, str]

_disks_json = TypeAdapter(list[DiskUsage]).dump_json


def status_row(machine_id: str, at: datetime, report: StatusReport) -> StatusRow:
    """The stored form of one heartbeat."""
    return (
        machine_id,
        at,
        report.cpu_percent,
        report.ram_used,
        report.ram_percent,
        _disks_json(report.disks).decode(),
        orjson.dumps(report.users).decode(),
        report.uptime_s,
        report.process_count,
        report.model_dump_json(),
    )


async def write_batch(conn: AsyncConnection, rows: Sequence[StatusRow]) -> None:
    """Store many heartbeats in one round of statements.

    1. Every row becomes a history row.
    2. The newest row per machine replaces its latest status (an upsert).
    3. Those machines' last_seen_at moves forward.

    A row for a machine that no longer exists fails the batch with IntegrityError.
    """
    if not rows:
        return
    history = [
        {
            "machine_id": r[0],
            "at": r[1],
            "cpu_percent": r[2],
            "ram_used": r[3],
            "ram_percent": r[4],
            "disks": Encoded(r[5]),
            "users": Encoded(r[6]),
            "uptime_s": r[7],
            "process_count": r[8],
        }
        for r in rows
    ]
    await bulk.insert_rows(conn, status_history, history)
    latest = {r[0]: r for r in rows}.values()  # rows arrive oldest first
    await bulk.upsert_rows(
        conn,
        machine_status,
        "machine_id",
        [{"machine_id": r[0], "at": r[1], "report": Encoded(r[9])} for r in latest],
    )
    await bulk.update_rows(
        conn, machines, "id", [{"id": r[0], "last_seen_at": r[1]} for r in latest]
    )
