"""A program managed from the dashboard in a real Chromium: added on the machine page,
started and seen running live, its console followed and typed into, then stopped."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium, login, require_browser
from tests.e2e.test_programs import game, online
from tests.procs import ServerProc


@pytest.fixture
def database_url() -> None:
    """The pages do not depend on the database (tests/server cover both)."""
    return None


@pytest.fixture
def page(server: ServerProc) -> Iterator[Any]:
    require_browser()
    with chromium() as browser:
        page = login(browser, server.url)
        yield page
        page.context.close()


def test_a_program_is_added_started_followed_and_stopped_from_the_dashboard(
    server, spawn, page, tmp_path, no_game_left
):
    spawn("game-01")
    online(server.api(), "game-01")
    page.goto(f"{server.url}/pc/game-01")
    page.wait_for_selector("#live[data-state=on]")
    form = page.locator("[data-testid=program-form]")
    form.locator("input[name=name]").fill("srv")
    form.locator("input[name=command]").fill(shlex.join(game(tmp_path)))
    form.locator("[data-testid=program-add]").click()
    page.locator("[data-testid=program-added]").wait_for()
    row = page.locator("[data-testid=program-srv]")
    row.locator("[data-state=stopped]").wait_for()

    row.locator("[data-testid=program-start]").click()
    # Refreshed by the agent's report on the event stream, not by a reload.
    page.locator("[data-testid=program-srv] [data-state=running]").wait_for(timeout=20_000)

    page.locator("[data-testid=program-srv] [data-testid=program-link]").click()
    page.wait_for_url(f"{server.url}/pc/game-01/programs/srv")
    page.locator("[data-testid=definition]").filter(has_text="fakegame.py").wait_for()
    console = page.locator("[data-testid=console]")
    page.fill("[data-testid=console-input]", "echo hello-dash")
    page.click("[data-testid=console-send]")
    console.filter(has_text="hello-dash").wait_for(timeout=15_000)
    page.locator("[data-testid=chart] canvas").wait_for()

    page.locator("#program-facts [data-testid=program-stop]").click()
    page.locator("#program-facts [data-state=stopped]").wait_for(timeout=20_000)
