"""Admin API: the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from wcms.server.api.deps import AdminActor, CoreDep
from wcms.server.store import audit as audit_store

router = APIRouter(prefix="/api", tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] | None
    ip: str | None


@router.get("/audit", response_model=list[AuditEntry])
async def audit_log(
    core: CoreDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: str | None = None,
) -> list[AuditEntry]:
    async with core.engine.connect() as conn:
        rows = await audit_store.recent(conn, limit=limit, action=action)
    return [AuditEntry.model_validate(row._mapping) for row in rows]
