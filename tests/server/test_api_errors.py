"""Bad input gets a clear 4xx JSON error naming the problem, never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.procs import ServerProc, wait_for

pytestmark = pytest.mark.e2e

INVENTORY = {"hostname": "probe", "macs": ["02:00:00:00:00:01"]}


@pytest.fixture(scope="module")
def agent_credential(server: ServerProc) -> str:
    response = httpx.post(
        server.url + "/api/client/register",
        json={"enrollment_token": server.token(), "machine_id": "probe-1", "inventory": INVENTORY},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["credential"])


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


COMMAND_CASES = [
    # (body, status, code, field)
    (
        {"selector": "all", "type": "format-disk", "payload": {}},
        422,
        "unknown_command_type",
        "type",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {}},
        422,
        "invalid_payload",
        "payload.command",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "   "}},
        422,
        "invalid_payload",
        "payload.command",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "x" * 9000}},
        422,
        "invalid_payload",
        "payload.command",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "ls", "bogus": 1}},
        422,
        "invalid_payload",
        "payload.bogus",
    ),
    (
        {"selector": "probe-1", "type": "reboot", "payload": {"delay_s": -1}},
        422,
        "invalid_payload",
        "payload.delay_s",
    ),
    (
        {"selector": "no-such-pc", "type": "execute", "payload": {"command": "ls"}},
        404,
        "unknown_selector",
        None,
    ),
    (
        {"selector": "room:nowhere", "type": "execute", "payload": {"command": "ls"}},
        404,
        "unknown_selector",
        None,
    ),
    (
        {"selector": "probe-1,,all", "type": "execute", "payload": {"command": "ls"}},
        422,
        "invalid_selector",
        "selector",
    ),
    (
        {"selector": "tag:", "type": "execute", "payload": {"command": "ls"}},
        422,
        "invalid_selector",
        "selector",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "ls"}, "priority": 1000},
        422,
        "invalid",
        "priority",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "ls"}, "timeout_s": 0},
        422,
        "invalid",
        "timeout_s",
    ),
    ({"type": "execute", "payload": {"command": "ls"}}, 422, "invalid", "selector"),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "ls"}, "extra": 1},
        422,
        "invalid",
        "extra",
    ),
    (
        {"selector": "probe-1", "type": "execute", "payload": {"command": "mkfs.ext4 /dev/sda1"}},
        422,
        "policy_violation",
        "payload.command",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), COMMAND_CASES)
def test_bad_commands_are_refused_clearly(admin, agent_credential, body, status, code, field):
    error = error_of(admin.post("/api/commands", json=body), status)
    assert error["code"] == code
    assert error["message"]
    assert error.get("field") == field


def test_malformed_json_is_a_400(admin):
    response = admin.post(
        "/api/commands",
        content=b'{"selector": "all", ',
        headers={"content-type": "application/json"},
    )
    assert error_of(response, 400)["code"] == "malformed_json"


def test_an_oversize_body_is_a_413(admin):
    body = {
        "selector": "all",
        "type": "execute",
        "payload": {"command": "ls", "env": {"A": "x" * 2_000_000}},
    }
    assert error_of(admin.post("/api/commands", json=body), 413)["code"] == "payload_too_large"


def test_an_oversize_streamed_body_is_a_413(admin):
    def chunks() -> Iterator[bytes]:
        yield b'{"selector": "all", "type": "execute", "payload": {"command": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}}'

    response = admin.post(
        "/api/commands", content=chunks(), headers={"content-type": "application/json"}
    )
    assert error_of(response, 413)["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Bearer nonsense"}, "invalid_api_key"),
        ({"Authorization": "Bearer wcmsk_0000_abcd"}, "invalid_api_key"),
    ],
)
def test_admin_calls_need_a_valid_key(server, headers, code):
    response = httpx.get(server.url + "/api/machines", headers=headers)
    assert error_of(response, 401)["code"] == code


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/machines/nope", 404, "not_found"),
        ("/api/commands/999999", 404, "not_found"),
        ("/api/commands/abc", 422, "invalid"),
        ("/api/no-such-route", 404, "not_found"),
        ("/api/commands?limit=abc", 422, "invalid"),
        ("/api/machines?status=sleeping", 422, "invalid"),
    ],
)
def test_bad_paths_and_queries(admin, path, status, code):
    assert error_of(admin.get(path), status)["code"] == code


def register(server: ServerProc, token: str, machine_id: str = "probe-x") -> httpx.Response:
    return httpx.post(
        server.url + "/api/client/register",
        json={"enrollment_token": token, "machine_id": machine_id, "inventory": INVENTORY},
    )


def test_enrolment_with_a_bad_token_is_refused(server):
    good = server.token()
    token_id = good.split("_")[1]
    for token, code in [
        ("garbage", "invalid_token"),
        (f"wcmse_{token_id}_wrongsecret", "invalid_token"),
        ("wcmse_ffffffffffffffff_x", "invalid_token"),
    ]:
        assert error_of(register(server, token), 401)["code"] == code


def server_clock(server: ServerProc) -> datetime:
    """The server's time, from its Date header: whole seconds, never ahead of it."""
    return parsedate_to_datetime(httpx.get(server.url + "/healthz").headers["date"])


