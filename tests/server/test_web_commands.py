"""The dashboard's command progress block in process: the answer to a send, and the
block's later refreshes."""

from __future__ import annotations

import re

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
