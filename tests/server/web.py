"""The dashboard as a browser uses it, for the in-process page tests."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def log_in(client: TestClient, password: str, page: str = "/") -> str:
    """Log ``client`` in as admin (its cookies keep the session) and return the CSRF
    token that ``page`` gives the browser's forms and htmx requests."""
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    login = {"username": "admin", "password": password, "csrf_token": token[1], "next": "/"}
    assert client.post("/login", data=login, follow_redirects=False).status_code == 303
    shown = client.get(page)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', shown.text)
    assert csrf is not None
    return csrf[1]
