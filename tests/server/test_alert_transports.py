"""Each channel kind's transport against a real receiver over real sockets: what it sends
(Discord's limits, Slack's blocks, the signed webhook body, the mail) and what each
answer means (delivered, permanent, transient, rate-limited)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.alert_receiver import HttpReceiver, ReceiverProc, SmtpReceiver
from wcms.protocol.alerts import AlertMessage, AlertState, DeliveryKind, RuleKind, Severity
from wcms.server.services.alerts.transports import Outgoing, TransportError, discord, transport_for

DELIVERY = "7d7c1f0e-3a51-4c2b-9d6a-1b2c3d4e5f60"


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as running:
        yield running


@pytest.fixture
def hooks(receiver: HttpReceiver) -> HttpReceiver:
    receiver.reset()
    return receiver


def message(**fields: Any) -> AlertMessage:
    base: dict[str, Any] = {
        "kind": DeliveryKind.FIRING,
        "title": "[FIRING] lab-offline: 2 machines of A101",
        "summary": "2 machines of room A101 are offline.",
        "severity": Severity.CRITICAL,
        "alert_id": 7,
        "rule": "lab-offline",
        "rule_kind": RuleKind.MACHINE_OFFLINE,
        "state": AlertState.FIRING,
        "subjects": ["pc-01", "pc-02"],
        "lines": ["pc-01 offline since 09:00", "pc-02 offline since 09:01"],
        "started_at": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        "link": "https://wcms.example/alerts/7",
    }
    return AlertMessage(**{**base, **fields})


def send(kind: str, url: str, msg: AlertMessage | None = None, **options: Any) -> None:
    """Send one message through a fresh transport of ``kind``."""
    secret = options.pop("secret", None)
    timeout = options.pop("timeout", 5.0)

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            transport = transport_for(kind, client, timeout=timeout)
            await transport.notify(Outgoing(DELIVERY, msg or message(), url, secret, 1))

    asyncio.run(go())


def failure(kind: str, url: str, **options: Any) -> TransportError:
    with pytest.raises(TransportError) as caught:
        send(kind, url, **options)
    return caught.value


# --- Discord -----------------------------------------------------------------------


def embed_size(embed: dict[str, Any]) -> int:
    fields = sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    footer = len(embed.get("footer", {}).get("text", ""))
    return len(embed.get("title", "")) + len(embed.get("description", "")) + fields + footer


def test_a_discord_embed_stays_within_discords_limits(hooks):
    subjects = [f"pc-{i:03d}" for i in range(500)]
    huge = message(
        title="T" * 1000,
        summary="s" * 10_000,
        subjects=subjects,
        lines=[f"{s} offline since a long while ago " + "x" * 200 for s in subjects],
    )
    send("discord", f"{hooks.url}/discord/1/token", huge)
    body = hooks.wait_for(1, prefix="/discord/")[0].json()
    embeds = body["embeds"]
    assert 1 <= len(embeds) <= discord.EMBEDS_MAX
    assert sum(embed_size(e) for e in embeds) <= discord.TOTAL_MAX
    embed = embeds[0]
    assert len(embed["title"]) <= 256 and embed["title"].endswith("…")
    assert len(embed["description"]) <= 4096 and embed["description"].startswith("sss")
    assert len(embed["fields"]) <= 25
    for field in embed["fields"]:
        assert len(field["name"]) <= 256 and len(field["value"]) <= 1024
    assert len(embed["footer"]["text"]) <= 2048
    shown = embed["fields"][0]["value"].splitlines()
    assert len(shown) == 11 and shown[-1] == "… and 490 more"
    assert embed["fields"][0]["name"] == "Subjects (500)"
    assert embed["color"] == 0xE74C3C
    assert embed["timestamp"].startswith("2025-03-01T09:00:00")


def test_a_resolved_message_is_green_on_discord(hooks):
    send("discord", f"{hooks.url}/discord/1/token", message(kind=DeliveryKind.RESOLVED))
    assert hooks.wait_for(1)[0].json()["embeds"][0]["color"] == 0x2ECC71


def test_discord_waits_for_an_empty_bucket_to_refill(hooks):
    hooks.set_mode("/discord/", "ratelimit", times=1, reset_after=0.6)
    url = f"{hooks.url}/discord/2/token"

    async def twice() -> None:
        async with httpx.AsyncClient() as client:
            transport = transport_for("discord", client)
            for attempt in (1, 2):
                await transport.notify(Outgoing(DELIVERY, message(), url, None, attempt))

    asyncio.run(twice())
    first, second = hooks.wait_for(2)
    assert second.at - first.at >= 0.55


def test_a_discord_429_says_how_long_to_wait(hooks):
    hooks.set_mode("/discord/", "429", times=1, retry_after=0.25)
    error = failure("discord", f"{hooks.url}/discord/3/token")
    assert (error.permanent, error.status, error.retry_after) == (False, 429, 0.25)


def test_a_bucket_that_refills_later_than_an_attempt_may_take_is_left_to_the_outbox(hooks):
    hooks.set_mode("/discord/", "ratelimit", times=1, reset_after=30)
    url = f"{hooks.url}/discord/4/token"

    async def twice() -> TransportError:
        async with httpx.AsyncClient() as client:
            transport = transport_for("discord", client, timeout=1.0)
            await transport.notify(Outgoing(DELIVERY, message(), url, None, 1))
            with pytest.raises(TransportError) as caught:
                await transport.notify(Outgoing(DELIVERY, message(), url, None, 2))
            return caught.value

    error = asyncio.run(twice())
    assert not error.permanent and error.retry_after is not None and error.retry_after > 25
    assert len(hooks.received()) == 1  # the second was not sent


# --- what an answer means ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "status", "permanent"),
    [
        ("discord", "/discord/9/t", "404", True),
        ("discord", "/discord/9/t", "401", True),
        ("discord", "/discord/9/t", "403", True),
        ("discord", "/discord/9/t", "400", True),
        ("discord", "/discord/9/t", "500", False),
        ("discord", "/discord/9/t", "502", False),
        ("slack", "/slack/T1/B1/x", "404", True),
        ("slack", "/slack/T1/B1/x", "410", True),
        ("slack", "/slack/T1/B1/x", "403", True),
        ("slack", "/slack/T1/B1/x", "500", False),
        ("webhook", "/hook/a", "410", True),
        ("webhook", "/hook/a", "400", True),
        ("webhook", "/hook/a", "422", True),
        ("webhook", "/hook/a", "503", False),
        ("webhook", "/hook/a", "408", False),
    ],
)
def test_an_answer_is_permanent_or_transient(hooks, kind, path, status, permanent):
    hooks.set_mode(path, status)
    error = failure(kind, hooks.url + path)
    assert error.status == int(status)
    assert error.permanent is permanent
    assert error.retry_after is None
    assert hooks.url not in error.message


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_429_waits_for_its_retry_after(hooks, kind):
    path = "/slack/T/B/x" if kind == "slack" else "/hook/limited"
    hooks.set_mode(path, "429", times=1, retry_after=2.5)
    error = failure(kind, hooks.url + path)
    assert (error.permanent, error.status, error.retry_after) == (False, 429, 2.5)


def test_a_slack_error_names_what_slack_said(hooks):
    hooks.set_mode("/slack/", "404")
    assert "no_service" in failure("slack", f"{hooks.url}/slack/T/B/x").message


def test_a_refused_connection_is_transient():
    down = HttpReceiver()  # never started: nothing listens on its port
    error = failure("webhook", f"{down.url}/hook/x")
    assert not error.permanent and error.status is None
    assert str(down.port) not in error.message


def test_a_receiver_slower_than_the_timeout_is_transient(hooks):
    hooks.set_mode("/hook/slow", "slow", delay=1.5)
    started = time.monotonic()
    error = failure("webhook", f"{hooks.url}/hook/slow", timeout=0.3)
    assert time.monotonic() - started < 1.4
    assert not error.permanent and "0.3 s" in error.message


# --- Slack and the generic webhook -------------------------------------------------


def test_slack_gets_a_header_ten_lines_and_a_context(hooks):
    lines = [f"pc-{i:02d} <offline>" for i in range(25)]
    send("slack", f"{hooks.url}/slack/T/B/secret", message(lines=lines))
    body = hooks.wait_for(1)[0].json()
    assert body["text"].startswith("[FIRING] lab-offline")
    header, section, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    text = section["text"]["text"]
    assert text.count("•") == 11 and text.endswith("… and 15 more")
    assert "&lt;offline&gt;" in text
    assert "<https://wcms.example/alerts/7|open in WCMS>" in context["elements"][0]["text"]


def test_the_webhook_body_is_signed_with_the_channel_secret(hooks):
    msg = message()
    send("webhook", f"{hooks.url}/hook/signed", msg, secret="k3y")
    got = hooks.wait_for(1)[0]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-wcms-delivery"] == DELIVERY
    expected = hmac.new(b"k3y", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-wcms-signature"] == f"sha256={expected}"
    alert = got.json()["alert"]
    assert alert == {
        "id": 7,
        "rule": "lab-offline",
        "kind": "machine_offline",
        "state": "firing",
        "severity": "critical",
        "subjects": ["pc-01", "pc-02"],
        "summary": msg.summary,
        "started_at": "2025-03-01T09:00:00+00:00",
        "resolved_at": None,
    }
    assert json.loads(got.body) == msg.webhook_body()


def test_a_webhook_without_a_secret_is_not_signed(hooks):
    send("webhook", f"{hooks.url}/hook/plain")
    got = hooks.wait_for(1)[0]
    assert "x-wcms-signature" not in got.headers
    assert got.headers["x-wcms-delivery"] == DELIVERY


# --- email -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(username="alerts", password="p@ss word") as running:
        yield running


@pytest.fixture
def mailbox(smtp: SmtpReceiver) -> SmtpReceiver:
    smtp.reset()
    return smtp


def smtp_url(smtp: SmtpReceiver, password: str = "p%40ss%20word") -> str:
    return f"smtp://alerts:{password}@127.0.0.1:{smtp.port}?to=ops@example.com,lab@example.com"


def test_a_mail_reaches_its_recipients_with_the_title_as_subject(mailbox):
    send("email", smtp_url(mailbox) + "&from=wcms@school.example")
    mail = mailbox.wait_for(1)[0]
    assert mail.rcpt_tos == ["ops@example.com", "lab@example.com"]
    assert mail.mail_from == "wcms@school.example"
    assert mail.login == "alerts"
    parsed = mail.message
    assert parsed["Subject"] == "[FIRING] lab-offline: 2 machines of A101"
    assert parsed["Message-ID"] == f"<{DELIVERY}@school.example>"
    text = parsed.get_content()
    assert "2 machines of room A101 are offline." in text
    assert "- pc-02 offline since 09:01" in text
    assert "https://wcms.example/alerts/7" in text


def test_a_refused_login_is_permanent(mailbox):
    error = failure("email", smtp_url(mailbox, password="wrong"))
    assert error.permanent and error.status == 535
    assert "wrong" not in error.message
    assert mailbox.mails() == []


@pytest.mark.parametrize(("code", "permanent"), [("550", True), ("451", False)])
def test_an_smtp_reply_is_permanent_or_transient_by_its_code(mailbox, code, permanent):
    mailbox.set_mode(code, times=1)
    error = failure("email", smtp_url(mailbox))
    assert error.status == int(code) and error.permanent is permanent


def test_an_smtp_server_that_is_down_is_transient():
    nobody = SmtpReceiver()  # not started
    error = failure("email", f"smtp://127.0.0.1:{nobody.port}?to=a@example.com")
    assert not error.permanent


# --- the receiver as its own process -----------------------------------------------


def test_the_receiver_runs_as_a_process_driven_over_http(tmp_path):
    proc = ReceiverProc(tmp_path / "received.jsonl").start()
    try:
        proc.remote.set_mode("/hook/", "500", times=1)
        assert not failure("webhook", f"{proc.url}/hook/x").permanent
        send("webhook", f"{proc.url}/hook/x")
        assert [r.status for r in proc.remote.wait_for(2, prefix="/hook/")] == [500, 200]
        send("email", f"smtp://127.0.0.1:{proc.smtp_port}?to=ops@example.com")
        assert proc.remote.mails()[0].rcpt_tos == ["ops@example.com"]
        proc.remote.down_for(1.0)
        refused = failure("webhook", f"{proc.url}/hook/x")
        assert not refused.permanent and refused.status is None
        proc.remote.wait_for(2, prefix="/hook/")  # rides out the outage
        send("webhook", f"{proc.url}/hook/x")
        proc.stop()
        proc.start()  # the log file keeps what came before the restart
        assert [r.status for r in proc.received()] == [500, 200, 200]
        assert len(proc.mails()) == 1
    finally:
        proc.stop()
