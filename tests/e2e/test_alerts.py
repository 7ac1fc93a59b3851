"""Alerts end to end: real server and agent processes, a real receiver over real sockets.

A killed agent is one firing message after the grace and the pending period, and one
resolved message when it is back; the generic webhook's signature verifies with the
channel's secret; a room going dark together is one message; a flapping agent is one
notice; messages not delivered when the server stops are delivered once after it
starts again; offline inside a maintenance window raises nothing."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest
from benchmarks.fleet.swarm import Swarm

from tests.alert_receiver import HttpReceiver, Received
from tests.procs import Api, ServerProc, wait_for

SECRET = "s3cret-for-signing"
FAST = {"alert_tick_s": 0.5, "alert_retry_base": 0.2, "alert_retry_cap": 1.0}
# Only SQLite, for the tests whose point is not the database.
SQLITE_ONLY = pytest.mark.parametrize("database_url", [None])


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as running:
        yield running


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return dict(FAST)


def watch(api: Api, receiver: HttpReceiver, **rule: Any) -> None:
    """A signed webhook channel to the receiver, and a machine_offline rule telling it."""
    channel = {
        "name": "ops",
        "kind": "webhook",
        "url": f"{receiver.url}/hook/ops",
        "secret": SECRET,
    }
    api.post("/api/alert-channels", channel, status=201)
    body = {
        "name": "offline",
        "kind": "machine_offline",
        "channels": ["ops"],
        "group_wait_s": 0,
        "group_interval_s": 1,
        **rule,
    }
    api.post("/api/alert-rules", body, status=201)


def online(api: Api, *machine_ids: str) -> None:
    for machine_id in machine_ids:
        wait_for(lambda m=machine_id: api.status_of(m) == "online", what=f"{machine_id} online")


def delivered(receiver: HttpReceiver) -> list[Received]:
    """What the receiver accepted, oldest first."""
    return [r for r in receiver.received("/hook/") if r.status < 300]


def states(receiver: HttpReceiver) -> list[str]:
    return [r.json()["message"]["kind"] for r in delivered(receiver)]


def settle(seconds: float = 3.0) -> None:
    """Long enough for a second message to arrive, were one (wrongly) due."""
    time.sleep(seconds)


def test_a_killed_agent_is_one_signed_firing_message_and_one_resolved_when_back(
    server, spawn, receiver
):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    watch(api, receiver, for_s=1)
    agent.stop(kill=True)
    started = time.monotonic()
    [firing] = receiver.wait_for(1, prefix="/hook/", timeout=30)
    took = time.monotonic() - started
    assert took >= 1.5 + 1  # the grace (1.5 s), then the pending period
    body = firing.json()["alert"]
    assert (body["state"], body["subjects"], body["rule"]) == ("firing", ["lab-01"], "offline")
    signature = hmac.new(SECRET.encode(), firing.body, hashlib.sha256).hexdigest()
    assert firing.headers["x-wcms-signature"] == f"sha256={signature}"
    assert firing.headers["x-wcms-delivery"]
    [alert] = api.get("/api/alerts", params={"state": "firing"})
    assert alert["id"] == body["id"] and alert["firing"] == ["lab-01"]

    spawn("lab-01")
    online(api, "lab-01")
    wait_for(lambda: len(delivered(receiver)) >= 2, timeout=30, what="the resolved message")
    settle()
    assert states(receiver) == ["firing", "resolved"]
    assert api.get(f"/api/alerts/{body['id']}")["state"] == "resolved"
    assert "wcms_alerts_firing 0.0" in api.client.get("/metrics").text


@SQLITE_ONLY
def test_a_room_going_dark_together_is_one_message(server: ServerProc, receiver):
    api = server.api()
    watch(api, receiver, selector="room:A101", group_wait_s=4)
    token = server.cli("enroll-token", "--uses", "20", "--room", "A101").stdout.split()[-1]
    swarm = Swarm(server.url, 20, 1, prefix="a101")
    try:
        swarm.ask("enrol", token=token)
        swarm.ask("connect")
        swarm.ask("until_online", timeout=60)
        swarm.ask("heartbeats", interval=1.0)
        online(api, *swarm.ids)
        for proc in swarm._procs:  # the room's power goes: no goodbye from anyone
            proc.kill()
        [message] = receiver.wait_for(1, prefix="/hook/", timeout=40)
        settle(5)
    finally:
        swarm.close()
    assert len(delivered(receiver)) == 1
    body = message.json()
    assert sorted(body["alert"]["subjects"]) == sorted(swarm.ids)
    assert body["message"]["title"] == "[FIRING] offline: 20 machines offline in A101"


@SQLITE_ONLY
@pytest.mark.parametrize(
    "server_settings", [{**FAST, "alert_flap_count": 2, "alert_flap_window_s": 120}]
)
def test_a_flapping_agent_is_one_notice(server, spawn, receiver):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    watch(api, receiver)
    for told in (1, 3):  # killed, back, killed again
        agent.stop(kill=True)
        wait_for(lambda t=told: len(delivered(receiver)) >= t, timeout=30, what="told")
        agent = spawn("lab-01")
        online(api, "lab-01")
        if told == 1:
            wait_for(lambda: len(delivered(receiver)) >= 2, timeout=30, what="resolved")
    settle()
    assert states(receiver) == ["firing", "resolved", "flapping"]


@pytest.mark.parametrize("server_settings", [{**FAST, "alert_lease": 5}])
def test_messages_undelivered_when_the_server_stops_are_delivered_once_after(
    server, spawn, receiver
):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    watch(api, receiver)
    receiver.set_mode("/hook/", "503")  # the receiver is down for now
    agent.stop(kill=True)
    wait_for(lambda: len(receiver.received("/hook/")) >= 2, timeout=30, what="tries")
    server.stop()
    receiver.set_mode("/hook/", "ok")
    server.start()
    [message] = wait_for(lambda: delivered(receiver), timeout=30, what="the delivery")
    settle()
    ids = [r.headers["x-wcms-delivery"] for r in delivered(receiver)]
    assert len(ids) == len(set(ids)) == 1
    assert message.json()["alert"]["subjects"] == ["lab-01"]


@SQLITE_ONLY
def test_offline_inside_a_maintenance_window_raises_nothing_but_the_left_on_report(
    server, spawn, receiver
):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    watch(api, receiver)
    window = {
        "name": "night",
        "selector": "lab-01",
        "start": "00:00",
        "end": "00:00",  # all day, every day
        "report_left_on": True,
        "channels": ["ops"],
    }
    api.post("/api/maintenance-windows", window, status=201)
    [report] = receiver.wait_for(1, prefix="/hook/", timeout=30)
    assert report.json()["message"]["kind"] == "digest"
    assert report.json()["alert"]["subjects"] == ["lab-01"]
    agent.stop(kill=True)
    wait_for(lambda: api.status_of("lab-01") == "offline", timeout=30, what="offline")
    settle(4)
    assert states(receiver) == ["digest"]
    assert api.get("/api/alerts") == []
