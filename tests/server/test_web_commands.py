"""The dashboard's command pages in process: the progress block (the answer to a send
and its later refreshes), the commands list's filters and pages, and the small things
every page has (the icon, an offline machine's last known figures)."""

from __future__ import annotations

import json
import re

import pytest

from tests.server.test_web_programs import MACHINE, browser, harness

__all__ = ["browser", "harness"]  # the fixtures this module shares


def trigger(html: str) -> str:
    found = re.search(r'class="live-command"[^>]*hx-trigger="([^"]*)"', html)
    assert found is not None, html
    return found[1]


def test_a_sent_command_catches_up_once_and_keeps_its_notice(browser):
    client, csrf = browser
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    form = {"type": "execute", "p.command": "echo hi"}
    sent = client.post(f"/pc/{MACHINE}/command", data=form, headers=headers)
    assert sent.status_code == 200, sent.text
    # The agent may finish before the answer is on the page: the block asks once more
    # as it appears, and then on its command's events only.
    assert trigger(sent.text).endswith(", load")
    command_id = re.search(r'data-command="(\d+)"', sent.text)
    assert command_id is not None
    url = re.search(r'hx-get="([^"]+)"', sent.text)
    assert url is not None
    again = client.get(url[1].replace("&amp;", "&"), headers=headers)
    assert again.status_code == 200
    assert "load" not in trigger(again.text)
    assert f'href="/commands/{command_id[1]}"' in again.text  # the notice stays


def test_the_commands_list_filters_by_state_type_targets_and_sender(browser, harness):
    client, _ = browser
    said = harness.call(
        "POST",
        "/api/commands",
        {"type": "message", "selector": MACHINE, "payload": {"text": "점검 중"}},
        status=201,
    )
    ran = harness.call(
        "POST",
        "/api/commands",
        {"type": "execute", "selector": "all", "payload": {"command": "echo filtered"}},
        status=201,
    )
    harness.call("POST", f"/api/commands/{ran['id']}/cancel")

    def ids(query: str) -> list[int]:
        return [c["id"] for c in harness.call("GET", f"/api/commands?{query}")]

    assert said["id"] in ids("type=message") and ran["id"] not in ids("type=message")
    assert ran["id"] in ids("state=cancelled") and said["id"] not in ids("state=cancelled")
    assert said["id"] in ids("state=active") and ran["id"] not in ids("state=active")
    assert ran["id"] in ids("selector=al") and said["id"] not in ids("selector=id:")
    assert ids("selector=%25") == []  # a wildcard is a character like any other
    assert ids("created_by=nobody") == []
    refused = client.get("/api/commands?state=bogus", headers=harness.headers)
    assert refused.status_code == 422 and "state" in refused.text

    page = client.get("/commands?type=execute&state=cancelled")
    assert page.status_code == 200
    assert f'data-testid="what-{ran["id"]}">echo filtered<' in page.text
    assert f'data-testid="what-{said["id"]}"' not in page.text
    assert '<option value="cancelled" selected>' in page.text  # the filter as chosen
    table = client.get("/commands/table?type=message&user=", headers={"HX-Request": "true"})
    assert table.headers["HX-Replace-Url"] == "/commands?type=message"
    assert "<html" not in table.text and "점검 중" in table.text
    none = client.get("/commands/table?user=nobody").text
    assert 'data-testid="no-commands"' in none and "No commands match." in none


def test_the_commands_list_pages_with_its_filters(browser, harness):
    client, _ = browser
    body = {"type": "message", "selector": MACHINE, "payload": {"text": "page me"}}
    made = [harness.call("POST", "/api/commands", body, status=201)["id"] for _ in range(52)]
    first = client.get("/commands?type=message").text
    older = re.search(r'href="(/commands\?[^"]*before_id=(\d+))" data-testid="older"', first)
    assert older is not None and "type=message" in older[1]
    assert int(older[2]) == made[-50]
    second = client.get(older[1].replace("&amp;", "&")).text
    assert 'data-testid="newest"' in second
    assert f'data-testid="what-{made[-51]}"' in second
    assert f'data-testid="what-{made[-50]}"' not in second
    assert 'hx-trigger="wcms-command-any' not in second  # an older page holds still


def test_the_icon_is_served_where_browsers_ask(harness):
    answer = harness.client.get("/favicon.ico")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg")
    assert 'rel="icon"' in harness.client.get("/login").text


def test_the_reasons_a_machine_went_offline_are_in_words_for_the_live_page(browser, harness):
    client, _ = browser
    korean = client.get(f"/pc/{MACHINE}", headers={"Accept-Language": "ko"}).text
    assert "오프라인 전 마지막 값" in korean
    strings = re.search(r'<script id="i18n" type="application/json">(.*?)</script>', korean)
    assert strings is not None
    assert json.loads(strings[1])["reasons"]["connection_lost"] == "연결 끊김"


@pytest.mark.parametrize("bad", ["²", "9" * 5000, "-1", "0", "1e3", str(2**64)])
def test_a_bad_page_number_shows_the_first_page(browser, bad):
    client, _ = browser
    assert client.get(f"/commands?before_id={bad}").status_code == 200
    assert client.get(f"/machines?page={bad}").status_code == 200
    table = client.get(f"/machines/table?page={bad}&q=x")
    assert table.status_code == 200 and table.headers["HX-Replace-Url"] == "/machines?q=x"
