"""Admin API for the dashboard's data: rooms and seats, status history, live events,
users, CSRF on browser sessions and the login rate limit."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.procs import ServerProc, wait_for

pytestmark = pytest.mark.e2e

STATUS = {
    "cpu_percent": 40.0,
    "ram_used": 1,
    "ram_total": 2,
    "ram_percent": 50.0,
    "disks": [{"mount": "/", "total": 10, "used": 8, "percent": 80.0}],
}


@pytest.fixture(scope="module")
def credentials(server: ServerProc) -> dict[str, str]:
    token = server.token(uses=10)
    out = {}
    for n in range(1, 4):
        machine_id = f"pc-{n}"
        response = httpx.post(
            server.url + "/api/client/register",
            json={
                "enrollment_token": token,
                "machine_id": machine_id,
                "inventory": {"hostname": machine_id},
            },
        )
        assert response.status_code == 200, response.text
        out[machine_id] = response.json()["credential"]
    return out


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def test_rooms_are_created_listed_renamed_and_deleted(admin, credentials):
    assert admin.post("/api/rooms", json={"name": "A101", "rows": 4, "cols": 6}).status_code == 201
    error = error_of(admin.post("/api/rooms", json={"name": "A101"}), 409)
    assert "already exists" in error["message"]
    response = admin.put("/api/rooms/A101/layout", json={"seats": {"pc-1": "1-1", "pc-2": "4-6"}})
    assert response.status_code == 200, response.text
    assert response.json()["seats"] == {"pc-1": "1-1", "pc-2": "4-6"}
    rooms = {room["name"]: room for room in admin.get("/api/rooms").json()}
    assert rooms["A101"] | {} == {
        "name": "A101",
        "rows": 4,
        "cols": 6,
        "machines": 2,
        "online": 0,
        "defined": True,
    }
    renamed = admin.patch("/api/rooms/A101", json={"name": "B202", "cols": 5})
    assert renamed.status_code == 200, renamed.text
    layout = admin.get("/api/rooms/B202").json()
    # pc-2 sat in column 6, which the smaller grid no longer has: it keeps the room only.
    assert layout["seats"] == {"pc-1": "1-1", "pc-2": None}
    assert admin.get("/api/machines/pc-1").json()["room"] == "B202"
    assert admin.delete("/api/rooms/B202").status_code == 204
    assert admin.get("/api/machines/pc-1").json()["room"] is None
    error_of(admin.get("/api/rooms/B202"), 404)


def test_a_room_named_only_by_machines_is_listed_and_can_be_laid_out(admin, credentials):
    assert admin.patch("/api/machines/pc-3", json={"room": "C303"}).status_code == 200
    rooms = {room["name"]: room for room in admin.get("/api/rooms").json()}
    assert rooms["C303"]["defined"] is False
    assert rooms["C303"]["machines"] == 1
    response = admin.put("/api/rooms/C303/layout", json={"seats": {"pc-3": "2-2"}})
    assert response.status_code == 200, response.text
    assert admin.get("/api/rooms/C303").json()["room"]["defined"] is True


LAYOUT_CASES = [
    # (seats, status, code, field)
    ({"pc-1": "9-1"}, 422, "invalid_seat", "seats.pc-1"),
    ({"pc-1": "first"}, 422, "invalid_seat", "seats.pc-1"),
    ({"nope": "1-1"}, 404, "unknown_machine", "seats"),
    ({"pc-1": "1-1", "pc-2": "1-1"}, 409, "seat_taken", None),
]


@pytest.mark.parametrize(("seats", "status", "code", "field"), LAYOUT_CASES)
def test_bad_layouts_are_refused_with_the_reason(admin, credentials, seats, status, code, field):
    admin.post("/api/rooms", json={"name": "D404", "rows": 2, "cols": 2})
    error = error_of(admin.put("/api/rooms/D404/layout", json={"seats": seats}), status)
    assert error["code"] == code
    if field:
        assert error["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "x", "rows": 0}, "rows"), ({"name": "a/b"}, "name")],
)
def test_bad_room_bodies_name_the_field(admin, body, field):
    error = error_of(admin.post("/api/rooms", json=body), 422)
    assert error["field"] == field


def test_status_history_comes_back_as_chart_ready_arrays(server, admin, credentials):
    headers = {"Authorization": f"Bearer {credentials['pc-1']}"}
    for _ in range(3):
        response = httpx.post(
            server.url + "/api/client/heartbeat", json={"status": STATUS}, headers=headers
        )
        assert response.status_code == 200, response.text

    def history():
        """The chart data, once the heartbeats (stored in batches) are in it."""
        out = admin.get("/api/machines/pc-1/history", params={"range": "24h"}).json()
        return out if out["t"] else None

    out = wait_for(history, timeout=10, what="the heartbeats in the history")
    assert out["bucket_s"] == 240
    # Three beats a moment apart fall into one 4-minute bucket (two at a boundary).
    assert 1 <= len(out["t"]) == len(out["cpu"]) == len(out["ram"]) == len(out["disk"]) <= 2
    assert out["cpu"][-1] == 40.0 and out["ram"][-1] == 50.0 and out["disk"][-1] == 80.0
    assert abs(out["t"][-1] - time.time()) < 600
    error = error_of(admin.get("/api/machines/pc-1/history", params={"range": "1y"}), 422)
    assert error["field"] == "range"
    error_of(admin.get("/api/machines/ghost/history"), 404)


def test_the_event_stream_carries_presence_and_command_changes(server, admin, credentials):
    received: list[tuple[str, dict]] = []
    ready = threading.Event()

    def listen():
        with admin.stream("GET", "/api/events", params={"topics": "machine"}, timeout=10) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            topic = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    topic = line[7:]
                elif line.startswith("data: "):
                    received.append((topic, json.loads(line[6:])))
                    ready.set()
                    if topic == "machine":
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5), "no hello event"
    admin.patch("/api/machines/pc-2", json={"tags": ["lab"]})
    thread.join(5)
    assert received[0][0] == "hello"
    assert received[-1] == ("machine", {"id": "pc-2", "change": "update", "tags": ["lab"]})
    error = error_of(admin.get("/api/events", params={"topics": "gossip"}), 422)
    assert "gossip" in error["message"]


def test_users_are_listed(admin):
    users = admin.get("/api/users").json()
    assert [u["username"] for u in users] == ["admin"]
    assert "password_hash" not in users[0]


def test_a_browser_session_needs_its_csrf_token_to_change_anything(server):
    client = httpx.Client(base_url=server.url)
    response = client.post(
        "/api/auth/login", json={"username": "admin", "password": "admin-password-1"}
    )
    assert response.status_code == 200, response.text
    token = response.json()["csrf_token"]
    assert client.get("/api/machines").status_code == 200
    error = error_of(client.post("/api/rooms", json={"name": "E505"}), 403)
    assert error["code"] == "csrf_failed"
    bad = client.post("/api/rooms", json={"name": "E505"}, headers={"X-CSRF-Token": "0" * 48})
    error_of(bad, 403)
    good = client.post("/api/rooms", json={"name": "E505"}, headers={"X-CSRF-Token": token})
    assert good.status_code == 201, good.text


def test_logins_are_rate_limited_per_user_name(server):
    client = httpx.Client(base_url=server.url)
    body = {"username": "mallory", "password": "guess-guess"}
    codes = [client.post("/api/auth/login", json=body).status_code for _ in range(11)]
    assert codes[:10] == [401] * 10
    response = client.post("/api/auth/login", json=body)
    error = error_of(response, 429)
    assert error["code"] == "too_many_logins"
    assert int(response.headers["retry-after"]) >= 1


def test_a_command_goes_to_an_explicit_selection_of_machines(admin, credentials):
    body = {
        "selector": "2 selected",
        "targets": ["pc-1", "pc-2", "pc-1"],
        "type": "execute",
        "payload": {"command": "echo hi"},
    }
    response = admin.post("/api/commands/bulk", json=body)
    assert response.status_code == 201, response.text
    command = response.json()
    assert command["selector"] == "2 selected"
    assert sorted(run["machine_id"] for run in command["runs"]) == ["pc-1", "pc-2"]
    error = error_of(admin.post("/api/commands/bulk", json={**body, "targets": ["pc-9"]}), 404)
    assert (error["code"], error["field"]) == ("unknown_machine", "targets")
    error = error_of(admin.post("/api/commands/bulk", json={**body, "targets": []}), 422)
    assert error["field"] == "targets"


def test_a_token_for_a_room_enrols_machines_into_it(server, admin):
    response = admin.post("/api/enroll-tokens", json={"uses": 1, "room": "F606"})
    assert response.status_code == 201, response.text
    assert response.json()["room"] == "F606"
    enrolled = httpx.post(
        server.url + "/api/client/register",
        json={
            "enrollment_token": response.json()["token"],
            "machine_id": "pc-f1",
            "inventory": {"hostname": "pc-f1"},
        },
    )
    assert enrolled.status_code == 200, enrolled.text
    machine = admin.get("/api/machines/pc-f1").json()
    assert (machine["room"], machine["seat"]) == ("F606", None)
    error = error_of(admin.post("/api/enroll-tokens", json={"room": "no/slash"}), 422)
    assert error["field"] == "room"
