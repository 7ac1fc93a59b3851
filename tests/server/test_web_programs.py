"""The dashboard's program pages in process: the machine page's list and add form, the
program page, and the actions, each posted with the browser's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.test_programs_api import Harness
from tests.server.web import log_in
from wcms.protocol.programs import ProgramReport, ProgramState, ProgramStatus
from wcms.server.app import create_app
from wcms.server.settings import Settings

MACHINE = "game-1"
PASSWORD = "x" * 12


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("web")), admin_password=PASSWORD)
    app = create_app(settings)
    with TestClient(app) as client:
        harness = Harness(client, app.state.core)
        harness.enrol(MACHINE)
        body = {
            "machine": MACHINE,
            "name": "mc",
            "preset": "minecraft",
            "command": ["java", "-jar", "server.jar"],
            "probe": "rcon://:hunter2@127.0.0.1:25575",
        }
        harness.call("POST", "/api/programs", body, status=201)
        status = ProgramStatus(
            name="mc", state=ProgramState.RUNNING, players=3, max_players=20, cpu_percent=7.5
        )
        report = ProgramReport(revision=0, statuses=[status])
        client.portal.call(harness.core.programs.apply_report, MACHINE, report)
        yield harness


@pytest.fixture(scope="module")
def browser(harness: Harness) -> Iterator[tuple[TestClient, str]]:
    """The app's client logged in (its cookies) and its CSRF token."""
    client = harness.client
    yield client, log_in(client, PASSWORD, f"/pc/{MACHINE}")


def test_the_machine_page_lists_its_programs_live(browser):
    client, _ = browser
    page = client.get(f"/pc/{MACHINE}")
    assert page.status_code == 200
    assert 'data-testid="program-mc"' in page.text
    assert 'data-state="running"' in page.text and "3 / 20" in page.text and "7.5%" in page.text
    assert "wcms-program-one[detail.machine=='game-1'] from:document" in page.text
    assert "presence,command,machine,layout,alert,status,program" in page.text
    korean = client.get(f"/pc/{MACHINE}", headers={"Accept-Language": "ko"})
    assert "프로그램 추가" in korean.text and "실행 중" in korean.text
    fragment = client.get(f"/pc/{MACHINE}/programs")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'href="/pc/game-1/programs/mc"' in fragment.text


def test_the_program_page_shows_its_definition_without_secrets(browser):
    client, _ = browser
    page = client.get(f"/pc/{MACHINE}/programs/mc")
    assert page.status_code == 200
    assert "rcon://:***@127.0.0.1:25575" in page.text and "hunter2" not in page.text
    assert "java -jar server.jar" in page.text
    assert "programConsole(" in page.text and "programChart(" in page.text
    facts = client.get(f"/pc/{MACHINE}/programs/mc/facts")
    assert facts.status_code == 200 and 'data-testid="program-events"' in facts.text


@pytest.mark.parametrize(
    ("action", "desired"), [("start", "running"), ("stop", "stopped"), ("restart", "running")]
)
def test_actions_need_the_csrf_token_and_change_the_program(browser, harness, action, desired):
    client, csrf = browser
    path = f"/pc/{MACHINE}/programs/mc/{action}"
    refused = client.post(path)
    assert refused.status_code == 403 and "The form expired" in refused.text
    done = client.post(path, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert done.status_code == 200, done.text
    assert '"wcms-program-one"' in done.headers["HX-Trigger"]
    assert harness.call("GET", f"/api/programs/{MACHINE}/mc")["desired"] == desired


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "bad name!", "command": "./srv"}, "name", "Use letters, digits"),
        ({"name": "q", "command": "'./srv"}, "command", "unclosed quote"),
        ({"name": "q", "command": ""}, "command", "Required."),
        ({"name": "q", "command": "./srv", "schedule": "daily"}, "schedule", "cron"),
        ({"name": "q", "command": "./srv", "probe": "ftp://x"}, "probe", ""),
        ({"name": "mc", "command": "./srv"}, "name", "already has a program"),
    ],
)
def test_bad_add_form_values_are_answered_next_to_their_field(browser, fields, field, message):
    client, csrf = browser
    answer = client.post(
        f"/pc/{MACHINE}/programs",
        data={"csrf_token": csrf, **fields},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code in (409, 422), answer.text
    error = re.search(rf'data-testid="error-{field}">([^<]*)<', answer.text)
    assert error is not None, answer.text
    assert message in error[1]
    assert 'data-testid="program-form"' in answer.text and "<html" not in answer.text


def test_errors_come_in_korean_and_a_good_form_adds_the_program(browser, harness):
    client, csrf = browser
    korean = client.post(
        f"/pc/{MACHINE}/programs",
        data={"csrf_token": csrf, "name": "q", "command": "./srv", "schedule": "daily"},
        headers={"Accept-Language": "ko"},
    )
    assert "다섯 필드의 cron 식" in korean.text
    added = client.post(
        f"/pc/{MACHINE}/programs",
        data={
            "csrf_token": csrf,
            "name": "pal",
            "preset": "generic",
            "command": "./PalServer.sh -port 8211 'two words'",
            "restart": "always",
            "stop_command": "shutdown",
        },
    )
    assert added.status_code == 200, added.text
    assert 'data-testid="program-added"' in added.text and "HX-Trigger" in added.headers
    out = harness.call("GET", f"/api/programs/{MACHINE}/pal")
    assert out["command"] == ["./PalServer.sh", "-port", "8211", "two words"]
    assert (out["restart"], out["stop_command"], out["desired"]) == (
        "always",
        "shutdown",
        "stopped",
    )
    removed = client.post(
        f"/pc/{MACHINE}/programs/pal/remove", data={"csrf_token": csrf, "back": "1"}
    )
    assert removed.headers["HX-Redirect"] == f"/pc/{MACHINE}"
    harness.call("GET", f"/api/programs/{MACHINE}/pal", status=404)


@pytest.mark.parametrize(
    "path",
    [
        "/pc/nobody/programs/mc",
        f"/pc/{MACHINE}/programs/nope",
        f"/pc/{MACHINE}/programs/nope/facts",
        "/pc/nobody/programs",
    ],
)
def test_unknown_machines_and_programs_are_a_404_page(browser, path):
    client, _ = browser
    page = client.get(path)
    assert page.status_code == 404
    assert 'data-testid="error"' in page.text and "Traceback" not in page.text
    # Without a session: the login page, not the error.
    cookies = dict(client.cookies)
    client.cookies.clear()
    try:
        assert "/login" in client.get(path, follow_redirects=False).headers["location"]
    finally:
        client.cookies.update(cookies)
