"""Admin API: alerts, the incidents the alert engine raises, and their acknowledgement."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from wcms.protocol.alerts import AlertOut
from wcms.server.api.deps import AdminActor, AlertEngineDep

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

AlertPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id")]


@router.get("", response_model=list[AlertOut])
async def list_alerts(
    engine: AlertEngineDep,
    _: AdminActor,
    state: Annotated[
        Literal["pending", "firing", "resolved", "active"] | None,
        Query(description="Only in this state; active is pending or firing"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Only older than this id (paging)")
    ] = None,
) -> list[AlertOut]:
    """Alerts newest first: each a rule's subjects of one room in trouble together."""
    return await engine.list_alerts(state=state, limit=limit, before=before)


@router.get("/{alert_id}", response_model=AlertOut)
async def get_alert(alert_id: AlertPath, engine: AlertEngineDep, _: AdminActor) -> AlertOut:
    return await engine.get_alert(alert_id)


@router.post("/{alert_id}/ack", response_model=AlertOut)
async def acknowledge_alert(
    alert_id: AlertPath, engine: AlertEngineDep, actor: AdminActor
) -> AlertOut:
    """Someone is on it: the alert is not told again (a change still is)."""
    return await engine.acknowledge(alert_id, actor=actor)
