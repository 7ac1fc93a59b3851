"""Admin API: the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from wcms.server.api.deps import AdminActor, AuditDep

router = APIRouter(prefix="/api", tags=["audit"])


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    # Free-form: what each action chose to record about itself, as JSON.
    detail: dict[str, Any] | None
    ip: str | None


@router.get("/audit", response_model=list[AuditEntryOut])
async def audit_log(
    audit: AuditDep,
    _: AdminActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: str | None = None,
) -> list[AuditEntryOut]:
    entries = await audit.recent(limit=limit, action=action)
    return [AuditEntryOut.model_validate(entry, from_attributes=True) for entry in entries]
