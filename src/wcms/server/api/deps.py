"""Dependencies shared by the admin API routes: the core, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from wcms.server import csrf
from wcms.server.core import Core
from wcms.server.errors import Forbidden, Unauthorized
from wcms.server.services.accounts import Principal
from wcms.server.services.audit import Actor

SESSION_COOKIE = "wcms_session"


def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def current_admin(request: Request, core: CoreDep) -> Principal:
    """The admin making this request, by API key (Bearer or X-API-Key) or session cookie."""
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if key:
        principal = await core.accounts.principal_for_key(key)
        if principal is None:
            raise Unauthorized("API key is not valid or was revoked", code="invalid_api_key")
        return principal
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        principal = await core.accounts.principal_for_session(session)
        if principal is not None:
            check_csrf(request, core, session)
            return principal
    raise Unauthorized(
        "authentication required: send an API key as 'Authorization: Bearer KEY' or log in",
        code="unauthorized",
    )


Admin = Annotated[Principal, Depends(current_admin)]


def check_csrf(request: Request, core: Core, session: str) -> None:
    """A browser session changes nothing without the session's CSRF token."""
    if request.method in csrf.SAFE_METHODS:
        return
    if not csrf.matches(core.csrf_key, session, request.headers.get(csrf.HEADER)):
        raise Forbidden(
            "missing or wrong CSRF token: reload the page and try again", code="csrf_failed"
        )


async def current_actor(request: Request, admin: Admin) -> Actor:
    return Actor(admin.name, client_ip(request))


AdminActor = Annotated[Actor, Depends(current_actor)]
