"""The session cookie is one cookie, whichever login set it."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.procs import ServerProc

pytestmark = pytest.mark.e2e

ADMIN = {"username": "admin", "password": "admin-password-1"}


def session_cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The session's value and its attributes (names lower-cased) from Set-Cookie."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("wcms_session=")]
    assert len(headers) == 1, response.headers
    first, *rest = (part.strip() for part in headers[0].split(";"))
    attributes = {}
    for part in rest:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value.lower()
    return first.partition("=")[2], attributes


def api_login(server: ServerProc) -> httpx.Response:
    response = httpx.post(server.url + "/api/auth/login", json=ADMIN)
    assert response.status_code == 200, response.text
    return response


def dashboard_login(server: ServerProc) -> httpx.Response:
    with httpx.Client(base_url=server.url) as browser:
        page = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        response = browser.post("/login", data={**ADMIN, "csrf_token": token[1], "next": "/"})
    assert response.status_code == 303, response.text
    return response


def test_the_api_and_the_dashboard_set_the_same_session_cookie(server):
    api_session, api_attributes = session_cookie(api_login(server))
    web_session, web_attributes = session_cookie(dashboard_login(server))
    assert api_attributes == web_attributes
    # Lax: a link to /pc/ID from a chat message must arrive logged in.
    assert api_attributes["samesite"] == "lax"
    assert "httponly" in api_attributes and api_attributes["path"] == "/"
    assert int(api_attributes["max-age"]) == 12 * 3600
    assert api_session != web_session
    for session in (api_session, web_session):
        me = httpx.get(server.url + "/api/auth/me", cookies={"wcms_session": session})
        assert me.status_code == 200 and me.json() == {"name": "admin", "via": "session"}
