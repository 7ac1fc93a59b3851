"""Admin API: enrolment tokens and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Response

from wcms.protocol import ApiKeyCreate, ApiKeyOut, EnrollTokenCreate, EnrollTokenOut
from wcms.server.api.deps import AccountsDep, AdminActor, EnrollmentDep

router = APIRouter(prefix="/api", tags=["credentials"])


@router.post("/enroll-tokens", response_model=EnrollTokenOut, status_code=201)
async def create_token(
    body: EnrollTokenCreate, enrollment: EnrollmentDep, actor: AdminActor
) -> EnrollTokenOut:
    """A token that enrols up to ``uses`` machines within ``ttl_s`` seconds (shown once)."""
    token, _ = await enrollment.create_token(
        uses=body.uses, ttl_s=body.ttl_s, note=body.note, actor=actor, room=body.room
    )
    return token


@router.get("/enroll-tokens", response_model=list[EnrollTokenOut])
async def list_tokens(enrollment: EnrollmentDep, _: AdminActor) -> list[EnrollTokenOut]:
    return await enrollment.list_tokens()


@router.delete("/enroll-tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, enrollment: EnrollmentDep, actor: AdminActor) -> Response:
    await enrollment.revoke_token(token_id, actor=actor)
    return Response(status_code=204)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201)
async def create_key(body: ApiKeyCreate, accounts: AccountsDep, actor: AdminActor) -> ApiKeyOut:
    key, _ = await accounts.create_api_key(body.name, actor=actor)
    return key


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(accounts: AccountsDep, _: AdminActor) -> list[ApiKeyOut]:
    return await accounts.list_api_keys()


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, accounts: AccountsDep, actor: AdminActor) -> Response:
    await accounts.revoke_api_key(key_id, actor=actor)
    return Response(status_code=204)
