"""Action policies: an administrator switches command types off for a machine or a
room; runs for those machines fail at once with the reason."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol import COMMAND_TYPES, ActionPolicyIn, ActionPolicyOut
from wcms.server.errors import BadRequest, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.store import machines as machine_store
from wcms.server.store import policies as store
from wcms.server.store.engine import Database
from wcms.server.store.policies import ActionPolicyRecord

_SCOPE = re.compile(r"^(machine|room):[^\x00-\x1f]{1,128}$")


class ActionPolicies:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> list[ActionPolicyOut]:
        async with self._db.connect() as conn:
            policies = await store.all_policies(conn)
        return [policy_out(policy) for policy in policies]

    async def put(self, scope: str, body: ActionPolicyIn, *, actor: Actor) -> ActionPolicyOut:
        """Set the command types switched off for ``scope`` (machine:ID or room:NAME)."""
        if not _SCOPE.match(scope):
            raise BadRequest(
                f"scope {scope!r} must be machine:ID or room:NAME", field="scope", code="bad_scope"
            )
        unknown = sorted(set(body.disabled) - set(COMMAND_TYPES))
        if unknown:
            raise BadRequest(
                f"unknown command types: {', '.join(unknown)}",
                field="disabled",
                code="unknown_command_type",
            )
        policy = ActionPolicyRecord(
            scope=scope,
            disabled=sorted(set(body.disabled)),
            updated_at=utcnow(),
            updated_by=actor.name,
        )
        async with self._db.begin() as conn:
            await store.put(conn, policy)
            detail = {"disabled": policy.disabled}
            await record(conn, actor, "policy.set", target=scope, detail=detail)
        return policy_out(policy)

    async def delete(self, scope: str, *, actor: Actor) -> None:
        async with self._db.begin() as conn:
            if not await store.remove(conn, scope):
                raise NotFound(f"no action policy for {scope}")
            await record(conn, actor, "policy.delete", target=scope)


def policy_out(policy: ActionPolicyRecord) -> ActionPolicyOut:
    return ActionPolicyOut.model_validate(policy, from_attributes=True)


async def refusals(
    conn: AsyncConnection, command_type: str, machine_ids: Sequence[str]
) -> dict[str, str]:
    """Why ``command_type`` may not run on each of ``machine_ids`` that refuses it."""
    if not machine_ids:
        return {}
    rooms = await machine_store.rooms_of(conn, machine_ids)
    scopes = [f"machine:{m}" for m in machine_ids] + [f"room:{r}" for r in rooms.values() if r]
    policies = await store.for_scopes(conn, scopes)
    found: dict[str, str] = {}
    for machine_id in machine_ids:
        room = rooms.get(machine_id)
        if command_type in policies.get(f"machine:{machine_id}", ()):
            found[machine_id] = f"refused: {command_type!r} is switched off for {machine_id}"
        elif room and command_type in policies.get(f"room:{room}", ()):
            found[machine_id] = f"refused: {command_type!r} is switched off for room {room}"
    return found
