"""Dashboard pages for the audit log and the settings: users, API keys, enrolment tokens."""

from __future__ import annotations

import re
import shlex
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from wcms.server.api.deps import AccountsDep, AuditDep, EnrollmentDep, RoomsDep
from wcms.server.errors import BadRequest
from wcms.server.services.accounts import Principal
from wcms.server.services.enrollment import Enrollment
from wcms.server.services.rooms import Rooms
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.render import render

router = APIRouter(include_in_schema=False)

TokenId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_ROOM = re.compile(r"^[\w.@-][\w .@-]{0,127}$")
_ACTION = re.compile(r"^[a-z_.]{1,64}$")


@router.get("/audit")
async def audit_page(
    request: Request, audit: AuditDep, user: WebUser, action: str | None = None
) -> Response:
    chosen = action if action and _ACTION.match(action) else None
    entries = await audit.recent(limit=300, action=chosen)
    return render(
        request, "audit.html", title="Audit log", user=user, rows=entries, action=chosen or ""
    )


@router.get("/settings/users")
async def users_page(request: Request, accounts: AccountsDep, user: WebUser) -> Response:
    users = await accounts.list_users()
    return render(request, "settings/users.html", title="Users", user=user, users=users)


@router.post("/settings/users")
async def create_user(accounts: AccountsDep, actor: WebActor, form: CheckedForm) -> Response:
    await accounts.create_user(
        str(form.get("username") or ""), str(form.get("password") or ""), actor=actor
    )
    return RedirectResponse("/settings/users", status_code=303)


@router.post("/settings/users/password")
async def change_password(accounts: AccountsDep, actor: WebActor, form: CheckedForm) -> Response:
    await accounts.set_password(
        str(form.get("username") or ""), str(form.get("password") or ""), actor=actor
    )
    return RedirectResponse("/settings/users", status_code=303)


@router.get("/settings/api-keys")
async def keys_page(request: Request, accounts: AccountsDep, user: WebUser) -> Response:
    keys = await accounts.list_api_keys()
    return render(request, "settings/keys.html", title="API keys", user=user, keys=keys)


@router.post("/settings/api-keys")
async def create_key(
    request: Request, accounts: AccountsDep, user: WebUser, actor: WebActor, form: CheckedForm
) -> Response:
    name = str(form.get("name") or "").strip()
    if not 1 <= len(name) <= 100:
        raise BadRequest("name: give a name of 1 to 100 characters", field="name")
    _, key = await accounts.create_api_key(name, actor=actor)
    keys = await accounts.list_api_keys()
    return render(
        request, "settings/keys.html", title="API keys", user=user, keys=keys, new_key=key
    )


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(
    key_id: TokenId, accounts: AccountsDep, actor: WebActor, _: CheckedForm
) -> Response:
    await accounts.revoke_api_key(key_id, actor=actor)
    return RedirectResponse("/settings/api-keys", status_code=303)


@router.get("/settings/enroll-tokens")
async def tokens_page(
    request: Request, enrollment: EnrollmentDep, rooms: RoomsDep, user: WebUser
) -> Response:
    return await _tokens(request, enrollment, rooms, user)


@router.post("/settings/enroll-tokens")
async def create_token(  # six parameters, each filled in by FastAPI
    request: Request,
    enrollment: EnrollmentDep,
    rooms: RoomsDep,
    user: WebUser,
    actor: WebActor,
    form: CheckedForm,
) -> Response:
    uses = _number(form.get("uses"), "uses", 1, 100000, default=1)
    hours = _number(form.get("hours"), "hours", 0.1, 24 * 365, default=24)
    room = str(form.get("room") or "").strip() or None
    if room is not None and not _ROOM.match(room):
        raise BadRequest("room: letters, digits, spaces and . _ @ - only", field="room")
    note = str(form.get("note") or "").strip()[:200] or None
    _, token = await enrollment.create_token(
        uses=int(uses), ttl_s=hours * 3600, note=note, actor=actor, room=room
    )
    server = str(request.base_url).rstrip("/")
    new = install_commands(server, token)
    return await _tokens(request, enrollment, rooms, user, new=new)


async def _tokens(
    request: Request,
    enrollment: Enrollment,
    rooms: Rooms,
    user: Principal,
    *,
    new: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "settings/tokens.html",
        title="Enrollment tokens",
        user=user,
        tokens=await enrollment.list_tokens(),
        rooms=await rooms.list_rooms(),
        new=new,
    )


@router.post("/settings/enroll-tokens/{token_id}/revoke")
async def revoke_token(
    token_id: TokenId, enrollment: EnrollmentDep, actor: WebActor, _: CheckedForm
) -> Response:
    await enrollment.revoke_token(token_id, actor=actor)
    return RedirectResponse("/settings/enroll-tokens", status_code=303)


def install_commands(server: str, token: str) -> dict[str, str]:
    """Ready-to-paste commands that install and enrol an agent."""
    linux = (
        "sudo python3 -m pip install wcms && "
        f"sudo wcms agent --server {shlex.quote(server)} --token {shlex.quote(token)}"
    )
    windows = f'py -m pip install wcms; wcms agent --server "{server}" --token "{token}"'
    return {"token": token, "linux": linux, "windows": windows}


def _number(raw: object, name: str, low: float, high: float, *, default: float) -> float:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a number", field=name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low:g} and {high:g}", field=name)
    return value
