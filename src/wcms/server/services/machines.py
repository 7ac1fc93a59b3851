"""Reading and editing machine records."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from wcms.protocol import CloseCode, MachineOut, MachinePatch, PresenceEventOut
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import BadRequest, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.services.presence import Presence
from wcms.server.store import credentials as cred_store
from wcms.server.store import machines as store
from wcms.server.store.engine import Database
from wcms.server.store.machines import MachineRecord
from wcms.server.store.records import values

_NAME = re.compile(r"^[\w.@-][\w .@-]{0,127}$")


class Machines:
    def __init__(self, db: Database, presence: Presence, *, bus: Bus | None = None) -> None:
        self._db = db
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
        async with self._db.connect() as conn:
            machines = await store.list_all(conn, room=room, tag=tag, status=status)
            ids = [machine.id for machine in machines]
            tags = await store.tags_for(conn, ids)
            reports = await store.status_for(conn, ids)
        return [_out(m, tags[m.id], reports.get(m.id)) for m in machines]

    async def get(self, machine_id: str) -> MachineOut:
        async with self._db.connect() as conn:
            machine = await store.get(conn, machine_id)
            if machine is None:
                raise NotFound(f"no machine {machine_id!r}")
            tags = (await store.tags_for(conn, [machine_id]))[machine_id]
            report = (await store.status_for(conn, [machine_id])).get(machine_id)
            revoked = not await cred_store.has_live_credential(conn, machine_id)
        out = _out(machine, tags, report)
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
        async with self._db.begin() as conn:
            machine = await store.get(conn, machine_id)
            if machine is None:
                raise NotFound(f"no machine {machine_id!r}")
            if "room" in changes or "seat" in changes:
                await store.set_place(
                    conn,
                    machine_id,
                    room=changes.get("room", machine.room),
                    seat=changes.get("seat", machine.seat),
                    at=utcnow(),
                )
            if "tags" in changes:
                await store.set_tags(conn, machine_id, changes["tags"] or [])
            await record(conn, actor, "machine.update", target=machine_id, detail=changes)
        self._bus.publish("machine", {"id": machine_id, "change": "update", **changes})
        return await self.get(machine_id)

    async def delete(self, machine_id: str, *, actor: Actor) -> None:
        await self._presence.disconnect(
            machine_id, code=CloseCode.REVOKED, reason="credential_revoked"
        )
        async with self._db.begin() as conn:
            if not await store.delete_machine(conn, machine_id):
                raise NotFound(f"no machine {machine_id!r}")
            await record(conn, actor, "machine.delete", target=machine_id)
        self._bus.publish("machine", {"id": machine_id, "change": "delete"})

    async def clear_conflict(self, machine_id: str, *, actor: Actor) -> None:
        async with self._db.begin() as conn:
            if not await store.set_conflict(conn, machine_id, None):
                raise NotFound(f"no machine {machine_id!r}")
            await record(conn, actor, "machine.clear_conflict", target=machine_id)
        self._presence.registry.forget_sessions(machine_id)

    async def presence_history(self, machine_id: str, *, limit: int) -> list[PresenceEventOut]:
        async with self._db.connect() as conn:
            if not await store.exists(conn, machine_id):
                raise NotFound(f"no machine {machine_id!r}")
            events = await store.presence_history(conn, machine_id, limit=limit)
        return [PresenceEventOut.model_validate(e, from_attributes=True) for e in events]


# Free-form: ``report`` is the stored JSON of a StatusReport, validated again here.
def _out(machine: MachineRecord, tags: Sequence[str], report: dict[str, Any] | None) -> MachineOut:
    """The machine as the API shows it; ``report`` is its latest status (free-form: the
    stored JSON of a StatusReport, validated again here)."""
    return MachineOut.model_validate({**values(machine), "tags": list(tags), "last_status": report})
