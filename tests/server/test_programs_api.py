"""The programs admin API in process, on both databases: presets, errors naming their
field, secrets sealed and never shown, revisions, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wcms.protocol import Inventory, RegisterRequest
from wcms.server.app import create_app
from wcms.server.core import Core
from wcms.server.services.audit import Actor
from wcms.server.settings import Settings
from wcms.server.store import programs as program_store

ADMIN = Actor("test")
MACHINE = "host-1"


class Harness:
    """The app in process, an API key, and machines enrolled as their agents would."""

    def __init__(self, client: TestClient, core: Core) -> None:
        self.client = client
        self.core = core
        _, key = client.portal.call(lambda: core.accounts.create_api_key("t", actor=ADMIN))
        self.headers = {"Authorization": f"Bearer {key}"}

    def enrol(self, machine_id: str) -> str:
        """Enrol ``machine_id``; returns its agent credential."""
        _, token = self.client.portal.call(
            lambda: self.core.enrollment.create_token(uses=1, ttl_s=60, note=None, actor=ADMIN)
        )
        request = RegisterRequest(
            enrollment_token=token, machine_id=machine_id, inventory=Inventory(hostname=machine_id)
        )
        answer = self.client.post("/api/client/register", json=request.model_dump(mode="json"))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["credential"])

    def call(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        answer = self.client.request(method, path, json=body, headers=self.headers)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    def revision(self, machine_id: str) -> int:
        async def read() -> int:
            async with self.core.db.connect() as conn:
                return (await program_store.set_of(conn, machine_id)).revision

        return self.client.portal.call(read)


@pytest.fixture(scope="module")
def harness(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("programs")),
        database_url=module_database_url,
        admin_password="x" * 12,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        harness = Harness(client, app.state.core)
        harness.enrol(MACHINE)
        yield harness


def program(name: str, **fields: Any) -> dict[str, Any]:
    return {"machine": MACHINE, "name": name, "command": ["./server"], **fields}


def test_a_minecraft_preset_fills_what_was_not_given(harness):
    out = harness.call(
        "POST", "/api/programs", program("mc", preset="minecraft", stop_timeout_s=90), status=201
    )
    assert out["state"] == "stopped" and out["desired"] == "stopped"
    assert out["ready_line"] == r"Done \(\d+(\.\d+)?s\)!"
    assert out["stop_line"] == "Stopping (the )?server"
    assert out["stop_command"] == "stop"
    assert out["stop_timeout_s"] == 90  # given wins over the preset
    assert out["probe"] == "minecraft://127.0.0.1:25565"
    assert out["pending_sync"] is True
    for key in ("pid", "uptime_s", "restarts", "last_exit", "players", "cpu_percent", "rss_bytes"):
        assert key in out


def test_palworld_stops_through_its_api_only_with_a_palworld_probe(harness):
    with_api = harness.call(
        "POST",
        "/api/programs",
        program("pal", preset="palworld", probe="palworld://admin:hunter2@127.0.0.1:8212"),
        status=201,
    )
    plain = harness.call("POST", "/api/programs", program("pal2", preset="palworld"), status=201)
    assert with_api["stop_command"] == "shutdown"
    assert with_api["stop_timeout_s"] > 60
    assert plain["stop_command"] is None
    assert with_api["probe"] == "palworld://admin:***@127.0.0.1:8212"


def test_secrets_are_never_shown_nor_audited(harness):
    out = harness.call(
        "POST",
        "/api/programs",
        program(
            "ark",
            preset="ark",
            secret_env={"ADMIN_PASSWORD": "s3cret-value"},
            probe="rcon://:rcon-pass@127.0.0.1:27020",
        ),
        status=201,
    )
    assert out["secret_env"] == ["ADMIN_PASSWORD"]
    assert out["probe"] == "rcon://:***@127.0.0.1:27020"
    assert out["stop_command"] == "DoExit" and out["stop_timeout_s"] == 120
    listed = json.dumps(harness.call("GET", "/api/programs"))
    audit = json.dumps(harness.call("GET", "/api/audit"))
    assert "program.create" in audit
    for text in (listed, audit):
        assert "s3cret-value" not in text and "rcon-pass" not in text

    async def stored_rows() -> str:
        async with harness.core.db.connect() as conn:
            record = await program_store.get(conn, MACHINE, "ark")
        return json.dumps(record.spec) + str(record.sealed_secrets)

    assert "s3cret-value" not in harness.client.portal.call(stored_rows)


ERRORS = [
    ("POST", "/api/programs", program("x", preset="factorio"), 422, "invalid", "preset"),
    ("POST", "/api/programs", program("x", probe="ftp://h:1"), 422, "invalid", "probe"),
    ("POST", "/api/programs", program("x", probe="rcon://127.0.0.1:1"), 422, "invalid", "probe"),
    ("POST", "/api/programs", program("x", schedule="61 * * * *"), 422, "invalid", "schedule"),
    ("POST", "/api/programs", program("x", schedule="daily"), 422, "invalid", "schedule"),
    ("POST", "/api/programs", program("x", command=[" "]), 422, "invalid", "command"),
    ("POST", "/api/programs", program("x", command=[]), 422, "invalid", "command"),
    ("POST", "/api/programs", program("x", ready_line="(["), 422, "invalid", "ready_line"),
    ("POST", "/api/programs", program("x", colour="red"), 422, "invalid", "colour"),
    ("POST", "/api/programs", program("bad name"), 422, "invalid", "name"),
    (
        "POST",
        "/api/programs",
        {**program("x"), "machine": "nowhere"},
        404,
        "unknown_machine",
        "machine",
    ),
    ("GET", "/api/programs?selector=nowhere", None, 404, "unknown_selector", None),
    ("GET", f"/api/programs/{MACHINE}/missing", None, 404, "not_found", None),
    ("POST", f"/api/programs/{MACHINE}/missing/start", None, 404, "not_found", None),
    ("PATCH", f"/api/programs/{MACHINE}/missing", {"cwd": "/"}, 404, "not_found", None),
    ("DELETE", f"/api/programs/{MACHINE}/missing", None, 404, "not_found", None),
    ("GET", f"/api/programs/{MACHINE}/missing/events", None, 404, "not_found", None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "field"), ERRORS)
def test_refusals_name_their_field(harness, method, path, body, status, code, field):
    error = harness.call(method, path, body, status=status)["error"]
    assert (error["code"], error.get("field")) == (code, field), error


def test_a_taken_name_is_a_conflict_naming_the_field(harness):
    harness.call("POST", "/api/programs", program("twice"), status=201)
    error = harness.call("POST", "/api/programs", program("twice"), status=409)["error"]
    assert (error["code"], error["field"]) == ("conflict", "name")


def test_a_patch_of_the_probe_tuning_without_a_probe_names_the_field(harness):
    harness.call("POST", "/api/programs", program("noprobe"), status=201)
    error = harness.call(
        "PATCH", f"/api/programs/{MACHINE}/noprobe", {"probe_failures": 5}, status=422
    )["error"]
    assert error["field"] == "probe_failures"


def test_every_change_raises_the_revision_once(harness):
    before = harness.revision(MACHINE)
    harness.call("POST", "/api/programs", program("rev"), status=201)
    steps = [
        ("PATCH", f"/api/programs/{MACHINE}/rev", {"cwd": "/srv"}),
        ("POST", f"/api/programs/{MACHINE}/rev/start", None),
        ("POST", f"/api/programs/{MACHINE}/rev/restart", None),
        ("POST", f"/api/programs/{MACHINE}/rev/stop", None),
    ]
    seen = [harness.revision(MACHINE)]
    for method, path, body in steps:
        out = harness.call(method, path, body)
        assert out["revision"] == harness.revision(MACHINE)
        seen.append(harness.revision(MACHINE))
    assert seen == list(range(before + 1, before + 6))
    # What changes nothing raises nothing: a stop of a stopped program, an empty patch.
    harness.call("POST", f"/api/programs/{MACHINE}/rev/stop")
    harness.call("PATCH", f"/api/programs/{MACHINE}/rev", {"cwd": "/srv"})
    assert harness.revision(MACHINE) == before + 5
    harness.call("DELETE", f"/api/programs/{MACHINE}/rev", status=204)
    assert harness.revision(MACHINE) == before + 6
    restarted = [e for e in harness.call("GET", "/api/audit") if e["action"] == "program.restart"]
    assert restarted and restarted[0]["target"] == f"{MACHINE}/rev"


def test_a_patch_changes_only_what_it_gives(harness):
    harness.call(
        "POST",
        "/api/programs",
        program("patched", preset="minecraft", env={"A": "1"}, schedule="0 4 * * *"),
        status=201,
    )
    out = harness.call(
        "PATCH",
        f"/api/programs/{MACHINE}/patched",
        {"schedule": None, "command": ["java", "-jar", "server.jar"], "restart": "always"},
    )
    assert out["schedule"] is None
    assert out["command"] == ["java", "-jar", "server.jar"]
    assert out["restart"] == "always"
    assert out["env"] == {"A": "1"}
    assert out["stop_command"] == "stop"


def test_a_wait_with_no_agent_answers_the_state_it_is_in(harness):
    harness.call("POST", "/api/programs", program("waiting"), status=201)
    out = harness.call("POST", f"/api/programs/{MACHINE}/waiting/start?wait=0.3")
    assert out["desired"] == "running"
    assert out["state"] == "stopped"
    assert out["pending_sync"] is True
