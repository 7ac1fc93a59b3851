"""Who is using the dashboard, and checks on the forms they send."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from wcms.server import csrf
from wcms.server.api.deps import SESSION_COOKIE, CoreDep, client_ip
from wcms.server.errors import Forbidden
from wcms.server.services.accounts import Principal
from wcms.server.services.audit import Actor
from wcms.server.web.render import LOGIN_NONCE_COOKIE


class LoginRequired(Exception):
    """The browser has no valid session; it is sent to the login page."""


async def web_user(request: Request, core: CoreDep) -> Principal:
    session = request.cookies.get(SESSION_COOKIE)
    principal = await core.accounts.principal_for_session(session) if session else None
    if principal is None:
        raise LoginRequired
    return principal


WebUser = Annotated[Principal, Depends(web_user)]


async def web_actor(request: Request, user: WebUser) -> Actor:
    return Actor(user.name, client_ip(request))


WebActor = Annotated[Actor, Depends(web_actor)]


async def checked_form(request: Request, core: CoreDep) -> FormData:
    """The posted form, refused unless it carries this browser's CSRF token."""
    form = await request.form()
    basis = request.cookies.get(SESSION_COOKIE) or request.cookies.get(LOGIN_NONCE_COOKIE)
    presented = form.get(csrf.FIELD) or request.headers.get(csrf.HEADER)
    if not csrf.matches(core.csrf_key, basis, presented if isinstance(presented, str) else None):
        raise Forbidden(
            "The form expired or was not sent from this site; please try again.",
            code="csrf_failed",
        )
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]
