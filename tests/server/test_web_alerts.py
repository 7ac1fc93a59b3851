"""The dashboard's alert pages in process: the alerts firing now and one alert, the
navigation's count, acknowledgement, and the forms for rules, channels, silences and
maintenance windows, each posted with the browser's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.test_programs_api import Harness
from tests.server.web import log_in
from wcms.server.app import create_app
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import machines as machine_store
from wcms.server.store.machines import PresenceChange
from wcms.server.web.i18n import KO

MACHINE = "lab-01"
PASSWORD = "x" * 12
TEMPLATES = Path(__file__).parents[2] / "src/wcms/server/web/templates"
PAGES = (
    "/alerts",
    "/alerts/rules",
    "/alerts/channels",
    "/alerts/silences",
    "/alerts/windows",
    "/alerts/deliveries",
)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("web")), admin_password=PASSWORD)
    app = create_app(settings)
    with TestClient(app) as client:
        harness = Harness(client, app.state.core)
        harness.enrol(MACHINE)
        # The tests evaluate the rules themselves, at the moments they choose.
        client.portal.call(harness.core.alert_engine.stop)
        yield harness


@pytest.fixture(scope="module")
def browser(harness: Harness) -> Iterator[tuple[TestClient, str]]:
    """The app's client logged in (its cookies) and its CSRF token."""
    client = harness.client
    yield client, log_in(client, PASSWORD, "/alerts")


def form(fields: Any) -> dict[str, list[str]]:
    """A form's fields, given as a dict or as pairs (a name repeated: several values)."""
    data: dict[str, list[str]] = {}
    for name, value in fields.items() if isinstance(fields, dict) else fields:
        data.setdefault(name, []).append(value)
    return data


def post(client: TestClient, path: str, csrf: str, fields: Any = ()) -> Any:
    data = {"csrf_token": [csrf], **form(fields)}
    return client.post(path, data=data, follow_redirects=False)


def audited(harness: Harness, action: str) -> list[Any]:
    return harness.client.portal.call(lambda: harness.core.audit.recent(limit=50, action=action))


def count(client: TestClient) -> str:
    badge = re.search(r'data-testid="alert-count"[^>]*>([^<]*)<', client.get("/alerts/count").text)
    assert badge is not None
    return badge[1]


# --- before anything is configured -------------------------------------------------


def test_with_nothing_configured_each_page_says_so(browser):
    client, _ = browser
    alerts = client.get("/alerts")
    assert alerts.status_code == 200
    assert 'data-testid="no-alerts"' in alerts.text and "everything is fine" in alerts.text
    for path in PAGES[1:]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'data-testid="empty"' in page.text, path
    assert count(client) == ""
    korean = client.get("/alerts", headers={"Accept-Language": "ko"})
    assert "알림이 없습니다. 모두 정상입니다." in korean.text


@pytest.mark.parametrize("path", [*PAGES, "/alerts?state=firing", "/alerts?state=bogus"])
def test_every_alert_page_renders_in_english_and_korean(browser, path):
    client, _ = browser
    english = client.get(path)
    assert english.status_code == 200 and "Traceback" not in english.text
    assert 'href="/alerts/rules"' in english.text and "Delivery log" in english.text
    korean = client.get(path, headers={"Accept-Language": "ko"})
    assert korean.status_code == 200
    assert "전송 기록" in korean.text and "점검 시간" in korean.text and "알림 규칙" in korean.text
    assert "Delivery log" not in korean.text


def test_the_alert_list_refreshes_itself(browser):
    client, _ = browser
    page = client.get("/alerts?state=firing")
    assert 'hx-get="/alerts/table?state=firing"' in page.text
    # The engine publishes on the alert topic when an alert changes or is acknowledged.
    assert "wcms-alert-any from:document" in page.text
    assert 'data-topics="presence,command,machine,layout,alert' in page.text
    fragment = client.get("/alerts/table")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-testid="alerts"' in fragment.text


def test_the_navigation_links_to_alerts_with_its_count_on_every_page(browser):
    client, _ = browser
    overview = client.get("/")
    assert 'href="/alerts"' in overview.text
    assert 'hx-get="/alerts/count"' in overview.text
    assert "load, wcms-alert-any from:document" in overview.text
    assert "알림" in client.get("/", headers={"Accept-Language": "ko"}).text


# --- the forms -----------------------------------------------------------------------

