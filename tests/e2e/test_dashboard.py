"""The dashboard in a real Chromium against a real server with real agents."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alert_receiver import HttpReceiver
from tests.browser import chromium, login, require_browser
from tests.procs import AgentProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e

ROOM = "A101"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    require_browser()
    proc = ServerProc(tmp_path_factory.mktemp("dash"), None, offline_grace=30).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser(server: ServerProc) -> Iterator[Any]:
    with chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def page(browser: Any, server: ServerProc) -> Iterator[Any]:
    page = login(browser, server.url)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def agents(server: ServerProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    started: dict[str, AgentProc] = {}
    yield started
    for agent in started.values():
        agent.stop(kill=True)


@pytest.fixture(scope="module")
def room_token(page: Any, server: ServerProc) -> str:
    """A room made in the layout editor and an enrolment token for it, from settings."""
    page.goto(server.url + "/layout/editor")
    page.click("text=New room")
    form = page.locator("[data-testid=new-room]")
    form.locator("input[name=name]").fill(ROOM)
    form.locator("input[name=rows]").fill("3")
    form.locator("input[name=cols]").fill("4")
    form.locator("button").click()
    page.wait_for_url(re.compile(r"/layout/editor\?room=A101"))
    page.goto(server.url + "/settings/enroll-tokens")
    form = page.locator("[data-testid=token-form]")
    form.locator("input[name=room]").fill(ROOM)
    form.locator("button").click()
    token = page.locator("[data-testid=token]").inner_text().strip()
    assert token.startswith("wcmse_")
    linux = page.locator("[data-testid=install-linux]").inner_text()
    windows = page.locator("[data-testid=install-windows]").inner_text()
    assert f"--server {server.url}" in linux and token in linux
    assert f'--server "{server.url}"' in windows and token in windows
    return token


def start_agent(server, agents, tmp_path: Path, machine_id: str, token: str) -> AgentProc:
    agent = AgentProc(server, tmp_path / machine_id, machine_id, token=token).start()
    agents[machine_id] = agent
    return agent


def test_a_bad_login_is_refused_clearly(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/machines")
    assert "/login" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("button.primary")
    assert "Wrong user name or password." in page.locator("[data-testid=error]").inner_text()
    context.close()
    # A form posted without this browser's CSRF token is refused with a clear page.
    response = httpx.post(
        server.url + "/login", data={"username": "admin", "password": "admin-password-1"}
    )
    assert response.status_code == 403
    assert "The form expired or was not sent from this site" in response.text
    assert "Traceback" not in response.text


def test_a_new_agent_appears_on_its_room_map_live_and_greys_on_stop(
    page, server, agents, room_token, tmp_path_factory
):
    page.goto(f"{server.url}/rooms/{ROOM}")
    page.wait_for_selector("#live[data-state=on]")
    tile = page.locator("[data-testid=tile-lab-01]")
    assert tile.count() == 0
    agent = start_agent(server, agents, tmp_path_factory.mktemp("a1"), "lab-01", room_token)
    started = time.monotonic()
    tile.and_(page.locator("[data-status=online]")).wait_for(timeout=20_000)
    appeared = time.monotonic() - started
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=10) == 0
    stopped = time.monotonic()
    # The grace is 30 s: only the agent's goodbye, pushed live, greys it this soon.
    page.locator("[data-testid=tile-lab-01][data-status=offline]").wait_for(timeout=5_000)
    assert time.monotonic() - stopped < 5, "tile did not turn grey within seconds"
    assert appeared < 20
    assert "/rooms/A101" in page.url  # never reloaded
    agent.start()
    page.locator("[data-testid=tile-lab-01][data-status=online]").wait_for(timeout=20_000)
    # On its page, its figures are marked as the last known and the reason follows live.
    page.goto(f"{server.url}/pc/lab-01")
    page.wait_for_selector("#live[data-state=on]")
    assert not page.locator("[data-testid=last-known]").is_visible()
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=10) == 0
    page.locator("[data-field=reason]").filter(has_text="shut down").wait_for(timeout=5_000)
    assert page.locator("[data-testid=last-known]").is_visible()
    agent.start()
    page.locator("[data-field=reason]").filter(has_text="connected").wait_for(timeout=20_000)


def test_a_layout_drag_survives_a_reload(page, server, room_token, agents):
    page.goto(f"{server.url}/layout/editor?room={ROOM}")
    chip = page.locator("[data-testid=tray] [data-machine=lab-01]")
    seat = page.locator("[data-testid=editor-grid] [data-seat='2-3']")
    chip.drag_to(seat)
    page.click("[data-testid=save-layout]")
    page.locator("[data-testid=layout-message]").filter(has_text="Saved").wait_for()
    page.reload()
    placed = page.locator("[data-testid=editor-grid] [data-seat='2-3'] [data-machine=lab-01]")
    placed.wait_for()
    api = server.api()
    assert api.get(f"/api/rooms/{ROOM}")["seats"]["lab-01"] == "2-3"
    page.goto(f"{server.url}/rooms/{ROOM}")
    page.locator("[data-seat='2-3'] [data-testid=tile-lab-01]").wait_for()


def test_a_command_sent_from_the_machine_page_shows_its_output(page, server, agents):
    page.goto(f"{server.url}/pc/lab-01")
    form = page.locator("[data-testid=command-form]")
    form.locator("[data-testid=command-type]").select_option("execute")
    form.locator("textarea[name='p.command']").fill("echo hello-from-the-dashboard")
    form.locator("[data-testid=send]").click()
    dialog = form.locator("[data-testid=confirm-dialog]")
    assert "1 machine" in dialog.inner_text()
    # The question and its button name the action; red, since it can change anything.
    confirm = dialog.locator("[data-testid=confirm]")
    assert "execute" in dialog.locator("p").inner_text() and confirm.inner_text() == "execute"
    assert "danger" in (confirm.get_attribute("class") or "")
    confirm.click()
    output = page.locator("[data-testid=command-result] [data-testid=stdout]")
    output.wait_for(timeout=20_000)
    assert "hello-from-the-dashboard" in output.inner_text()


def test_the_machine_page_lists_processes_and_its_history(page, server, agents):
    page.goto(f"{server.url}/pc/lab-01")
    page.click("[data-testid=show-processes]")
    listing = page.locator("#proc-result [data-testid=stdout]")
    listing.wait_for(timeout=20_000)
    assert "PID" in listing.inner_text()
    page.click("[data-testid=range-24h]")
    page.locator("[data-testid=chart] canvas").wait_for()
    history = server.api().get("/api/machines/lab-01/history", params={"range": "24h"})
    assert history["t"], "heartbeats reached the history"


def test_bad_command_values_are_answered_in_place(page, server, agents):
    page.goto(f"{server.url}/pc/lab-01")
    form = page.locator("[data-testid=command-form]")
    form.locator("[data-testid=command-type]").select_option("execute")
    form.locator("textarea[name='p.command']").fill("rm -rf /")
    form.locator("[data-testid=send]").click()
    form.locator("[data-testid=confirm]").click()
    error = page.locator("[data-testid=command-result] [data-testid=error]")
    error.wait_for()
    assert re.search(r"refus|danger|not allowed|destroy", error.inner_text(), re.I)
    form.locator("[data-testid=command-type]").select_option("shutdown")
    delay = form.locator("fieldset:not([disabled]) input[name='p.delay_s']")
    delay.evaluate("el => el.removeAttribute('max')")  # past the browser's own check
    delay.fill("999999")
    form.locator("[data-testid=send]").click()
    form.locator("[data-testid=confirm]").click()
    page.locator("[data-testid=command-result] [data-testid=error]").filter(
        has_text="delay_s"
    ).wait_for()


def test_a_bulk_room_action_shows_progress_to_completion(
    page, server, agents, room_token, tmp_path_factory
):
    start_agent(server, agents, tmp_path_factory.mktemp("a2"), "lab-02", room_token)
    api = server.api()
    wait_for(lambda: api.status_of("lab-02") == "online", timeout=20, what="lab-02 online")
    wait_for(lambda: api.status_of("lab-01") == "online", timeout=20, what="lab-01 online")
    page.goto(f"{server.url}/rooms/{ROOM}")
    form = page.locator("[data-testid=command-form]")
    form.locator("[data-testid=command-type]").select_option("execute")
    form.locator("textarea[name='p.command']").fill("echo bulk")
    form.locator("[data-testid=send]").click()
    dialog = form.locator("[data-testid=confirm-dialog]")
    assert "2 machine" in dialog.inner_text()
    dialog.locator("[data-testid=confirm]").click()
    progress = page.locator("[data-testid=progress] [data-testid=command-progress]")
    progress.wait_for()
    page.locator("[data-testid=progress] [data-done=true]").wait_for(timeout=30_000)
    assert (
        page.locator("[data-testid=progress] [data-testid=progress-text]")
        .inner_text()
        .startswith("2/2")
    )


def test_the_machines_list_filters_and_acts_on_a_selection(page, server, agents):
    page.goto(f"{server.url}/machines")
    page.fill("[data-testid=search]", "lab-02")
    page.locator("[data-testid=matching]").filter(has_text="1 machines").wait_for()
    # The address bar follows the filter: a reload is the same list, in its page.
    page.wait_for_url(re.compile(r"/machines\?q=lab-02$"))
    page.reload()
    assert page.locator("header.top nav").count() == 1
    assert page.locator("[data-testid=search]").input_value() == "lab-02"
    page.locator("[data-testid=matching]").filter(has_text="1 machines").wait_for()
    page.locator("[data-testid=machine-rows] input[name=ids]").first.check()
    assert page.locator("[data-testid=selected-count]").inner_text() == "1"
    form = page.locator("[data-testid=command-form]")
    form.locator("[data-testid=command-type]").select_option("execute")
    form.locator("textarea[name='p.command']").fill("echo picked")
    form.locator("[data-testid=send]").click()
    form.locator("[data-testid=confirm]").click()
    page.locator("[data-testid=progress] [data-done=true]").wait_for(timeout=30_000)
    command = server.api().get("/api/commands", params={"limit": 1})[0]
    assert command["summary"] == {"succeeded": 1}


def test_the_korean_interface_renders_hangul(browser, server):
    page = login(browser, server.url, locale="ko-KR", extra_http_headers={"Accept-Language": "ko"})
    nav = page.locator("header nav").inner_text()
    assert "개요" in nav and "실습실" in nav
    fonts = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True)
    assert fonts.stdout.strip(), "no Korean font installed (fonts-noto-cjk)"
    # Each Hangul syllable is drawn as a wide glyph, not a narrow fallback box.
    width = page.evaluate(
        "() => { const s = document.createElement('span'); s.textContent = '한글한글';"
        " document.body.append(s); return s.getBoundingClientRect().width; }"
    )
    assert width > 40
    page.click("[data-testid=lang-switch]")
    assert "Overview" in page.locator("header nav").inner_text()
    page.context.close()


def test_a_command_is_cancelled_and_retried_from_its_page(page, server, agents):
    api = server.api()
    command = api.exec("lab-02", "sleep 30")
    page.goto(f"{server.url}/commands/{command['id']}")
    page.locator("[data-run=lab-02] [data-state=running]").wait_for(timeout=20_000)
    page.click("[data-testid=cancel]")
    page.locator("[data-run=lab-02] [data-state=cancelled]").wait_for(timeout=10_000)
    # Retrying asks first, naming the action; dismissed, nothing is sent.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("[data-testid=retry]")
    time.sleep(0.5)
    assert api.get(f"/api/commands/{command['id']}")["summary"] == {"cancelled": 1}
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("[data-testid=retry]")
    page.locator("[data-run=lab-02]").filter(has_text="\u00d72").wait_for(timeout=10_000)
    assert asked and "execute" in asked[0]
    api.post(f"/api/commands/{command['id']}/cancel")
    page.locator("[data-run=lab-02] [data-state=cancelled]").wait_for(timeout=10_000)
    page.goto(f"{server.url}/commands")
    assert page.locator(f"[data-testid=commands] a[href='/commands/{command['id']}']").count()
    # Filtered to what it was: the list, the address bar and a reload follow.
    page.locator("[data-testid=command-filters] select[name=type]").select_option("message")
    page.wait_for_url(re.compile(r"/commands\?type=message$"))
    page.locator(f"[data-testid=what-{command['id']}]").wait_for(state="detached")
    page.reload()
    assert page.locator(f"[data-testid=what-{command['id']}]").count() == 0
    assert (
        page.locator("[data-testid=command-filters] select[name=type]").input_value() == "message"
    )


def test_rooms_are_renamed_and_deleted_in_the_layout_editor(page, server):
    page.goto(f"{server.url}/layout/editor")
    page.click("text=New room")
    form = page.locator("[data-testid=new-room]")
    form.locator("input[name=name]").fill("Z900")
    form.locator("button").click()
    page.wait_for_url(re.compile(r"room=Z900"))
    page.click("summary:has-text('Rename')")
    edit = page.locator("[data-testid=edit-room]")
    edit.locator("input[name=name]").fill("Z901")
    edit.locator("button").click()
    page.wait_for_url(re.compile(r"room=Z901"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("summary:has-text('Rename')")
    page.locator("[data-testid=delete-room] button").click()
    page.wait_for_url(re.compile(r"/layout/editor$"))
    names = [room["name"] for room in server.api().get("/api/rooms")]
    assert "Z901" not in names and "Z900" not in names
    # A bad name is refused with the reason, not a stack trace.
    page.click("text=New room")
    form = page.locator("[data-testid=new-room]")
    form.locator("input[name=name]").fill("a/b")
    form.locator("button").click()
    assert "name" in page.locator("[data-testid=error]").inner_text()


def test_an_alert_set_up_in_the_pages_fires_live_and_is_acknowledged(
    page, server, agents, room_token, tmp_path_factory
):
    """A channel and a rule made through the forms; a machine shut down is a firing
    alert on the open alerts page and in the navigation's count, without a reload, and
    its message reaches the channel; acknowledging it clears the count."""
    receiver = HttpReceiver().start()
    try:
        page.goto(f"{server.url}/alerts/channels")
        form = page.locator("[data-testid=channel-form]")
        form.locator("input[name=name]").fill("ops")
        form.locator("select[name=kind]").select_option("webhook")
        form.locator("input[name=url]").fill(f"{receiver.url}/hook/ops")
        form.locator("[data-testid=channel-add]").click()
        page.locator("[data-testid=channel-ops]").wait_for()
        page.goto(f"{server.url}/alerts/rules")
        form = page.locator("[data-testid=rule-form]")
        form.locator("input[name=name]").fill("down")
        form.locator("select[name=kind]").select_option("machine_offline")
        form.locator("input[name=selector]").fill(f"room:{ROOM}")
        form.locator("input[name=for_s]").fill("0")
        form.locator("input[name=include_shutdown]").check()
        form.locator("input[name=channels][value=ops]").check()
        form.locator("summary").click()
        form.locator("input[name=group_wait_s]").fill("0")
        form.locator("[data-testid=rule-add]").click()
        page.locator("[data-testid=rule-down]").wait_for()

        agent = start_agent(server, agents, tmp_path_factory.mktemp("al"), "lab-al", room_token)
        api = server.api()
        wait_for(lambda: api.status_of("lab-al") == "online", what="lab-al online")
        page.goto(f"{server.url}/alerts")
        page.wait_for_selector("#live[data-state=on]")
        page.evaluate("window.stillHere = true")
        badge = page.locator("[data-testid=alert-count]")
        assert badge.inner_text().strip() == ""
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(timeout=10) == 0
        badge.filter(has_text="1").wait_for(timeout=15_000)
        row = page.locator("[data-testid=alerts] tr[data-testid^=alert-]")
        row.locator("[data-state=firing]").wait_for(timeout=5_000)
        assert page.evaluate("window.stillHere === true")  # never reloaded
        [message] = receiver.wait_for(1, prefix="/hook/", timeout=30)
        assert message.json()["alert"]["subjects"] == ["lab-al"]

        row.locator("form[data-testid^=ack-] button").click()
        page.wait_for_url(re.compile(r"/alerts$"))
        assert page.locator("[data-testid=alert-count]").inner_text().strip() == ""
        [alert] = api.get("/api/alerts", params={"state": "firing"})
        assert alert["acked_by"] == "admin"
    finally:
        server.api().client.delete("/api/alert-rules/down")
        receiver.stop()
