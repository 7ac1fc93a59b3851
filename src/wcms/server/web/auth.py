"""Dashboard login, logout and language choice."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from wcms.server.api.deps import (
    SESSION_COOKIE,
    AccountsDep,
    CoreDep,
    clear_session_cookie,
    client_ip,
    set_session_cookie,
)
from wcms.server.errors import TooManyRequests, Unauthorized
from wcms.server.web.deps import CheckedForm
from wcms.server.web.i18n import COOKIE, LANGUAGES, negotiate, translator
from wcms.server.web.render import LOGIN_NONCE_COOKIE, render

router = APIRouter(include_in_schema=False)


def safe_next(target: object) -> str:
    """Only a local path: a login link must not send the browser elsewhere."""
    text = target if isinstance(target, str) else "/"
    local = text.startswith("/") and not text.startswith("//") and "\\" not in text
    return text if local else "/"


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", title="Log in", next=safe_next(next))


@router.post("/login")
async def login(
    request: Request, core: CoreDep, accounts: AccountsDep, form: CheckedForm
) -> Response:
    username = str(form.get("username") or "")[:64]
    password = str(form.get("password") or "")
    target = safe_next(form.get("next"))
    try:
        core.login_throttle.check(ip=client_ip(request), username=username)
        if not username or not password:
            raise Unauthorized("missing", code="bad_login")
        token = await accounts.login(username, password, ip=client_ip(request))
    except (Unauthorized, TooManyRequests) as exc:
        _ = translator(negotiate(request))
        message = (
            exc.message if isinstance(exc, TooManyRequests) else _("Wrong user name or password.")
        )
        return render(
            request,
            "login.html",
            status=exc.status_code,
            title="Log in",
            error=message,
            username=username,
            next=target,
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_NONCE_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, accounts: AccountsDep, _: CheckedForm) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await accounts.logout(token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("/lang/{language}")
async def choose_language(language: str, next: str = "/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response
