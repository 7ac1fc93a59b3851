"""Admin API: enrolment tokens and API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import Row

from wcms.protocol import ApiKeyCreate, ApiKeyOut, EnrollTokenCreate, EnrollTokenOut
from wcms.server.api.deps import AdminActor, CoreDep

router = APIRouter(prefix="/api", tags=["credentials"])


@router.post("/enroll-tokens", response_model=EnrollTokenOut, status_code=201)
async def create_token(body: EnrollTokenCreate, core: CoreDep, actor: AdminActor) -> EnrollTokenOut:
    """A token that enrols up to ``uses`` machines within ``ttl_s`` seconds (shown once)."""
    row, token = await core.enrollment.create_token(
        uses=body.uses, ttl_s=body.ttl_s, note=body.note, actor=actor, room=body.room
    )
    return token_out(row, token)


@router.get("/enroll-tokens", response_model=list[EnrollTokenOut])
async def list_tokens(core: CoreDep, _: AdminActor) -> list[EnrollTokenOut]:
    return [token_out(row) for row in await core.enrollment.list_tokens()]


@router.delete("/enroll-tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, core: CoreDep, actor: AdminActor) -> Response:
    await core.enrollment.revoke_token(token_id, actor=actor)
    return Response(status_code=204)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201)
async def create_key(body: ApiKeyCreate, core: CoreDep, actor: AdminActor) -> ApiKeyOut:
    row, key = await core.accounts.create_api_key(body.name, actor=actor)
    return key_out(row, key)


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(core: CoreDep, _: AdminActor) -> list[ApiKeyOut]:
    return [key_out(row) for row in await core.accounts.list_api_keys()]


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, core: CoreDep, actor: AdminActor) -> Response:
    await core.accounts.revoke_api_key(key_id, actor=actor)
    return Response(status_code=204)


def token_out(row: Row[Any], token: str | None = None) -> EnrollTokenOut:
    return EnrollTokenOut(
        id=row.id,
        uses=row.uses_allowed,
        used=row.uses_count,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
        note=row.note,
        room=row.room,
        token=token,
    )


def key_out(row: Row[Any], key: str | None = None) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked_at is not None,
        key=key,
    )
