"""Command forms come from the payload models; the language comes from the browser."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData
from starlette.requests import Request

from wcms.protocol import COMMAND_TYPES, parse_payload
from wcms.server.errors import BadRequest
from wcms.server.web.forms import command_forms, payload_from
from wcms.server.web.i18n import KO, negotiate, translator


def test_every_command_type_has_a_form():
    forms = {form.type: form for form in command_forms()}
    assert set(forms) == set(COMMAND_TYPES)
    assert forms["shutdown"].destructive and forms["execute"].destructive
    kinds = {f.name: f.kind for f in forms["execute"].fields}
    assert kinds == {"command": "textarea", "cwd": "text", "env": "pairs", "secrets": "pairs"}


def test_a_posted_form_becomes_a_valid_payload():
    form = FormData(
        [("p.command", "echo hi"), ("p.env", "A=1\nB=two=2\n"), ("p.cwd", ""), ("p.secrets", "")]
    )
    payload = payload_from("execute", form)
    assert payload == {"command": "echo hi", "env": {"A": "1", "B": "two=2"}}
    parse_payload("execute", payload)
    power = payload_from("reboot", FormData([("p.delay_s", "30"), ("p.force", "on")]))
    assert power == {"delay_s": 30, "force": True}


@pytest.mark.parametrize(
    ("command_type", "fields", "field"),
    [
        ("reboot", [("p.delay_s", "soon")], "delay_s"),
        ("execute", [("p.env", "no-equals-sign")], "env"),
        ("format-disk", [], "type"),
    ],
)
def test_bad_form_values_name_the_field(command_type, fields, field):
    with pytest.raises(BadRequest) as caught:
        payload_from(command_type, FormData(fields))
    assert caught.value.field == field


def request_with(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "language"),
    [
        ({}, "en"),
        ({"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"}, "ko"),
        ({"Accept-Language": "en-US,ko;q=0.5"}, "en"),
        ({"Accept-Language": "fr, ko;q=0.3"}, "ko"),
        ({"Accept-Language": "ko", "Cookie": "wcms_lang=en"}, "en"),
        ({"Accept-Language": "ko;q=bogus"}, "ko"),
    ],
)
def test_the_language_follows_the_cookie_then_the_browser(headers, language):
    assert negotiate(request_with(headers)) == language


def test_korean_phrases_fill_in_their_values():
    _ = translator("ko")
    asked = _("Send “{action}” to {n} machine(s)?", action="잠금", n=3)
    assert asked == "3대의 PC에 “잠금” 명령을 보낼까요?"
    assert _("not in the catalogue") == "not in the catalogue"
    assert all(value.strip() for value in KO.values())
