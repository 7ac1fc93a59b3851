"""The OpenAPI document says who may call each route and every error it answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wcms.server.app import create_app
from wcms.server.openapi import ROUTE_ERRORS
from wcms.server.settings import Settings

ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
# Admin API routes that need no admin: logging in, and out.
OPEN_ADMIN_ROUTES = {("post", "/api/auth/login"), ("post", "/api/auth/logout")}
# The fixed contract's HTTP paths (PRODUCT.md, README).
CONTRACT_PATHS = [
    "/healthz",
    "/metrics",
    "/api/client/register",
    "/api/client/heartbeat",
    "/api/client/command",
    "/api/client/command/result",
    "/api/client/shutdown",
    "/api/machines",
    "/api/commands",
    "/api/rooms",
    "/api/enroll-tokens",
    "/api/api-keys",
    "/api/users",
    "/api/audit",
    "/api/events",
    "/api/auth/login",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Not entered as a context manager: the document needs no database, so the app's
    # lifespan (migrations, workers) is not run.
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    yield TestClient(app)


@pytest.fixture(scope="module")
def schema(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def agent_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in operations(schema) if op[1].startswith("/api/client/")]


def admin_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        op
        for op in operations(schema)
        if op[1].startswith("/api/")
        and not op[1].startswith("/api/client/")
        and op[:2] not in OPEN_ADMIN_ROUTES
    ]


def schemes_of(operation: dict[str, Any]) -> set[str]:
    return {name for requirement in operation.get("security", []) for name in requirement}


def test_it_declares_the_agent_and_admin_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["agentCredential"] | {"description": ""} == {
        "type": "http",
        "scheme": "bearer",
        "description": "",
    }
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["scheme"]) == ("http", "bearer")
    assert (schemes["apiKeyHeader"]["in"], schemes["apiKeyHeader"]["name"]) == (
        "header",
        "X-API-Key",
    )
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "wcms_session",
    )
    assert (schemes["csrfToken"]["in"], schemes["csrfToken"]["name"]) == ("header", "X-CSRF-Token")


def test_every_agent_route_takes_the_credential_and_lists_401_and_503(schema):
    found = agent_operations(schema)
    assert len(found) >= 6
    for method, path, operation in found:
        assert "agentCredential" in schemes_of(operation), (method, path)
        assert {"401", "503"} <= set(operation["responses"]), (method, path)


def test_register_enrols_without_a_credential(schema):
    operation = schema["paths"]["/api/client/register"]["post"]
    assert {} in operation["security"]
    assert {"401", "403", "409"} <= set(operation["responses"])


def test_every_admin_route_needs_an_api_key_or_session_and_lists_401(schema):
    found = admin_operations(schema)
    assert len(found) >= 30
    for method, path, operation in found:
        assert {"apiKey", "apiKeyHeader", "sessionCookie"} <= schemes_of(operation), (method, path)
        assert {"401", "503"} <= set(operation["responses"]), (method, path)


def test_admin_changes_with_a_session_need_the_csrf_token(schema):
    for method, path, operation in admin_operations(schema):
        if method == "get":
            assert "csrfToken" not in schemes_of(operation), path
        else:
            assert {"sessionCookie": [], "csrfToken": []} in operation["security"], (method, path)
            assert "403" in operation["responses"], (method, path)


def test_routes_with_bodies_list_400_413_and_422(schema):
    with_bodies = [op for op in operations(schema) if "requestBody" in op[2]]
    assert len(with_bodies) >= 15
    for method, path, operation in with_bodies:
        assert {"400", "413", "422"} <= set(operation["responses"]), (method, path)


def test_uploads_list_413(schema):
    for path in ("/api/files", "/api/client/files"):
        assert "413" in schema["paths"][path]["post"]["responses"]


def test_routes_naming_a_thing_list_404(schema):
    for method, path, operation in operations(schema):
        if "{" in path:
            assert "404" in operation["responses"], (method, path)


def test_the_login_lists_429_with_retry_after(schema):
    answer = schema["paths"]["/api/auth/login"]["post"]["responses"]["429"]
    assert "Retry-After" in answer["headers"]


def test_every_error_answer_is_the_error_envelope(schema):
    for method, path, operation in operations(schema):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref == ENVELOPE_REF, (method, path, status)
    components = schema["components"]["schemas"]
    assert components["ErrorEnvelope"]["properties"]["error"]["$ref"].endswith("/ErrorBody")
    assert {"code", "message", "field"} <= set(components["ErrorBody"]["properties"])
    # FastAPI's own 422 body is never sent, so it is not described either.
    assert "HTTPValidationError" not in components


def test_route_specific_errors_name_real_routes(schema):
    for key in ROUTE_ERRORS:
        method, path = key.split(" ", 1)
        assert method.lower() in schema["paths"].get(path, {}), key


@pytest.mark.parametrize("path", CONTRACT_PATHS)
def test_the_fixed_contract_paths_are_documented(schema, path):
    assert path in schema["paths"]


def test_the_docs_page_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text
