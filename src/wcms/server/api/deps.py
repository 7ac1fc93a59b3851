"""Dependencies shared by the admin API routes and the dashboard: each service a handler
uses, and who is calling. A handler names the services it needs (``commands:
CommandsDep``); none reaches for the engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from wcms.server import csrf
from wcms.server.core import Core
from wcms.server.errors import Forbidden, Unauthorized
from wcms.server.services.accounts import SESSION_TTL, Accounts, Principal
from wcms.server.services.action_policies import ActionPolicies
from wcms.server.services.activity import Activity
from wcms.server.services.alerts import AlertConfig, AlertEngine, Outbox
from wcms.server.services.audit import Actor, AuditLog
from wcms.server.services.commands import Commands
from wcms.server.services.enrollment import Enrollment
from wcms.server.services.files import Files
from wcms.server.services.history import History
from wcms.server.services.machines import Machines
from wcms.server.services.programs import Programs
from wcms.server.services.rooms import Rooms

SESSION_COOKIE = "wcms_session"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Give the browser its session; the API's login and the dashboard's both use this.

    SameSite=Lax, not Strict: the dashboard's login is a POST answered by a 303 redirect,
    and a link from another site (a chat message pointing at /pc/ID) must arrive logged
    in, which Strict would not allow: it sends no cookie on a navigation that starts
    elsewhere. Lax still keeps the cookie off cross-site POSTs, and every change carries
    the session's CSRF token besides (check_csrf, web.deps.checked_form).
    """
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)


def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


def _accounts(core: CoreDep) -> Accounts:
    return core.accounts


def _activity(core: CoreDep) -> Activity:
    return core.activity


def _audit(core: CoreDep) -> AuditLog:
    return core.audit


def _commands(core: CoreDep) -> Commands:
    return core.commands


def _enrollment(core: CoreDep) -> Enrollment:
    return core.enrollment


def _alert_config(core: CoreDep) -> AlertConfig:
    return core.alert_config


def _alert_engine(core: CoreDep) -> AlertEngine:
    return core.alert_engine


def _outbox(core: CoreDep) -> Outbox:
    return core.outbox


def _files(core: CoreDep) -> Files:
    return core.files


def _history(core: CoreDep) -> History:
    return core.history


def _machines(core: CoreDep) -> Machines:
    return core.machines


def _policies(core: CoreDep) -> ActionPolicies:
    return core.policies


def _programs(core: CoreDep) -> Programs:
    return core.programs


def _rooms(core: CoreDep) -> Rooms:
    return core.rooms


AccountsDep = Annotated[Accounts, Depends(_accounts)]
ActivityDep = Annotated[Activity, Depends(_activity)]
AlertConfigDep = Annotated[AlertConfig, Depends(_alert_config)]
AlertEngineDep = Annotated[AlertEngine, Depends(_alert_engine)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
AuditDep = Annotated[AuditLog, Depends(_audit)]
CommandsDep = Annotated[Commands, Depends(_commands)]
EnrollmentDep = Annotated[Enrollment, Depends(_enrollment)]
FilesDep = Annotated[Files, Depends(_files)]
HistoryDep = Annotated[History, Depends(_history)]
MachinesDep = Annotated[Machines, Depends(_machines)]
PoliciesDep = Annotated[ActionPolicies, Depends(_policies)]
ProgramsDep = Annotated[Programs, Depends(_programs)]
RoomsDep = Annotated[Rooms, Depends(_rooms)]


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