GOOD_FORMS = [
    (
        "/alerts/channels",
        {
            "name": "ops",
            "kind": "webhook",
            "url": "http://127.0.0.1:9/hook?token=hunter2",
            "secret": "s3cret",
            "enabled": "on",
        },
        "alert_channel.create",
        "ops",
    ),
    (
        "/alerts/rules",
        [
            ("name", "offline"),
            ("kind", "machine_offline"),
            ("selector", "all"),
            ("severity", "critical"),
            ("for_s", "0"),
            ("group_wait_s", "0"),
            ("channels", "ops"),
            ("enabled", "on"),
        ],
        "alert_rule.create",
        "offline",
    ),
    (
        "/alerts/rules",
        [
            ("name", "hot-cpu"),
            ("kind", "metric"),
            ("metric", "cpu"),
            ("above", "95"),
            ("for_s", "300"),
            ("channels", "ops"),
        ],
        "alert_rule.create",
        "hot-cpu",
    ),
    (
        "/alerts/windows",
        [
            ("name", "nightly"),
            ("selector", "room:A101"),
            ("days", "mon"),
            ("days", "fri"),
            ("start", "22:00"),
            ("end", "06:00"),
            ("timezone", "Asia/Seoul"),
        ],
        "maintenance_window.create",
        "nightly",
    ),
    (
        "/alerts/windows",
        {
            "name": "exam",
            "selector": "tag:exam",
            "starts_at": "2030-03-02T09:00",
            "ends_at": "2030-03-02T12:00",
            "timezone": "Asia/Seoul",
        },
        "maintenance_window.create",
        "exam",
    ),
]


@pytest.mark.parametrize(("path", "fields", "action", "name"), GOOD_FORMS)
def test_a_good_form_creates_the_thing_and_is_audited(browser, harness, path, fields, action, name):
    client, csrf = browser
    refused = client.post(path, data=form(fields), follow_redirects=False)
    assert refused.status_code == 403 and "The form expired" in refused.text
    done = post(client, path, csrf, fields)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == path
    page = client.get(path)
    assert f'data-testid="{path.rsplit("/", 1)[1][:-1]}-{name}"' in page.text
    [entry] = [e for e in audited(harness, action) if e.target == name]
    assert entry.actor == "admin"


def test_a_channel_shows_no_secret_and_a_once_window_keeps_its_time_zone(browser, harness):
    client, _ = browser
    channels = client.get("/alerts/channels").text
    assert "hunter2" not in channels and "s3cret" not in channels
    assert "127.0.0.1:9" in channels
    exam = harness.call("GET", "/api/maintenance-windows/exam")
    assert exam["starts_at"].startswith("2030-03-02T00:00:00")  # 09:00 in Seoul, in UTC
    nightly = harness.call("GET", "/api/maintenance-windows/nightly")
    assert (nightly["days"], nightly["start"], nightly["end"]) == (["mon", "fri"], "22:00", "06:00")


def test_a_silence_is_created_and_ended_from_its_page(browser, harness):
    client, csrf = browser
    fields = {"selector": "room:B202", "rule": "offline", "hours": "1.5", "comment": "repairs"}
    done = post(client, "/alerts/silences", csrf, fields)
    assert done.status_code == 303, done.text
    [silence] = harness.call("GET", "/api/alert-silences")
    assert silence["rule"] == "offline" and silence["comment"] == "repairs"
    assert audited(harness, "alert_silence.create")[0].target == str(silence["id"])
    page = client.get("/alerts/silences")
    assert f'data-testid="end-{silence["id"]}"' in page.text
    ended = post(client, f"/alerts/silences/{silence['id']}/end", csrf)
    assert ended.status_code == 303
    assert harness.call("GET", "/api/alert-silences") == []
    assert f'data-testid="end-{silence["id"]}"' not in client.get("/alerts/silences").text


def test_send_test_queues_a_delivery_the_log_shows(browser, harness):
    client, csrf = browser
    sent = post(client, "/alerts/channels/ops/test", csrf)
    assert sent.status_code == 303 and "tested=" in sent.headers["location"]
    assert 'data-testid="tested"' in client.get(sent.headers["location"]).text
    assert audited(harness, "alert_channel.test")
    log = client.get("/alerts/deliveries")
    assert "WCMS test message" in log.text
    assert "WCMS test message" not in client.get("/alerts/deliveries?state=dead").text