def test_an_expired_token_is_refused(server, admin):
    token = server.token(ttl="1s")
    token_id = token.split("_")[1]
    [listed] = [t for t in admin.get("/api/enroll-tokens").json() if t["id"] == token_id]
    expires_at = datetime.fromisoformat(listed["expires_at"])
    expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    # The TTL itself must pass: waited for on the server's own clock, not the test's.
    wait_for(lambda: server_clock(server) > expires_at, what="the token's expiry, server time")
    error = error_of(register(server, token), 401)
    assert error["code"] == "token_expired"


def test_a_used_up_token_is_refused(server):
    token = server.token(uses=2)
    assert register(server, token, "used-1").status_code == 200
    assert register(server, token, "used-2").status_code == 200
    error = error_of(register(server, token, "used-3"), 401)
    assert error["code"] == "token_used_up"
    assert "2 of 2" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"machine_id": "bad id!", "inventory": INVENTORY}, "machine_id"),
        ({"machine_id": "ok", "inventory": {}}, "inventory.hostname"),
        ({"machine_id": "x" * 200, "inventory": INVENTORY}, "machine_id"),
    ],
)
def test_register_validates_its_body(server, body, field):
    response = httpx.post(
        server.url + "/api/client/register", json={"enrollment_token": server.token(), **body}
    )
    error = error_of(response, 422)
    assert error["field"] == field


def test_a_revoked_credential_is_refused_everywhere(server, admin):
    credential = register(server, server.token(), "revokee").json()["credential"]
    headers = {"Authorization": f"Bearer {credential}"}
    heartbeat = {"status": {"cpu_percent": 1, "ram_used": 1, "ram_total": 2, "ram_percent": 50}}
    assert (
        httpx.post(
            server.url + "/api/client/heartbeat", json=heartbeat, headers=headers
        ).status_code
        == 200
    )
    assert admin.post("/api/machines/revokee/revoke").status_code == 200
    for method, path, body in [
        ("POST", "/api/client/heartbeat", heartbeat),
        ("GET", "/api/client/command", None),
        ("POST", "/api/client/command/result", {"run_id": 1, "state": "running"}),
    ]:
        response = httpx.request(method, server.url + path, json=body, headers=headers)
        assert error_of(response, 401)["code"] == "credential_revoked"


def test_agent_calls_without_a_credential_are_refused(server):
    response = httpx.get(server.url + "/api/client/command")
    assert error_of(response, 401)["code"] == "unknown_credential"


def test_an_agent_cannot_report_on_another_machines_run(server, admin, agent_credential):
    other = register(server, server.token(), "other-pc").json()["credential"]
    command = admin.post(
        "/api/commands",
        json={"selector": "probe-1", "type": "execute", "payload": {"command": "true"}},
    ).json()
    run_id = command["runs"][0]["id"]
    forged = {"run_id": run_id, "attempt": 1, "state": "succeeded", "result": {"exit_code": 0}}
    response = httpx.post(
        server.url + "/api/client/command/result",
        json=forged,
        headers={"Authorization": f"Bearer {other}"},
    )
    assert response.status_code == 200
    assert admin.get(f"/api/commands/{command['id']}").json()["runs"][0]["state"] != "succeeded"


def test_an_agent_cannot_set_server_only_states(server, admin, agent_credential):
    headers = {"Authorization": f"Bearer {agent_credential}"}
    response = httpx.post(
        server.url + "/api/client/command/result",
        json={"run_id": 1, "attempt": 1, "state": "expired"},
        headers=headers,
    )
    assert error_of(response, 422)["field"] == "state"


def test_an_overlong_stdout_from_an_agent_is_capped(server, admin, agent_credential):
    headers = {"Authorization": f"Bearer {agent_credential}", "X-WCMS-Session": "probe"}
    command = admin.post(
        "/api/commands",
        json={"selector": "probe-1", "type": "execute", "payload": {"command": "true"}},
    ).json()
    run_id = command["runs"][0]["id"]
    result = {"exit_code": 0, "stdout": "é" * 400_000, "stderr": "e" * 100}
    response = httpx.post(
        server.url + "/api/client/command/result",
        json={"run_id": run_id, "attempt": 1, "state": "succeeded", "result": result},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    stored = admin.get(f"/api/commands/{command['id']}").json()["runs"][0]["result"]
    assert stored["stdout_truncated"] is True
    assert len(stored["stdout"].encode()) <= 64 * 1024
    assert set(stored["stdout"]) == {"é"}
    assert stored["stderr"] == "e" * 100 and stored["stderr_truncated"] is False


def test_retry_with_nothing_to_retry_is_a_409(admin, agent_credential):
    command = admin.post(
        "/api/commands",
        json={"selector": "probe-1", "type": "execute", "payload": {"command": "true"}},
    ).json()
    error = error_of(admin.post(f"/api/commands/{command['id']}/retry"), 409)
    assert error["code"] == "nothing_to_retry"


def test_errors_never_leak_a_stack_trace(server, admin):
    for path in ("/api/machines/%00", "/api/commands/99999999999999999999999"):
        response = admin.get(path)
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
