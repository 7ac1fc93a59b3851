"""Recording admin actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.services.clock import utcnow
from wcms.server.store import audit as audit_store


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a user, an API key, a local CLI user, or an agent."""

    name: str
    ip: str | None = None


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the audit log, in the caller's transaction."""
    await audit_store.append(
        conn,
        {
            "at": utcnow(),
            "actor": actor.name,
            "action": action,
            "target": target,
            "detail": detail,
            "ip": actor.ip,
        },
    )
