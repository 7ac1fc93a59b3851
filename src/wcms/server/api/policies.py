"""Admin API: action policies, command types switched off per machine or room."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from wcms.protocol import ActionPolicyIn, ActionPolicyOut
from wcms.server.api.deps import Admin, AdminActor, PoliciesDep

router = APIRouter(prefix="/api/action-policies", tags=["policies"])

Scope = Annotated[str, Path(max_length=160, description="machine:ID or room:NAME")]


@router.get("", response_model=list[ActionPolicyOut])
async def list_policies(policies: PoliciesDep, _: Admin) -> list[ActionPolicyOut]:
    return await policies.list()


@router.put("/{scope}", response_model=ActionPolicyOut)
async def put_policy(
    scope: Scope, body: ActionPolicyIn, policies: PoliciesDep, actor: AdminActor
) -> ActionPolicyOut:
    """Switch off ``disabled`` command types for a machine (``machine:lab-07``) or a room
    (``room:A101``); new runs there fail at once with the reason."""
    return await policies.put(scope, body, actor=actor)


@router.delete("/{scope}", status_code=204)
async def delete_policy(scope: Scope, policies: PoliciesDep, actor: AdminActor) -> Response:
    await policies.delete(scope, actor=actor)
    return Response(status_code=204)
