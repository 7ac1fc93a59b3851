"""`wcms channel`, `rule`, `silence`, `window`, `alerts`, `alert` and `deliveries`: help,
one-line refusals, and the documented contract against a real server (the alert and
delivery lists against a stand-in that records what the CLI asked)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.procs import ServerProc, wcms
from wcms.cli.client import CliError
from wcms.cli.main import app

REMOTE = {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": "k"}
DISCORD_TOKEN = "cli-discord-token-never-shown"
DISCORD = f"https://discord.com/api/webhooks/42/{DISCORD_TOKEN}"
SIGNING_KEY = "cli-signing-key-never-shown"
ALERT_KEYS = {"id", "rule", "kind", "state", "subjects", "started_at", "resolved_at"}


@pytest.mark.parametrize(
    "command",
    [
        ["channel"],
        *(["channel", c] for c in ("add", "list", "test", "remove")),
        ["rule"],
        *(["rule", c] for c in ("add", "list", "remove", "enable", "disable")),
        ["alerts"],
        ["alert", "ack"],
        ["silence"],
        *(["silence", c] for c in ("add", "list", "remove")),
        ["silence", "room:A101"],
        ["window"],
        *(["window", c] for c in ("add", "list", "remove")),
        ["deliveries"],
    ],
    ids=lambda c: " ".join(c),
)
def test_every_alerting_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rule", "add", "r", "machine_offline"], "--channel"),
        (["rule", "add", "r", "machine_offline", "--channel", "c", "--for", "soon"], "--for:"),
        (["rule", "add", "r", "metric", "--channel", "c", "--repeat", "-5m"], "--repeat:"),
        (["silence", "room:A101", "--for", "forever"], "--for:"),
        (["alerts", "--state", "burning"], "--state must be"),
        (["deliveries", "--state", "lost"], "--state must be"),
        (["window", "add", "w", "all", "--starts", "next week", "--ends", "x"], "--starts:"),
        (["window", "add", "w", "all", "--from", "22:00", "--tz", "Mars/Base"], "--tz:"),
    ],
)
def test_bad_arguments_get_one_line_and_a_non_zero_exit(args, message):
    result = wcms(*args, env=REMOTE, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


class Server:
    """A real server process, and its remote commands run in this process."""

    def __init__(self, proc: ServerProc) -> None:
        self.proc = proc
        self.env = {"WCMS_URL": proc.url, "WCMS_API_KEY": proc.key}

    def remote(self, *args: str) -> Result:
        return remote(self.env, *args)

    def api(self) -> Any:
        return self.proc.api()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    proc = ServerProc(tmp_path_factory.mktemp("server"), None).start()
    try:
        yield Server(proc)
    finally:
        proc.stop()


def remote(env: dict[str, str], *args: str) -> Result:
    """Run a remote command in this process, as `wcms` would (see ``ok`` and ``refused``)."""
    return CliRunner().invoke(app, list(args), env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exception, result.output)
    return result


def refused(result: Result, *words: str) -> None:
    """A refusal: the one-line message `wcms` prints (a CliError), or a usage error."""
    assert result.exit_code != 0
    said = str(result.exception) if isinstance(result.exception, CliError) else result.stderr
    assert said and not isinstance(result.exception, AssertionError | TypeError), result
    for word in words:
        assert word in said, said


def test_channels_are_added_listed_tested_and_removed(server):
    added = ok(server.remote("channel", "add", "lab-discord", "discord", DISCORD))
    assert "https://discord.com/api/webhooks/42/***" in added.stdout
    ok(
        server.remote(
            "channel", "add", "hook", "webhook", "https://h.example/in", "--secret", SIGNING_KEY
        )
    )
    listed = ok(server.remote("channel", "list", "--json"))
    channels = {c["name"]: c for c in json.loads(listed.stdout)}
    assert channels["lab-discord"]["url"] == "https://discord.com/api/webhooks/42/***"
    assert channels["hook"]["has_secret"] is True and channels["hook"]["kind"] == "webhook"
    table = ok(server.remote("channel", "list")).stdout
    assert "lab-discord" in table and "hook" in table
    tested = ok(server.remote("channel", "test", "lab-discord"))
    delivery = tested.stdout.strip().splitlines()[-1]
    assert len(delivery) == 36 and delivery.count("-") == 4
    every = json.dumps(server.api().get("/api/audit", params={"limit": 1000}))
    for text in (added.stdout, listed.stdout, table, tested.stdout, every):
        assert DISCORD_TOKEN not in text and SIGNING_KEY not in text
    ok(server.remote("channel", "remove", "hook"))
    left = json.loads(ok(server.remote("channel", "list", "--json")).stdout)
    assert "hook" not in {c["name"] for c in left}
    refused(server.remote("channel", "test", "nowhere"), "404")


def test_bad_channels_are_refused_naming_the_problem(server):
    refused(server.remote("channel", "add", "x", "sms", "https://a.example"), "422", "kind")
    refused(server.remote("channel", "add", "x", "discord", "ftp://a.example/x"), "url:")
    refused(server.remote("channel", "add", "x", "email", "smtp://u:p@mail.example"), "?to=")
    refused(
        server.remote("channel", "add", "x", "slack", "https://a.e/x", "--secret", "s"), "secret"
    )


def test_rules_are_added_listed_switched_and_removed(server):
    ok(server.remote("channel", "add", "ops", "webhook", "https://h.example/ops"))
    added = ok(
        server.remote(
            "rule",
            "add",
            "lab-hot",
            "metric",
            "--selector",
            "room:A101",
            "--metric",
            "cpu",
            "--above",
            "90",
            "--for",
            "5m",
            "--severity",
            "critical",
            "--repeat",
            "2h",
            "--group-wait",
            "10s",
            "--group-interval",
            "1m",
            "--channel",
            "ops",
        )
    )
    assert "lab-hot" in added.stdout
    ok(
        server.remote(
            "rule", "add", "offline", "machine_offline", "--include-shutdown", "--channel", "ops"
        )
    )
    (hot,) = [
        r
        for r in json.loads(ok(server.remote("rule", "list", "--json")).stdout)
        if r["name"] == "lab-hot"
    ]
    assert (hot["metric"], hot["above"], hot["for_s"], hot["severity"]) == (
        "cpu",
        90,
        300,
        "critical",
    )
    assert (hot["repeat_s"], hot["group_wait_s"], hot["group_interval_s"]) == (7200, 10, 60)
    assert hot["channels"] == ["ops"] and hot["selector"] == "room:A101"
    assert "cpu > 90%" in ok(server.remote("rule", "list")).stdout
    ok(server.remote("rule", "disable", "lab-hot"))
    assert server.api().get("/api/alert-rules/lab-hot")["enabled"] is False
    ok(server.remote("rule", "enable", "lab-hot"))
    assert server.api().get("/api/alert-rules/lab-hot")["enabled"] is True
    refused(server.remote("channel", "remove", "ops"), "409", "lab-hot")
    ok(server.remote("rule", "remove", "lab-hot"))
    refused(server.remote("rule", "remove", "lab-hot"), "404")


def test_bad_rules_are_refused_naming_the_problem(server):
    rule = ["rule", "add", "bad"]
    refused(
        server.remote(*rule, "metric", "--metric", "cpu", "--above", "150", "--channel", "x"),
        "above",
    )
    refused(
        server.remote(*rule, "machine_offline", "--selector", "online", "--channel", "x"),
        "selector",
    )
    refused(server.remote(*rule, "disk_full", "--channel", "x"), "kind")
    refused(
        server.remote(*rule, "machine_offline", "--channel", "nowhere"),
        "unknown_channel",
        "nowhere",
    )


def test_silences_are_set_listed_and_ended(server):
    # The real `wcms`: the silence id alone on the last line of its output.
    silenced = server.proc.remote("silence", "room:A101", "--for", "2h", "--comment", "exam")
    assert silenced.returncode == 0, silenced.stderr
    silence_id = silenced.stdout.strip().splitlines()[-1]
    assert silence_id.isdigit()
    ok(server.remote("rule", "add", "quiet", "machine_offline", "--channel", "ops"))
    by_rule = ok(server.remote("silence", "add", "tag:gpu", "--for", "30m", "--rule", "quiet"))
    found = {s["id"]: s for s in json.loads(ok(server.remote("silence", "list", "--json")).stdout)}
    assert found[int(silence_id)]["selector"] == "room:A101" and found[int(silence_id)]["active"]
    assert found[int(by_rule.stdout.split()[-1])]["rule"] == "quiet"
    assert "room:A101" in ok(server.remote("silence", "list")).stdout
    ok(server.remote("silence", "remove", silence_id))
    active = json.loads(ok(server.remote("silence", "list", "--json")).stdout)
    assert int(silence_id) not in {s["id"] for s in active}
    every = json.loads(ok(server.remote("silence", "list", "--all", "--json")).stdout)
    assert any(s["id"] == int(silence_id) and not s["active"] for s in every)
    refused(server.remote("silence", "online", "--for", "1h"), "selector")
    refused(server.remote("silence", "all", "--for", "1h", "--rule", "nowhere"), "404")
    refused(server.remote("silence", "remove", "999999"), "404")


def test_windows_are_added_listed_and_removed(server):
    ok(
        server.remote(
            "window",
            "add",
            "lab-night",
            "room:A101",
            "--from",
            "22:00",
            "--to",
            "08:00",
            "--days",
            "sun,mon",
            "--tz",
            "Asia/Seoul",
            "--report-left-on",
            "--channel",
            "ops",
        )
    )
    ok(
        server.remote(
            "window",
            "add",
            "exam",
            "tag:exam",
            "--starts",
            "2099-03-02T09:00",
            "--ends",
            "2099-03-02T18:00",
            "--tz",
            "Asia/Seoul",
        )
    )
    windows = {
        w["name"]: w for w in json.loads(ok(server.remote("window", "list", "--json")).stdout)
    }
    night = windows["lab-night"]
    assert (night["days"], night["start"], night["end"]) == (["sun", "mon"], "22:00", "08:00")
    assert night["timezone"] == "Asia/Seoul" and night["channels"] == ["ops"]
    assert windows["exam"]["starts_at"].startswith("2099-03-02T00:00:00")  # 09:00 in Seoul, UTC
    assert "sun,mon 22:00-08:00 Asia/Seoul" in ok(server.remote("window", "list")).stdout
    refused(server.remote("window", "add", "half", "all", "--from", "22:00"), "start")
    refused(
        server.remote("window", "add", "z", "all", "--from", "1:00", "--to", "2:00", "--tz", "UTC"),
        "start",
    )
    refused(
        server.remote("window", "add", "lab-night", "all", "--from", "01:00", "--to", "02:00"),
        "409",
    )
    ok(server.remote("window", "remove", "lab-night"))
    assert "lab-night" not in ok(server.remote("window", "list")).stdout


# --- the alert and delivery lists, against a stand-in ------------------------------

ALERT = {
    "id": 7,
    "rule": "lab-offline",
    "kind": "machine_offline",
    "severity": "warning",
    "state": "firing",
    "group": "room:A101",
    "subjects": ["pc-01", "pc-02", "pc-03", "pc-04"],
    "firing": ["pc-01"],
    "summary": "4 machines of A101 offline",
    "started_at": "2026-03-02T01:00:00Z",
    "resolved_at": None,
}
DELIVERY = {
    "id": "8c1e2f5a-0000-4000-8000-000000000001",
    "channel": "lab-discord",
    "alert_id": 7,
    "kind": "firing",
    "title": "[FIRING] lab-offline",
    "state": "dead",
    "attempts": 5,
    "deadline": "2026-03-03T01:00:00Z",
    "last_status": 404,
    "last_error": "Unknown Webhook",
    "created_at": "2026-03-02T01:00:01Z",
}


class StandIn:
    """An HTTP server answering the alert and delivery routes, recording each request."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.asked.append(f"GET {self.path}")
                found = [ALERT] if self.path.startswith("/api/alerts?") else [DELIVERY]
                self._answer(found)

            def do_POST(self) -> None:
                stand_in.asked.append(f"POST {self.path}")
                self._answer({**ALERT, "acked_at": "2026-03-02T01:05:00Z", "acked_by": "me"})

            def _answer(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.env = {"WCMS_URL": f"http://127.0.0.1:{self.http.server_port}", "WCMS_API_KEY": "k"}


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.http.shutdown()


def test_alerts_asks_for_the_state_and_prints_the_alerts(stand_in):
    listed = ok(remote(stand_in.env, "alerts", "--json", "--state", "active", "--limit", "5"))
    (alert,) = json.loads(listed.stdout)
    assert set(alert) >= ALERT_KEYS and alert["subjects"] == ALERT["subjects"]
    assert stand_in.asked[-1] == "GET /api/alerts?limit=5&state=active"
    table = ok(remote(stand_in.env, "alerts")).stdout
    assert "lab-offline" in table and "pc-01, pc-02, pc-03 +1" in table
    assert stand_in.asked[-1] == "GET /api/alerts?limit=100"


def test_alert_ack_posts_to_the_alert(stand_in):
    acked = ok(remote(stand_in.env, "alert", "ack", "7"))
    assert stand_in.asked[-1] == "POST /api/alerts/7/ack"
    assert "acknowledged" in acked.stdout
    refused(remote(stand_in.env, "alert", "ack", "seven"), "Invalid value")


def test_deliveries_asks_for_the_state_and_channel(stand_in):
    listed = ok(
        remote(stand_in.env, "deliveries", "--json", "--state", "dead", "--channel", "lab-discord")
    )
    (delivery,) = json.loads(listed.stdout)
    assert delivery["id"] == DELIVERY["id"] and delivery["state"] == "dead"
    assert stand_in.asked[-1] == "GET /api/deliveries?limit=100&state=dead&channel=lab-discord"
    table = ok(remote(stand_in.env, "deliveries")).stdout
    assert "Unknown Webhook" in table and "lab-discord" in table
