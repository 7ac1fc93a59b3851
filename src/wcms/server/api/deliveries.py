"""Admin API: the outbox's deliveries, each message to one channel, and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from wcms.protocol.alerts import DeliveryDetail, DeliveryOut, DeliveryState
from wcms.protocol.bounds import INT64_MAX
from wcms.server.api.deps import AdminActor, OutboxDep

router = APIRouter(prefix="/api/deliveries", tags=["alerts"])

DeliveryPath = Annotated[
    str, Path(min_length=1, max_length=36, description="The delivery id (X-WCMS-Delivery)")
]


@router.get("", response_model=list[DeliveryOut])
async def list_deliveries(
    outbox: OutboxDep,
    _: AdminActor,
    state: Annotated[DeliveryState | None, Query(description="Only in this state")] = None,
    channel: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only to this channel")
    ] = None,
    alert: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="Only the messages of this alert")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
    before: Annotated[
        datetime | None, Query(description="Only those queued before this time (paging)")
    ] = None,
) -> list[DeliveryOut]:
    """The messages sent or to send to channels, newest first."""
    return await outbox.list_deliveries(
        state=state, channel=channel, alert_id=alert, limit=limit, before=before
    )


@router.get("/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    delivery_id: DeliveryPath, outbox: OutboxDep, _: AdminActor
) -> DeliveryDetail:
    """One delivery with its message and the log of every attempt."""
    return await outbox.get_delivery(delivery_id)


@router.post("/{delivery_id}/retry", response_model=DeliveryOut)
async def retry_delivery(
    delivery_id: DeliveryPath, outbox: OutboxDep, actor: AdminActor
) -> DeliveryOut:
    """Queue a dead delivery again (409 unless it is dead)."""
    return await outbox.retry(delivery_id, actor=actor)