BAD_FORMS = [
    ("/alerts/channels", {"name": "bad name!", "kind": "webhook", "url": "http://h/"}, "name", 422, "Use letters"),
    ("/alerts/channels", {"name": "d", "kind": "discord", "url": "ftp://h/"}, "url", 422, "http"),
    ("/alerts/channels", {"name": "m", "kind": "email", "url": "smtp://h?to=a@b", "secret": "k"}, "secret", 422, "only a webhook"),
    ("/alerts/channels", {"name": "ops", "kind": "webhook", "url": "http://h/"}, "name", 409, "already in use"),
    ("/alerts/channels", {"name": "k", "kind": "pager", "url": "http://h/"}, "kind", 422, "Choose one"),
    ("/alerts/rules", {"name": "r", "kind": "machine_offline"}, "channels", 422, "Required."),
    ("/alerts/rules", [("name", "r"), ("kind", "metric"), ("channels", "ops")], "metric", 422, "names cpu"),
    ("/alerts/rules", [("name", "r"), ("kind", "machine_offline"), ("for_s", "soon"), ("channels", "ops")], "for_s", 422, "Not a number."),
    ("/alerts/rules", [("name", "r"), ("kind", "machine_offline"), ("channels", "nope")], "channels", 404, "nope"),
    ("/alerts/rules", [("name", "r"), ("kind", "machine_offline"), ("selector", "online"), ("channels", "ops")], "selector", 422, "changes by itself"),
    ("/alerts/rules", [("name", "offline"), ("kind", "machine_offline"), ("channels", "ops")], "name", 409, "already in use"),
    ("/alerts/silences", {"selector": "all", "hours": ""}, "hours", 422, "Required."),
    ("/alerts/silences", {"selector": "all", "hours": "-1"}, "hours", 422, "Out of range."),
    ("/alerts/silences", {"selector": "all", "hours": "lots"}, "hours", 422, "Not a number."),
    ("/alerts/silences", {"selector": "all", "hours": "1", "rule": "nope"}, "rule", 404, "nope"),
    ("/alerts/silences", {"selector": "a b", "hours": "1"}, "selector", 422, "is not all"),
    ("/alerts/windows", {"name": "w", "selector": "all", "start": "25:00", "end": "06:00"}, "start", 422, "HH:MM"),
    ("/alerts/windows", {"name": "w", "selector": "all", "start": "22:00"}, "start", 422, "start and end"),
    ("/alerts/windows", {"name": "w", "selector": "all", "start": "22:00", "end": "06:00", "timezone": "Mars/Base"}, "timezone", 422, "unknown time zone"),
    ("/alerts/windows", {"name": "w", "selector": "all", "starts_at": "2030-01-02T10:00", "ends_at": "2030-01-02T09:00"}, "ends_at", 422, "after starts_at"),
    ("/alerts/windows", {"name": "w", "selector": "all", "starts_at": "someday", "ends_at": "2030-01-02T09:00"}, "starts_at", 422, "Not a date"),
    ("/alerts/windows", {"name": "w", "selector": "all", "start": "22:00", "end": "06:00", "report_left_on": "on"}, "channels", 422, "needs a channel"),
    ("/alerts/windows", {"name": "nightly", "selector": "all", "start": "22:00", "end": "06:00"}, "name", 409, "already in use"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "fields", "field", "status", "message"), BAD_FORMS)
def test_a_bad_form_is_answered_next_to_its_field(browser, path, fields, field, status, message):
    client, csrf = browser
    answer = post(client, path, csrf, fields)
    assert answer.status_code == status, answer.text
    error = re.search(rf'data-testid="error-{field}">([^<]*)<', answer.text)
    assert error is not None, answer.text
    assert message in error[1]
    assert "<html" in answer.text and 'name="csrf_token"' in answer.text
    if isinstance(fields, dict) and fields.get("name"):
        assert f'value="{fields["name"]}"' in answer.text  # the values sent are kept


def test_errors_come_in_korean(browser):
    client, csrf = browser
    fields = {"selector": "all", "hours": "lots"}
    answer = client.post(
        "/alerts/silences",
        data={"csrf_token": csrf, **fields},
        headers={"Accept-Language": "ko"},
        follow_redirects=False,
    )
    assert answer.status_code == 422
    assert 'data-testid="error-hours">숫자가 아닙니다.<' in answer.text


def test_deleting_a_channel_a_rule_tells_is_refused_with_a_page(browser, harness):
    client, csrf = browser
    refused = post(client, "/alerts/channels/ops/delete", csrf)
    assert refused.status_code == 409 and 'data-testid="error"' in refused.text
    assert "still told by rule" in refused.text
    assert harness.call("GET", "/api/alert-channels/ops")["name"] == "ops"


# --- alerts, the count and acknowledgement --------------------------------------------


