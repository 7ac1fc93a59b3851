"""The alert outbox: one row per message to one channel, claimed by one replica at a
time, and the log of every attempt to deliver it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.alerts import AlertMessage, DeliveryKind, DeliveryState
from wcms.server.store.tables import deliveries

# A message not delivered within this long after it was queued is given up (dead).
DEFAULT_DEADLINE_S = 24 * 3600.0


async def enqueue(
    conn: AsyncConnection,
    *,
    channel_id: int,
    message: AlertMessage,
    now: datetime,
    alert_id: int | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> str:
    """Queue ``message`` for ``channel_id`` in the caller's transaction; its delivery id."""
    delivery_id = str(uuid.uuid4())
    await conn.execute(
        insert(deliveries).values(
            id=delivery_id,
            channel_id=channel_id,
            alert_id=alert_id,
            kind=DeliveryKind(message.kind).value,
            message=message.model_dump(mode="json"),
            state=DeliveryState.QUEUED.value,
            attempts=0,
            next_attempt_at=now,
            deadline=now + timedelta(seconds=deadline_s),
            created_at=now,
        )
    )
    return delivery_id
