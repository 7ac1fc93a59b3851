"""Reading and editing machine records."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.protocol import MachineOut, MachinePatch, PresenceEventOut
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import BadRequest, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.services.presence import Presence
from wcms.server.store import credentials as cred_store
from wcms.server.store import machines as store

_NAME = re.compile(r"^[\w.@-][\w .@-]{0,127}$")


class Machines:
    def __init__(self, engine: AsyncEngine, presence: Presence, *, bus: Bus | None = None) -> None:
        self._engine = engine
        self._bus = bus or InProcessBus()
        self._presence = presence

    async def list_machines(
        self, *, room: str | None = None, tag: str | None = None, status: str | None = None
    ) -> list[MachineOut]:
        if status is not None and status not in ("online", "offline"):
            raise BadRequest("status must be 'online' or 'offline'", field="status")
        for name, value in (("room", room), ("tag", tag)):
            if value is not None and not _NAME.match(value):
                raise BadRequest(f"{name} has characters that are not allowed", field=name)
        async with self._engine.connect() as conn:
            rows = await store.list_all(conn, room=room, tag=tag, status=status)
            ids = [row.id for row in rows]
            tags = await store.tags_for(conn, ids)
            reports = await store.status_for(conn, ids)
        return [_out(row, tags[row.id], reports.get(row.id), detailed=False) for row in rows]

    async def get(self, machine_id: str) -> MachineOut:
        async with self._engine.connect() as conn:
            row = await store.get(conn, machine_id)
            if row is None:
                raise NotFound(f"no machine {machine_id!r}")
            tags = (await store.tags_for(conn, [machine_id]))[machine_id]
            report = (await store.status_for(conn, [machine_id])).get(machine_id)
            revoked = not await cred_store.has_live_credential(conn, machine_id)
        out = _out(row, tags, report, detailed=True)
        out.revoked = revoked
        return out

    async def patch(self, machine_id: str, patch: MachinePatch, *, actor: Actor) -> MachineOut:
        changes = patch.model_dump(exclude_unset=True)
        for name in ("room", "seat"):
            value = changes.get(name)
            if value is not None and not _NAME.match(value):
                raise BadRequest(f"{name} has characters that are not allowed", field=name)
        for tag in changes.get("tags") or []:
            if not _NAME.match(tag) or "," in tag:
                raise BadRequest(f"tag {tag!r} has characters that are not allowed", field="tags")
        async with self._engine.begin() as conn:
            if await store.get(conn, machine_id) is None:
                raise NotFound(f"no machine {machine_id!r}")
            fields = {k: v for k, v in changes.items() if k in ("room", "seat")}
            if fields:
                await store.update_fields(conn, machine_id, {**fields, "updated_at": utcnow()})
            if "tags" in changes:
                await store.set_tags(conn, machine_id, changes["tags"] or [])
            await record(conn, actor, "machine.update", target=machine_id, detail=changes)
        self._bus.publish("machine", {"id": machine_id, "change": "update", **changes})
        return await self.get(machine_id)

    async def delete(self, machine_id: str, *, actor: Actor) -> None:
        await self._presence.disconnect(machine_id, code=4401, reason="credential_revoked")
        async with self._engine.begin() as conn:
            if not await store.delete_machine(conn, machine_id):
                raise NotFound(f"no machine {machine_id!r}")
            await record(conn, actor, "machine.delete", target=machine_id)
        self._bus.publish("machine", {"id": machine_id, "change": "delete"})

    async def clear_conflict(self, machine_id: str, *, actor: Actor) -> None:
        async with self._engine.begin() as conn:
            if not await store.update_fields(conn, machine_id, {"conflict": None}):
                raise NotFound(f"no machine {machine_id!r}")
            await record(conn, actor, "machine.clear_conflict", target=machine_id)
        self._presence.registry.forget_sessions(machine_id)

    async def presence_history(self, machine_id: str, *, limit: int) -> list[PresenceEventOut]:
        async with self._engine.connect() as conn:
            if await store.get(conn, machine_id) is None:
                raise NotFound(f"no machine {machine_id!r}")
            rows = await store.presence_history(conn, machine_id, limit=limit)
        return [PresenceEventOut(status=r.status, reason=r.reason, at=r.at) for r in rows]


def _out(
    row: Row[Any], tags: Sequence[str], report: dict[str, Any] | None, *, detailed: bool
) -> MachineOut:
    return MachineOut(
        id=row.id,
        hostname=row.hostname,
        status=row.status,
        status_reason=row.status_reason,
        status_changed_at=row.status_changed_at,
        last_seen_at=row.last_seen_at,
        room=row.room,
        seat=row.seat,
        tags=list(tags),
        transport=row.transport,
        ip=row.ip,
        os=row.os,
        agent_version=row.agent_version,
        inventory=row.inventory if detailed else None,
        last_status=report,
        conflict=row.conflict,
        created_at=row.created_at,
    )