def set_offline(harness: Harness, machine_id: str) -> None:
    now = utcnow()
    changes = [
        PresenceChange(machine_id, "online", "connected", now - timedelta(minutes=2)),
        PresenceChange(machine_id, "offline", "connection_lost", now - timedelta(minutes=1)),
    ]

    async def write() -> None:
        async with harness.core.db.begin() as conn:
            await machine_store.set_presence_many(conn, changes)

    harness.client.portal.call(write)


def test_a_firing_alert_is_counted_listed_shown_and_acknowledged(browser, harness):
    client, csrf = browser
    set_offline(harness, MACHINE)
    harness.client.portal.call(harness.core.alert_engine.evaluate)
    [alert] = harness.call("GET", "/api/alerts?state=firing")
    assert count(client) == "1"
    page = client.get("/alerts")
    row = re.search(rf'<tr data-testid="alert-{alert["id"]}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert 'data-state="firing"' in row[1] and 'data-severity="critical"' in row[1]
    assert 'data-testid="subjects-' in row[1] and "1 / 1" in row[1]
    assert f'data-testid="ack-{alert["id"]}"' in row[1]
    assert re.search(r'data-testid="alert-count"[^>]*>1<', page.text)  # in the navigation
    korean = client.get("/alerts", headers={"Accept-Language": "ko"}).text
    assert "발생 중" in korean and "PC 오프라인" in korean and "심각" in korean and "확인" in korean
    detail = client.get(f"/alerts/{alert['id']}")
    assert detail.status_code == 200
    assert "lab-01: offline, connection lost" in detail.text  # its subject's line
    assert 'data-testid="alert-timeline"' in detail.text and "[FIRING] offline" in detail.text
    [told] = harness.call("GET", f"/api/deliveries?alert={alert['id']}")
    assert told["alert_id"] == alert["id"] and told["kind"] == "firing"
    assert harness.call("GET", f"/api/deliveries?alert={alert['id'] + 1000}") == []

    refused = client.post(f"/alerts/{alert['id']}/ack", follow_redirects=False)
    assert refused.status_code == 403
    acked = post(client, f"/alerts/{alert['id']}/ack", csrf, {"back": "alert"})
    assert acked.status_code == 303 and acked.headers["location"] == f"/alerts/{alert['id']}"
    assert count(client) == ""
    after = harness.call("GET", f"/api/alerts/{alert['id']}")
    assert after["acked_by"] == "admin"
    assert audited(harness, "alert.ack")[0].target == str(alert["id"])
    page = client.get("/alerts?state=acknowledged")
    assert f'data-testid="alert-{alert["id"]}"' in page.text
    assert f'data-testid="ack-{alert["id"]}"' not in page.text
    assert "No alerts match." in client.get("/alerts?state=resolved").text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/alerts/999999", 404),
        ("GET", "/alerts/0", 422),
        ("POST", "/alerts/999999/ack", 404),
        ("POST", "/alerts/rules/nope/delete", 404),
        ("POST", "/alerts/channels/nope/test", 404),
        ("POST", "/alerts/windows/nope/delete", 404),
        ("POST", "/alerts/silences/999999/end", 404),
        ("POST", "/alerts/deliveries/nope/retry", 404),
    ],
)
def test_unknown_alerts_and_config_are_an_error_page(browser, method, path, status):
    client, csrf = browser
    answer = client.request(method, path, data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == status, answer.text
    assert 'data-testid="error"' in answer.text and "Traceback" not in answer.text


def test_the_config_is_deleted_from_its_pages(browser, harness):
    client, csrf = browser
    for path, name in [("windows", "exam"), ("rules", "hot-cpu")]:
        done = post(client, f"/alerts/{path}/{name}/delete", csrf)
        assert done.status_code == 303, done.text
        assert f'-{name}"' not in client.get(f"/alerts/{path}").text
    assert audited(harness, "maintenance_window.delete")[0].target == "exam"
    assert audited(harness, "alert_rule.delete")[0].target == "hot-cpu"


def test_every_phrase_of_the_alert_pages_has_its_korean():
    phrases: set[str] = set()
    for template in TEMPLATES.glob("alerts*.html"):
        phrases |= set(re.findall(r"""_\(\s*["']([^"']+)["']""", template.read_text()))
    assert phrases, "no phrases found"
    missing = sorted(p for p in phrases if p not in KO)
    assert missing == []
    for english, korean in KO.items():
        assert set(re.findall(r"{\w+}", english)) == set(re.findall(r"{\w+}", korean)), english
