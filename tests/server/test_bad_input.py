"""Values no column can hold are refused at the edge with a 422 naming the field, and
one misbehaving agent never stops another's data: after each hostile request a
well-behaved agent's heartbeat is still stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.procs import ServerProc, wait_for

pytestmark = pytest.mark.e2e

GOOD = {"cpu_percent": 1.0, "ram_used": 1, "ram_total": 2, "ram_percent": 50.0}


def enrol(server: ServerProc, machine_id: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {server.enrol(machine_id)}",
        "X-WCMS-Session": f"{machine_id}-session",
        "Content-Type": "application/json",
    }


@pytest.fixture(scope="module")
def hostile(server: ServerProc) -> dict[str, str]:
    return enrol(server, "hostile-1")


@pytest.fixture(scope="module")
def sentinel(server: ServerProc) -> dict[str, str]:
    return enrol(server, "sentinel-1")


def raw(value: Any) -> str:
    """JSON as a client may send it: lone surrogates escaped, as JSON allows."""
    return json.dumps(value)


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert "Traceback" not in response.text


def still_stored(server: ServerProc, admin: httpx.Client, sentinel: dict[str, str], n: int) -> None:
    """The sentinel agent's heartbeat (cpu ``n``) reaches the database."""
    body = raw({"status": {**GOOD, "cpu_percent": float(n)}})
    answer = httpx.post(server.url + "/api/client/heartbeat", content=body, headers=sentinel)
    assert answer.status_code == 200, answer.text

    def stored() -> bool:
        status = admin.get("/api/machines/sentinel-1").json().get("last_status") or {}
        return bool(status.get("cpu_percent") == float(n))

    wait_for(stored, what=f"the sentinel's heartbeat {n} stored")
    assert admin.get("/readyz").status_code == 200


HEARTBEATS = [
    # (status fields, field named in the error)
    ({"ram_used": 2**64}, "status.ram_used"),
    ({"ram_total": -(2**63) - 1}, "status.ram_total"),
    ({"process_count": 2**40}, "status.process_count"),
    ({"users": ["\ud800"]}, "status.users"),
    ({"users": ["a\x00b"]}, "status.users"),
    ({"disks": [{"mount": "/", "total": 2**64, "used": 1, "percent": 1}]}, "status.disks.0.total"),
]


@pytest.mark.parametrize(("fields", "field"), HEARTBEATS, ids=[f for _, f in HEARTBEATS])
def test_a_heartbeat_no_column_holds_is_refused(server, admin, hostile, sentinel, fields, field):
    body = raw({"status": {**GOOD, **fields}})
    refused(httpx.post(server.url + "/api/client/heartbeat", content=body, headers=hostile), field)
    still_stored(server, admin, sentinel, len(field))


def test_infinite_numbers_are_refused(server, admin, hostile, sentinel):
    body = (
        '{"status": {"cpu_percent": 1, "ram_used": 1, "ram_total": 2, "ram_percent": 50,'
        ' "uptime_s": Infinity}}'
    )
    response = httpx.post(server.url + "/api/client/heartbeat", content=body, headers=hostile)
    assert response.status_code in (400, 422), response.text
    assert "Traceback" not in response.text
    still_stored(server, admin, sentinel, 91)


def a_delivered_run(server: ServerProc, admin: httpx.Client, headers: dict[str, str]) -> int:
    created = admin.post(
        "/api/commands",
        json={"selector": "hostile-1", "type": "execute", "payload": {"command": "true"}},
    )
    assert created.status_code == 201, created.text
    poll = httpx.get(server.url + "/api/client/command?wait=0", headers=headers)
    runs = [run for run in poll.json()["runs"] if run["command_id"] == created.json()["id"]]
    assert runs, poll.text
    return int(runs[0]["run_id"])


def test_a_result_no_column_holds_is_refused_and_the_run_waits(server, admin, hostile, sentinel):
    run_id = a_delivered_run(server, admin, hostile)
    url = server.url + "/api/client/command/result"
    for result, field in [
        ({"exit_code": 2**64}, "result.exit_code"),
        ({"duration_ms": 2**40}, "result.duration_ms"),
        ({"data": {"n": 2**70}}, "result.data"),
        ({"data": {"k\ud800": 1}}, "result.data"),
    ]:
        body = raw({"run_id": run_id, "state": "succeeded", "result": result})
        refused(httpx.post(url, content=body, headers=hostile), field)
    still_stored(server, admin, sentinel, 92)
    # Output with lone surrogates is the agent's capture: shown scrubbed, not refused.
    body = raw(
        {"run_id": run_id, "state": "failed", "result": {"exit_code": 3, "stdout": "a\ud800b"}}
    )
    answer = httpx.post(url, content=body, headers=hostile)
    assert answer.status_code == 200, answer.text
    run = next(r for r in admin.get("/api/machines/hostile-1/runs").json() if r["id"] == run_id)
    assert run["state"] == "failed"
    assert run["result"]["stdout"] == "a\ufffdb"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/api/action-policies/room:A101", {"disabled": ["\udfff"]}, "disabled"),
        ("PATCH", "/api/machines/hostile-1", {"tags": ["\ud800"]}, "tags"),
        ("PATCH", "/api/machines/hostile-1", {"room": "a\x00"}, "room"),
        (
            "POST",
            "/api/commands",
            {"selector": "all", "type": "execute", "payload": {"command": "echo \ud800"}},
            "payload",
        ),
        (
            "POST",
            "/api/commands",
            {"selector": "all", "type": "execute", "priority": 2**64, "payload": {}},
            "priority",
        ),
        ("POST", "/api/users", {"username": "u\ud800", "password": "x" * 12}, "username"),
    ],
    ids=["policy", "tags", "room-nul", "payload", "priority", "user"],
)
def test_admin_bodies_no_column_holds_are_refused(server, admin, method, path, body, field):
    response = admin.request(
        method, path, content=raw(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"].startswith(field), response.text


@pytest.mark.parametrize("before_id", [2**64, -1, 0])
def test_a_command_page_past_any_id_is_refused(admin, before_id):
    refused(admin.get(f"/api/commands?before_id={before_id}"), "before_id")


@pytest.mark.parametrize("body", [{}, {"name": None, "rows": None, "cols": None}])
def test_an_empty_room_patch_changes_nothing(admin, body):
    assert admin.post("/api/rooms", json={"name": "B202", "rows": 3, "cols": 4}).status_code in (
        201,
        409,
    )
    response = admin.patch("/api/rooms/B202", json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["rows"], response.json()["cols"]) == (3, 4)


@pytest.mark.parametrize(
    "body", ["[" * 5000 + "]" * 5000, '{"name": ' + "9" * 5000 + "}"], ids=["deep", "long-number"]
)
def test_json_the_parser_gives_up_on_is_malformed(admin, body):
    response = admin.post("/api/rooms", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
