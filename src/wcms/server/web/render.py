"""Rendering dashboard pages: the template environment and what every page knows."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from wcms import __version__
from wcms.server import csrf
from wcms.server.api.deps import SESSION_COOKIE
from wcms.server.web.i18n import PRESENCE_REASONS, negotiate, translator

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
LOGIN_NONCE_COOKIE = "wcms_login_nonce"

templates = Jinja2Templates(directory=TEMPLATES)


WHAT_CHARS = 80


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language, carrying the CSRF token for its forms."""
    language = negotiate(request)
    nonce = None
    basis = request.cookies.get(SESSION_COOKIE)
    if not basis:
        basis = request.cookies.get(LOGIN_NONCE_COOKIE)
        if not basis:
            basis = nonce = secrets.token_urlsafe(24)
    key: bytes = request.app.state.core.csrf_key
    response = templates.TemplateResponse(
        request,
        template,
        {
            "_": translator(language),
            "lang": language,
            "csrf_token": csrf.token_for(key, basis),
            "version": __version__,
            "path": request.url.path,
            "status": status,
            **context,
        },
        status_code=status,
    )
    if nonce is not None:
        response.set_cookie(
            LOGIN_NONCE_COOKIE, nonce, httponly=True, samesite="strict", max_age=3600
        )
    return response


def _time(value: datetime | str | None) -> Markup:
    """A <time> the browser shows in its own time zone and language (see app.js)."""
    if value is None:
        return Markup("\u2013")
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    shown = text[:19].replace("T", " ")
    # Both values are escaped before they are marked safe.
    return Markup(f'<time datetime="{escape(text)}">{escape(shown)} UTC</time>')  # noqa: S704


def _bytes(value: float | None) -> str:
    if value is None:
        return "\u2013"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def query_string(fields: dict[str, Any]) -> str:
    """A query string of the fields given a value."""
    return urlencode({k: v for k, v in fields.items() if v not in (None, "")})


def address(path: str, fields: dict[str, Any]) -> str:
    """``path`` with the fields given a value as its query: a list page's own address."""
    query = query_string(fields)
    return f"{path}?{query}" if query else path


def whole_number(text: str, *, maximum: int) -> int | None:
    """A query parameter's positive whole number of at most ``maximum``, else None
    (``str.isdigit`` alone takes "²", which ``int`` refuses)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if 0 < number <= maximum else None


def _what(payload: dict[str, Any]) -> str:
    """A command's payload in one short line: what it was told to do."""
    parts = []
    for key, value in payload.items():
        if value in (None, "", [], {}):
            continue
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(shown if key in ("command", "text", "message") else f"{key}={shown}")
    line = " · ".join(parts)
    return line if len(line) <= WHAT_CHARS else line[: WHAT_CHARS - 1] + "…"


@pass_context
def _reason(context: Any, code: str | None) -> str:
    """Why a machine went online or offline, in the page's language."""
    if not code:
        return "\u2013"
    return str(context["_"](PRESENCE_REASONS.get(code, code)))


@pass_context
def _reason_labels(context: Any) -> dict[str, str]:
    """Every presence reason's words, for the page's script to show live changes."""
    return {code: str(context["_"](words)) for code, words in PRESENCE_REASONS.items()}


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "\u2013"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


templates.env.filters["time"] = _time
templates.env.filters["bytes"] = _bytes
templates.env.filters["duration"] = _duration
templates.env.filters["query"] = query_string
templates.env.filters["what"] = _what
templates.env.filters["reason"] = _reason
templates.env.globals["reason_labels"] = _reason_labels
