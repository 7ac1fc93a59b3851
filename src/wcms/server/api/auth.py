"""Admin API: log in and out with a session cookie; users."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from wcms.protocol.bounds import Bounded
from wcms.server import csrf
from wcms.server.api.deps import (
    SESSION_COOKIE,
    AccountsDep,
    Admin,
    AdminActor,
    CoreDep,
    clear_session_cookie,
    client_ip,
    set_session_cookie,
)

router = APIRouter(prefix="/api", tags=["auth"])


class Login(Bounded):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserCreate(Login):
    pass


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    created_at: datetime
    last_login_at: datetime | None = None
    disabled: bool = False


@router.post("/auth/login")
async def login(
    body: Login, request: Request, response: Response, core: CoreDep, accounts: AccountsDep
) -> dict[str, str]:
    """Open a browser session; the answer's ``csrf_token`` goes with every change."""
    core.login_throttle.check(ip=client_ip(request), username=body.username)
    token = await accounts.login(body.username, body.password, ip=client_ip(request))
    set_session_cookie(response, request, token)
    return {"username": body.username, "csrf_token": csrf.token_for(core.csrf_key, token)}


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, accounts: AccountsDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await accounts.logout(token)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@router.get("/auth/me")
async def me(admin: Admin) -> dict[str, str]:
    return {"name": admin.name, "via": admin.via}


@router.post("/users", status_code=201)
async def create_user(
    body: UserCreate, accounts: AccountsDep, actor: AdminActor
) -> dict[str, object]:
    user_id = await accounts.create_user(body.username, body.password, actor=actor)
    return {"id": user_id, "username": body.username}


@router.get("/users", response_model=list[UserOut])
async def list_users(accounts: AccountsDep, _: AdminActor) -> list[UserOut]:
    return [
        UserOut.model_validate(user, from_attributes=True) for user in await accounts.list_users()
    ]
