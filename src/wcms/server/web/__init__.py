"""The dashboard: server-rendered pages, live through the event stream.

Pages are Jinja2 templates; htmx swaps fragments, Alpine.js keeps small pieces of page
state and uPlot draws charts. The three are vendored minified in ``static/vendor`` (see
``static/vendor/VERSIONS.md``): nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from wcms.server.errors import WcmsError
from wcms.server.web import admin, alert_config, alerts, auth, commands, fleet, programs
from wcms.server.web.deps import LoginRequired
from wcms.server.web.i18n import negotiate, translator
from wcms.server.web.render import STATIC, render


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and HTML error pages to ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    for module in (auth, fleet, commands, programs, alert_config, alerts, admin):
        app.include_router(module.router)
    app.add_exception_handler(LoginRequired, _to_login)
    for kind in (WcmsError, RequestValidationError, HTTPException, Exception):
        json_handler = app.exception_handlers[kind]
        app.add_exception_handler(kind, _html_for_pages(json_handler))


async def _favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the icon, not a 404."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


async def _to_login(request: Request, _: Exception) -> Response:
    target = "/login?next=" + request.url.path
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _html_for_pages(json_handler: Any) -> Any:
    """API paths keep their JSON errors; dashboard pages get an error page (or, for an
    htmx request, a fragment to show in place)."""

    async def handle(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(("/api/", "/healthz", "/readyz", "/metrics", "/docs")):
            return await json_handler(request, exc)  # type: ignore[no-any-return]
        status, message = _describe(request, exc)
        template = "fragment_error.html" if request.headers.get("hx-request") else "error.html"
        return render(request, template, status=status, message=message, title="WCMS")

    return handle


def _describe(request: Request, exc: Exception) -> tuple[int, str]:
    _ = translator(negotiate(request))
    if isinstance(exc, WcmsError):
        return exc.status_code, _(exc.message)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return 422, f"{where}: {first.get('msg', 'invalid request')}"
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        return 404, _("Page not found.")
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return status, str(getattr(exc, "detail", "error"))
