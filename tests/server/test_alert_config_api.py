"""The alerting configuration API in process, on both databases: channels (sealed URLs
shown redacted, the test message queued), rules, silences and maintenance windows;
every change audited without its secrets, and bad input refused naming its field."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from wcms.server.app import create_app
from wcms.server.core import Core
from wcms.server.services.alerts.config import opened_secret, opened_url
from wcms.server.services.audit import Actor
from wcms.server.settings import Settings
from wcms.server.store import alert_config as config_store
from wcms.server.store.tables import alert_channels, deliveries

ADMIN = Actor("test")
DISCORD_TOKEN = "dIsCoRdToKeN-abc_123XYZ"
DISCORD = f"https://discord.com/api/webhooks/1234567890/{DISCORD_TOKEN}"
SLACK_SECRET = "sLaCkSeCrEt0123456789abcd"
SLACK = f"https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/{SLACK_SECRET}"
WEBHOOK_SECRET = "hmac-key-never-shown"
SMTP_PASSWORD = "mail-pass-never-shown"
SECRETS = (DISCORD_TOKEN, SLACK_SECRET, WEBHOOK_SECRET, SMTP_PASSWORD, "qtoken-never", "upass")


class Harness:
    """The app in process and an API key."""

    def __init__(self, client: TestClient, core: Core) -> None:
        self.client = client
        self.core = core
        _, key = client.portal.call(lambda: core.accounts.create_api_key("t", actor=ADMIN))
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        answer = self.client.request(method, path, json=body, headers=self.headers)
        assert answer.status_code == status, answer.text
        assert "Traceback" not in answer.text
        return answer.json() if answer.content else None

    def audit(self, action: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", f"/api/audit?action={action}&limit=1000")
        return found

    def channel(self, name: str, kind: str = "webhook", url: str | None = None, **more: Any) -> Any:
        body = {"name": name, "kind": kind, "url": url or "https://hooks.example/in", **more}
        return self.call("POST", "/api/alert-channels", body, status=201)

    def run(self, read: Any) -> Any:
        return self.client.portal.call(read)


@pytest.fixture(scope="module")
def harness(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("alert-config")),
        database_url=module_database_url,
        admin_password="x" * 12,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        harness = Harness(client, app.state.core)
        harness.channel("ops")
        yield harness


def rule(name: str, kind: str = "machine_offline", **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "channels": ["ops"], **fields}


def window(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "selector": "room:A101", **fields}


# --- channels --------------------------------------------------------------------------

SHOWN = [
    ("discord", DISCORD, "https://discord.com/api/webhooks/1234567890/***"),
    (
        "discord",
        f"https://discord.com/api/webhooks/1234567890/{DISCORD_TOKEN}/slack?wait=true",
        "https://discord.com/api/webhooks/1234567890/***?wait=***",
    ),
    ("slack", SLACK, "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/***"),
    (
        "webhook",
        "https://bot:upass@hooks.example:8443/wcms/in?token=qtoken-never&x=",
        "https://bot:***@hooks.example:8443/wcms/in?token=***&x=",
    ),
    ("webhook", "http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
    (
        "email",
        f"smtp://alerts:{SMTP_PASSWORD}@mail.example:587?to=a@b.example,c@d.example",
        "smtp://alerts:***@mail.example:587?to=a@b.example,c@d.example",
    ),
    ("email", "smtps://mail.example?to=ops@b.example", "smtps://mail.example?to=ops@b.example"),
]


@pytest.mark.parametrize(("kind", "url", "shown"), SHOWN, ids=[s[2] for s in SHOWN])
def test_a_channel_url_is_shown_with_its_secret_parts_hidden(harness, kind, url, shown):
    name = f"shown-{SHOWN.index((kind, url, shown))}"
    out = harness.channel(name, kind, url)
    assert out["url"] == shown
    assert harness.call("GET", f"/api/alert-channels/{name}")["url"] == shown

    async def sealed() -> tuple[str, str]:
        async with harness.core.db.connect() as conn:
            found = await config_store.channel_by_name(conn, name)
        assert found is not None
        return opened_url(harness.core.sealer, found), found.sealed_url

    clear, stored = harness.run(sealed)
    assert clear == url  # the transport gets it whole
    assert url not in stored


def test_a_long_url_is_shown_within_its_column(harness):
    url = "https://hooks.example/in?" + "&".join(["a=b"] * 505)  # 2044 characters
    out = harness.channel("long", "webhook", url)
    assert len(out["url"]) <= 2048 and out["url"].startswith("https://hooks.example/in?a=***")


def test_a_channel_is_created_listed_changed_and_removed(harness):
    out = harness.channel("lab", "webhook", "https://hooks.example/lab", secret=WEBHOOK_SECRET)
    assert out["kind"] == "webhook" and out["has_secret"] is True and out["enabled"] is True
    assert out["created_by"] == "key:t"
    assert "lab" in [c["name"] for c in harness.call("GET", "/api/alert-channels")]
    changed = harness.call(
        "PATCH",
        "/api/alert-channels/lab",
        {"enabled": False, "url": "https://hooks.example/lab2?key=qtoken-never"},
    )
    assert changed["enabled"] is False and changed["url"] == "https://hooks.example/lab2?key=***"
    assert changed["has_secret"] is True  # not given: kept
    cleared = harness.call("PATCH", "/api/alert-channels/lab", {"secret": None})
    assert cleared["has_secret"] is False
    harness.call("DELETE", "/api/alert-channels/lab", status=204)
    harness.call("GET", "/api/alert-channels/lab", status=404)
    actions = {"alert_channel.create", "alert_channel.update", "alert_channel.delete"}
    for action in actions:
        assert any(e["target"] == "lab" for e in harness.audit(action)), action


def test_secrets_are_never_answered_audited_or_logged(harness, caplog):
    caplog.set_level(logging.DEBUG)
    harness.channel("sec-d", "discord", DISCORD)
    harness.channel("sec-s", "slack", SLACK)
    harness.channel(
        "sec-w",
        "webhook",
        "https://bot:upass@hooks.example/in?token=qtoken-never",
        secret=WEBHOOK_SECRET,
    )
    harness.channel("sec-e", "email", f"smtp://u:{SMTP_PASSWORD}@mail.example:25?to=a@b.example")
    harness.call("PATCH", "/api/alert-channels/sec-w", {"secret": WEBHOOK_SECRET + "2"})
    harness.call("POST", "/api/alert-channels/sec-d/test", status=202)
    seen = json.dumps(
        [
            harness.call("GET", "/api/alert-channels"),
            harness.call("GET", "/api/alert-channels/sec-w"),
            harness.call("GET", "/api/audit?limit=1000"),
        ]
    )
    for secret in SECRETS:
        assert secret not in seen, secret
        assert secret not in caplog.text, secret

    async def key() -> str | None:
        async with harness.core.db.connect() as conn:
            found = await config_store.channel_by_name(conn, "sec-w")
        assert found is not None
        return opened_secret(harness.core.sealer, found)

    assert harness.run(key) == WEBHOOK_SECRET + "2"


def test_the_test_message_is_queued_for_the_channel_even_when_disabled(harness):
    harness.channel("quiet", "slack", SLACK, enabled=False)
    out = harness.call("POST", "/api/alert-channels/quiet/test", status=202)

    async def row() -> Any:
        async with harness.core.db.connect() as conn:
            query = (
                select(deliveries, alert_channels.c.name)
                .join(alert_channels, alert_channels.c.id == deliveries.c.channel_id)
                .where(deliveries.c.id == out["delivery"])
            )
            return (await conn.execute(query)).one()

    queued = harness.run(row)
    assert queued.name == "quiet" and queued.kind == "test" and queued.state == "queued"
    assert queued.message["title"] == "WCMS test message"
    assert queued.message["severity"] == "info" and "quiet" in queued.message["summary"]
    tested = harness.audit("alert_channel.test")
    assert tested[0]["target"] == "quiet" and tested[0]["detail"]["delivery"] == out["delivery"]


def test_a_channel_a_rule_or_window_tells_cannot_be_removed(harness):
    harness.channel("inuse")
    harness.call("POST", "/api/alert-rules", rule("uses-it", channels=["inuse"]), status=201)
    error = harness.call("DELETE", "/api/alert-channels/inuse", status=409)["error"]
    assert error["code"] == "channel_in_use" and "uses-it" in error["message"]
    harness.call("DELETE", "/api/alert-rules/uses-it", status=204)
    harness.call(
        "POST",
        "/api/maintenance-windows",
        window("tells-it", start="22:00", end="07:00", report_left_on=True, channels=["inuse"]),
        status=201,
    )
    error = harness.call("DELETE", "/api/alert-channels/inuse", status=409)["error"]
    assert "tells-it" in error["message"]
    harness.call("DELETE", "/api/maintenance-windows/tells-it", status=204)
    harness.call("DELETE", "/api/alert-channels/inuse", status=204)


# --- rules -----------------------------------------------------------------------------


def test_a_rule_is_created_listed_changed_and_removed(harness):
    harness.channel("second")
    out = harness.call(
        "POST",
        "/api/alert-rules",
        rule(
            "hot",
            "metric",
            selector="room:A101,tag:gpu",
            for_s=120,
            metric="cpu",
            above=90,
            severity="critical",
            channels=["ops", "second", "ops"],
        ),
        status=201,
    )
    assert out["metric"] == "cpu" and out["above"] == 90 and out["severity"] == "critical"
    assert sorted(out["channels"]) == ["ops", "second"] and out["for_s"] == 120
    assert out["selector"] == "room:A101,tag:gpu" and out["enabled"] is True
    assert out["repeat_s"] == 4 * 3600 and out["group_wait_s"] == 30
    assert "hot" in [r["name"] for r in harness.call("GET", "/api/alert-rules")]
    changed = harness.call(
        "PATCH", "/api/alert-rules/hot", {"above": 95, "enabled": False, "channels": ["second"]}
    )
    assert changed["above"] == 95 and changed["enabled"] is False
    assert changed["channels"] == ["second"] and changed["metric"] == "cpu"
    assert changed["severity"] == "critical"  # not given: kept
    rss = harness.call(
        "POST",
        "/api/alert-rules",
        rule("rss", "metric", metric="program_rss", above=4096),
        status=201,
    )
    assert rss["above"] == 4096  # MiB, as given

    async def stored() -> dict[str, Any]:
        async with harness.core.db.connect() as conn:
            found = await config_store.rule_by_name(conn, "hot")
        assert found is not None
        return found.params

    assert harness.run(stored) == {"metric": "cpu", "above": 95, "include_shutdown": False}
    harness.call("DELETE", "/api/alert-rules/hot", status=204)
    harness.call("GET", "/api/alert-rules/hot", status=404)
    for action in ("alert_rule.create", "alert_rule.update", "alert_rule.delete"):
        assert any(e["target"] == "hot" for e in harness.audit(action)), action


def test_the_engine_reads_the_rules_with_their_channels(harness):
    harness.call("POST", "/api/alert-rules", rule("offline-all", include_shutdown=True), status=201)

    async def read() -> Any:
        async with harness.core.db.connect() as conn:
            return await config_store.rules(conn, enabled_only=True), await config_store.channels(
                conn
            )

    rules, channels = harness.run(read)
    found = next(r for r in rules if r.name == "offline-all")
    ops = next(c for c in channels if c.name == "ops")
    assert found.channel_ids == (ops.id,) and found.params["include_shutdown"] is True


def test_a_patch_must_leave_a_rule_that_fits_its_kind(harness):
    harness.call(
        "POST", "/api/alert-rules", rule("cpu", "metric", metric="cpu", above=50), status=201
    )
    harness.call("POST", "/api/alert-rules", rule("off"), status=201)
    cases = [
        ("cpu", {"above": 150}, 422, "above"),
        ("cpu", {"metric": None}, 422, "metric"),
        ("off", {"metric": "ram"}, 422, "metric"),
        ("off", {"above": 5}, 422, "metric"),
        ("cpu", {"include_shutdown": True}, 422, "include_shutdown"),
        ("cpu", {"channels": ["nowhere"]}, 404, "channels"),
        ("cpu", {"channels": []}, 422, "channels"),
        ("cpu", {"selector": "online"}, 422, "selector"),
        ("cpu", {"for_s": -1}, 422, "for_s"),
    ]
    for name, patch, status, field in cases:
        error = harness.call("PATCH", f"/api/alert-rules/{name}", patch, status=status)["error"]
        assert error["field"] == field, (patch, error)
    assert harness.call("GET", "/api/alert-rules/cpu")["above"] == 50  # nothing changed
    # A metric rule switched to program_rss may go above 100 (MiB).
    out = harness.call("PATCH", "/api/alert-rules/cpu", {"metric": "program_rss", "above": 2048})
    assert out["metric"] == "program_rss" and out["above"] == 2048


# --- silences --------------------------------------------------------------------------


def test_a_silence_starts_now_and_ends_when_removed_keeping_its_row(harness):
    harness.call("POST", "/api/alert-rules", rule("quiet-rule"), status=201)
    before = datetime.now(UTC)
    out = harness.call(
        "POST",
        "/api/alert-silences",
        {"selector": "room:A101", "duration_s": 7200, "rule": "quiet-rule", "comment": "exam"},
        status=201,
    )
    starts, ends = datetime.fromisoformat(out["starts_at"]), datetime.fromisoformat(out["ends_at"])
    assert before - timedelta(seconds=1) <= starts <= datetime.now(UTC)
    assert ends - starts == timedelta(hours=2)
    assert out["active"] is True and out["rule"] == "quiet-rule" and out["comment"] == "exam"
    every = harness.call(
        "POST", "/api/alert-silences", {"selector": "all", "duration_s": 60}, status=201
    )
    assert every["rule"] is None
    active = {s["id"] for s in harness.call("GET", "/api/alert-silences")}
    assert {out["id"], every["id"]} <= active
    harness.call("DELETE", f"/api/alert-silences/{out['id']}", status=204)
    harness.call("DELETE", f"/api/alert-silences/{out['id']}", status=204)  # already ended
    assert out["id"] not in {s["id"] for s in harness.call("GET", "/api/alert-silences")}
    history = harness.call("GET", "/api/alert-silences?active=false")
    ended = next(s for s in history if s["id"] == out["id"])
    assert ended["active"] is False and datetime.fromisoformat(ended["ends_at"]) < ends
    assert len(harness.audit("alert_silence.create")) >= 2
    assert [e["target"] for e in harness.audit("alert_silence.delete")].count(str(out["id"])) == 1
    harness.call("DELETE", "/api/alert-silences/999999", status=404)


# --- maintenance windows ---------------------------------------------------------------


def test_a_window_is_created_listed_and_removed(harness):
    night = harness.call(
        "POST",
        "/api/maintenance-windows",
        window(
            "night",
            days=["sun", "mon"],
            start="22:00",
            end="08:00",
            timezone="Asia/Seoul",
            report_left_on=True,
            channels=["ops"],
        ),
        status=201,
    )
    assert night["days"] == ["sun", "mon"] and night["start"] == "22:00"
    assert night["end"] == "08:00" and night["timezone"] == "Asia/Seoul"
    assert night["channels"] == ["ops"] and night["report_left_on"] is True
    assert isinstance(night["open_now"], bool)
    now = datetime.now(UTC)
    exam = harness.call(
        "POST",
        "/api/maintenance-windows",
        window(
            "exam",
            starts_at=(now - timedelta(hours=1)).isoformat(),
            ends_at=(now + timedelta(hours=1)).isoformat(),
        ),
        status=201,
    )
    assert exam["open_now"] is True and exam["days"] is None
    later = harness.call(
        "POST",
        "/api/maintenance-windows",
        window("later", starts_at="2099-01-01T09:00:00+09:00", ends_at="2099-01-01T18:00:00+09:00"),
        status=201,
    )
    assert later["open_now"] is False
    assert datetime.fromisoformat(later["starts_at"]) == datetime(2099, 1, 1, tzinfo=UTC)
    default = harness.call(
        "POST", "/api/maintenance-windows", window("local", start="12:00", end="13:00"), status=201
    )
    assert default["timezone"]  # the server's
    names = [w["name"] for w in harness.call("GET", "/api/maintenance-windows")]
    assert {"night", "exam", "later", "local"} <= set(names)
    assert harness.call("GET", "/api/maintenance-windows/night")["id"] == night["id"]
    harness.call("DELETE", "/api/maintenance-windows/night", status=204)
    harness.call("GET", "/api/maintenance-windows/night", status=404)
    for action in ("maintenance_window.create", "maintenance_window.delete"):
        assert any(e["target"] == "night" for e in harness.audit(action)), action


def test_the_left_on_report_is_marked_once_per_opening(harness):
    harness.call(
        "POST", "/api/maintenance-windows", window("marked", start="01:00", end="02:00"), status=201
    )
    opening = datetime(2026, 3, 1, 16, tzinfo=UTC)

    async def mark() -> tuple[bool, bool, bool, datetime | None]:
        async with harness.core.db.begin() as conn:
            found = await config_store.window_by_name(conn, "marked")
            assert found is not None
            first = await config_store.mark_window_reported(conn, found.id, opening)
            again = await config_store.mark_window_reported(conn, found.id, opening)
            later = opening + timedelta(days=1)
            next_night = await config_store.mark_window_reported(conn, found.id, later)
            after = await config_store.window_by_name(conn, "marked")
        assert after is not None
        return first, again, next_night, after.last_report_at

    assert harness.run(mark) == (True, False, True, opening + timedelta(days=1))


# --- bad input -------------------------------------------------------------------------

CHANNELS = "/api/alert-channels"
RULES = "/api/alert-rules"
SILENCES = "/api/alert-silences"
WINDOWS = "/api/maintenance-windows"
NOW = datetime(2030, 1, 1, tzinfo=UTC)

ERRORS = [
    # channels
    ("POST", CHANNELS, {"name": "x", "kind": "sms", "url": "https://a.example"}, 422, "kind"),
    ("POST", CHANNELS, {"name": "x", "kind": "discord", "url": "ftp://a.example/x"}, 422, "url"),
    ("POST", CHANNELS, {"name": "x", "kind": "webhook", "url": "not a url"}, 422, "url"),
    (
        "POST",
        CHANNELS,
        {"name": "x", "kind": "email", "url": "smtp://u:p@mail.example"},
        422,
        "url",
    ),
    ("POST", CHANNELS, {"name": "x", "kind": "email", "url": "https://a.example"}, 422, "url"),
    (
        "POST",
        CHANNELS,
        {"name": "x", "kind": "webhook", "url": "https://a.example:99999/x"},
        422,
        "url",
    ),
    (
        "POST",
        CHANNELS,
        {"name": "x", "kind": "slack", "url": "https://a.example/x", "secret": "k"},
        422,
        "secret",
    ),
    ("POST", CHANNELS, {"name": "bad name", "kind": "slack", "url": "https://a.e/x"}, 422, "name"),
    ("POST", CHANNELS, {"name": "x", "kind": "slack"}, 422, "url"),
    ("POST", CHANNELS, {"name": "x", "kind": "slack", "url": "https://a.e/x", "to": 1}, 422, "to"),
    ("PATCH", f"{CHANNELS}/ops", {"url": "ftp://a.example"}, 422, "url"),
    ("PATCH", f"{CHANNELS}/ops", {"secret": ""}, 422, "secret"),
    ("PATCH", f"{CHANNELS}/nowhere", {"enabled": True}, 404, None),
    ("DELETE", f"{CHANNELS}/nowhere", None, 404, None),
    ("POST", f"{CHANNELS}/nowhere/test", None, 404, None),
    # rules
    ("POST", RULES, rule("x", "disk_full"), 422, "kind"),
    ("POST", RULES, rule("x", selector="room:"), 422, "selector"),
    ("POST", RULES, rule("x", selector="foo:bar"), 422, "selector"),
    ("POST", RULES, rule("x", selector="online"), 422, "selector"),
    ("POST", RULES, rule("x", selector="lab-1,,lab-2"), 422, "selector"),
    ("POST", RULES, rule("x", for_s=-5), 422, "for_s"),
    ("POST", RULES, rule("x", repeat_s=-1), 422, "repeat_s"),
    ("POST", RULES, rule("x", group_wait_s=-1), 422, "group_wait_s"),
    ("POST", RULES, rule("x", "metric", metric="cpu", above=150), 422, "above"),
    ("POST", RULES, rule("x", "metric", metric="cpu", above=-3), 422, "above"),
    ("POST", RULES, rule("x", "metric", above=50), 422, "metric"),
    ("POST", RULES, rule("x", "metric", metric="cpu"), 422, "above"),
    ("POST", RULES, rule("x", "metric", metric="gpu", above=50), 422, "metric"),
    ("POST", RULES, rule("x", metric="cpu", above=50), 422, "metric"),
    ("POST", RULES, rule("x", "program_down", include_shutdown=True), 422, "include_shutdown"),
    ("POST", RULES, rule("x", severity="panic"), 422, "severity"),
    ("POST", RULES, rule("x", channels=[]), 422, "channels"),
    ("POST", RULES, rule("x", channels=["nowhere"]), 404, "channels"),
    ("PATCH", f"{RULES}/nowhere", {"enabled": False}, 404, None),
    ("DELETE", f"{RULES}/nowhere", None, 404, None),
    # silences
    ("POST", SILENCES, {"selector": "room:A101", "duration_s": -60}, 422, "duration_s"),
    ("POST", SILENCES, {"selector": "room:A101", "duration_s": 0}, 422, "duration_s"),
    ("POST", SILENCES, {"selector": "online", "duration_s": 60}, 422, "selector"),
    ("POST", SILENCES, {"selector": "all", "duration_s": 60, "rule": "nowhere"}, 404, "rule"),
    ("DELETE", f"{SILENCES}/0", None, 422, "silence_id"),
    ("DELETE", f"{SILENCES}/abc", None, 422, "silence_id"),
    ("GET", f"{SILENCES}?active=maybe", None, 422, "active"),
    # windows
    ("POST", WINDOWS, window("x", start="22:00"), 422, "start"),
    ("POST", WINDOWS, window("x", end="08:00"), 422, "start"),
    ("POST", WINDOWS, window("x"), 422, "start"),
    ("POST", WINDOWS, window("x", start="25:00", end="08:00"), 422, "start"),
    ("POST", WINDOWS, window("x", start="22:00", end="8am"), 422, "end"),
    ("POST", WINDOWS, window("x", start="22:00", end="08:00", days=["sunday"]), 422, "days.0"),
    ("POST", WINDOWS, window("x", start="22:00", end="08:00", days=[]), 422, "days"),
    (
        "POST",
        WINDOWS,
        window("x", start="22:00", end="08:00", timezone="Mars/Base"),
        422,
        "timezone",
    ),
    ("POST", WINDOWS, window("x", selector="tag:", start="1:00", end="2:00"), 422, "selector"),
    (
        "POST",
        WINDOWS,
        window("x", starts_at=NOW.isoformat(), ends_at=(NOW - timedelta(hours=1)).isoformat()),
        422,
        "ends_at",
    ),
    ("POST", WINDOWS, window("x", starts_at=NOW.isoformat()), 422, "ends_at"),
    (
        "POST",
        WINDOWS,
        window("x", starts_at="2030-01-01T09:00:00", ends_at="2030-01-01T18:00:00"),
        422,
        "starts_at",
    ),
    (
        "POST",
        WINDOWS,
        window("x", start="22:00", end="08:00", starts_at=NOW.isoformat()),
        422,
        "starts_at",
    ),
    (
        "POST",
        WINDOWS,
        window("x", start="22:00", end="08:00", report_left_on=True),
        422,
        "channels",
    ),
    (
        "POST",
        WINDOWS,
        window("x", start="22:00", end="08:00", report_left_on=True, channels=["nowhere"]),
        404,
        "channels",
    ),
    ("GET", f"{WINDOWS}/nowhere", None, 404, None),
    ("DELETE", f"{WINDOWS}/nowhere", None, 404, None),
    ("GET", "/api/alerts?state=burning", None, 422, "state"),
    ("GET", "/api/alerts?limit=0", None, 422, "limit"),
    ("GET", "/api/alerts/0", None, 422, "alert_id"),
    ("GET", "/api/alerts/999999", None, 404, None),
    ("POST", "/api/alerts/999999/ack", None, 404, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), ERRORS)
def test_bad_input_is_refused_naming_its_field(harness, method, path, body, status, field):
    error = harness.call(method, path, body, status=status)["error"]
    assert error.get("field") == field, error
    assert error["message"] and not error["message"].startswith("Value error")
    if field is not None and status == 422:
        assert error["message"].startswith(f"{field}:"), error


def test_unknown_names_say_which_code(harness):
    error = harness.call("POST", RULES, rule("x", channels=["ops", "nowhere"]), status=404)
    assert error["error"]["code"] == "unknown_channel" and "nowhere" in error["error"]["message"]
    body = {"selector": "all", "duration_s": 60, "rule": "nowhere"}
    assert harness.call("POST", SILENCES, body, status=404)["error"]["code"] == "unknown_rule"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHANNELS, {"name": "twice", "kind": "webhook", "url": "https://a.example/x"}),
        (RULES, rule("twice")),
        (WINDOWS, window("twice", start="22:00", end="08:00")),
    ],
    ids=["channel", "rule", "window"],
)
def test_a_taken_name_is_a_conflict_naming_the_field(harness, path, body):
    harness.call("POST", path, body, status=201)
    error = harness.call("POST", path, body, status=409)["error"]
    assert (error["code"], error["field"]) == ("conflict", "name")
