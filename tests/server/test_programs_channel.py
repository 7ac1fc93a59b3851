"""Programs between server and agent, in process, on both databases: the set reaches
the agent (secrets in clear) over the WebSocket and the long poll, and the agent's
reports are stored once however often they are sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.test_programs_api import Harness
from wcms.protocol import HelloFrame, WelcomeFrame, server_frame
from wcms.protocol.messages import dump
from wcms.protocol.program_admin import PROGRAM_EVENT_TOPIC, ProgramEvent, ProgramEventKind
from wcms.protocol.programs import (
    ProgramAckFrame,
    ProgramExit,
    ProgramReport,
    ProgramReportAck,
    ProgramReportFrame,
    ProgramsFrame,
    ProgramState,
    ProgramStatus,
    ProgramTransition,
    Reason,
)
from wcms.server.app import create_app
from wcms.server.settings import Settings

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = ProgramState


@pytest.fixture(scope="module")
def harness(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("channel")),
        database_url=module_database_url,
        admin_password="x" * 12,
        poll_timeout=5,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield Harness(client, app.state.core)


def agent_headers(credential: str, session: str = "s1") -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", "X-WCMS-Session": session}


def add(harness: Harness, machine: str, name: str, **fields: Any) -> dict[str, Any]:
    body = {"machine": machine, "name": name, "command": ["./srv"], **fields}
    return harness.call("POST", "/api/programs", body, status=201)  # type: ignore[no-any-return]


def change(seq: int, name: str, frm: S, to: S, reason: Reason, **fields: Any) -> ProgramTransition:
    return ProgramTransition(
        seq=seq, name=name, at=AT, from_state=frm, to_state=to, reason=reason, **fields
    )


def test_the_set_reaches_a_websocket_agent_with_its_secrets(harness):
    credential = harness.enrol("ws-1")
    add(
        harness,
        "ws-1",
        "pal",
        preset="palworld",
        probe="palworld://admin:hunter2@127.0.0.1:8212",
        secret_env={"ADMIN_PASSWORD": "s3cret"},
    )
    headers = agent_headers(credential)
    with harness.client.websocket_connect("/api/client/ws", headers=headers) as ws:
        ws.send_text(dump(HelloFrame(session_id="s1", programs_revision=0)))
        assert isinstance(server_frame(ws.receive_text()), WelcomeFrame)
        first = server_frame(ws.receive_text())
        assert isinstance(first, ProgramsFrame)
        (spec,) = first.set.programs
        assert spec.secret_env == {"ADMIN_PASSWORD": "s3cret"}
        assert spec.probe is not None and spec.probe.url.endswith("hunter2@127.0.0.1:8212")
        assert spec.stop.command == "shutdown" and spec.clean_exit_is_stop
        # A change while connected is pushed at once, at the next revision.
        harness.call("POST", "/api/programs/ws-1/pal/start")
        pushed = server_frame(ws.receive_text())
        assert isinstance(pushed, ProgramsFrame)
        assert pushed.set.revision == first.set.revision + 1
        assert pushed.set.programs[0].desired == "running"
        # A report is acknowledged; a stale revision in it brings the set again.
        report = ProgramReport(
            revision=first.set.revision,
            statuses=[ProgramStatus(name="pal", state=S.STARTING, pid=42)],
            events=[change(1, "pal", S.STOPPED, S.STARTING, Reason.USER_START)],
        )
        ws.send_text(dump(ProgramReportFrame(report=report)))
        ack = server_frame(ws.receive_text())
        assert isinstance(ack, ProgramAckFrame) and ack.seq == 1
        again = server_frame(ws.receive_text())
        assert isinstance(again, ProgramsFrame) and again.set.revision == pushed.set.revision
    listed = harness.call("GET", "/api/programs?selector=ws-1")[0]
    assert (listed["state"], listed["pid"], listed["pending_sync"]) == ("starting", 42, True)
    assert "hunter2" not in str(listed)


def test_an_agent_that_holds_the_current_set_gets_no_set_and_an_old_agent_none(harness):
    credential = harness.enrol("ws-2")
    add(harness, "ws-2", "mc", preset="minecraft")
    revision = harness.revision("ws-2")
    headers = agent_headers(credential)
    for hello in (
        HelloFrame(session_id="s1", programs_revision=revision),
        HelloFrame(session_id="s1", protocol_version=2),
    ):
        with harness.client.websocket_connect("/api/client/ws", headers=headers) as ws:
            ws.send_text(dump(hello))
            assert isinstance(server_frame(ws.receive_text()), WelcomeFrame)
            report = ProgramReport(revision=revision)
            ws.send_text(dump(ProgramReportFrame(report=report)))
            # The next frame is the ack: no set came between.
            assert isinstance(server_frame(ws.receive_text()), ProgramAckFrame)


def test_a_report_sent_twice_is_stored_once(harness):
    credential = harness.enrol("http-1")
    add(harness, "http-1", "game")
    changes = [
        change(1, "game", S.STOPPED, S.STARTING, Reason.USER_START),
        change(2, "game", S.STARTING, S.RUNNING, Reason.READY),
    ]
    report = ProgramReport(
        revision=harness.revision("http-1"),
        statuses=[ProgramStatus(name="game", state=S.RUNNING, pid=7, started_at=AT, players=3)],
        events=changes,
    )
    for _ in range(3):
        answer = harness.client.post(
            "/api/client/programs",
            json=report.model_dump(mode="json"),
            headers=agent_headers(credential),
        )
        assert answer.status_code == 200, answer.text
        ack = ProgramReportAck.model_validate(answer.json())
        assert (ack.seq, ack.programs) == (2, None)
    events = harness.call("GET", "/api/programs/http-1/game/events")
    assert [(e["seq"], e["from"], e["to"], e["reason"]) for e in events] == [
        (1, "stopped", "starting", "user_start"),
        (2, "starting", "running", "ready"),
    ]
    out = harness.call("GET", "/api/programs/http-1/game")
    assert (out["state"], out["players"], out["pending_sync"]) == ("running", 3, False)
    assert out["uptime_s"] > 0


def test_the_long_poll_answers_the_set_when_stale_and_wakes_on_a_change(harness):
    credential = harness.enrol("http-2")
    headers = agent_headers(credential, "poller")
    stale = harness.client.get(
        "/api/client/command", params={"wait": 0, "programs_revision": 0}, headers=headers
    ).json()
    assert stale["programs"] is None  # nothing defined yet: revision 0 is current
    add(harness, "http-2", "game", secret_env={"TOKEN": "t0ken"})
    revision = harness.revision("http-2")
    answer = harness.client.get(
        "/api/client/command", params={"wait": 0, "programs_revision": 0}, headers=headers
    ).json()
    assert answer["programs"]["revision"] == revision
    assert answer["programs"]["programs"][0]["secret_env"] == {"TOKEN": "t0ken"}
    polled: dict[str, Any] = {}
    # A session of its own: the poller's link was woken by the creation already.
    headers = agent_headers(credential, "poller-2")

    def poll() -> None:
        started = time.monotonic()
        polled["answer"] = harness.client.get(
            "/api/client/command",
            params={"wait": 5, "programs_revision": revision},
            headers=headers,
        ).json()
        polled["took"] = time.monotonic() - started

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.5)
    harness.call("POST", "/api/programs/http-2/game/start")
    waiting.join(10)
    assert polled["answer"]["programs"], polled
    assert polled["answer"]["programs"]["revision"] == revision + 1
    assert polled["took"] < 4


def test_transitions_are_told_as_typed_events_once(harness):
    credential = harness.enrol("alerts-1")
    add(harness, "alerts-1", "srv")
    subscription = harness.client.portal.call(
        lambda: _subscribe(harness)  # made on the app's loop
    )
    crash = ProgramExit(code=1, reason=Reason.CRASH, at=AT, error="segfault")
    changes = [
        change(1, "srv", S.STOPPED, S.STARTING, Reason.USER_START),
        change(2, "srv", S.STARTING, S.RUNNING, Reason.READY),
        change(3, "srv", S.RUNNING, S.BACKOFF, Reason.CRASH, exit=crash),
        change(4, "srv", S.BACKOFF, S.STARTING, Reason.RETRY),
        change(5, "srv", S.STARTING, S.RUNNING, Reason.READY),
        change(6, "srv", S.RUNNING, S.STOPPING, Reason.HANG),
        change(7, "srv", S.STOPPING, S.BACKOFF, Reason.HANG),
        change(8, "srv", S.BACKOFF, S.CRASH_LOOP, Reason.CRASH),
        change(9, "srv", S.CRASH_LOOP, S.STARTING, Reason.RETRY),
        change(10, "srv", S.STARTING, S.RUNNING, Reason.READY),
        change(11, "srv", S.RUNNING, S.STOPPING, Reason.USER_STOP),
        change(12, "srv", S.STOPPING, S.STOPPED, Reason.USER_STOP),
    ]
    report = ProgramReport(revision=harness.revision("alerts-1"), events=changes)
    for _ in range(2):  # the second time, nothing is new: nothing is told
        answer = harness.client.post(
            "/api/client/programs",
            json=report.model_dump(mode="json"),
            headers=agent_headers(credential),
        )
        assert answer.status_code == 200, answer.text
    told = harness.client.portal.call(lambda: _drain(subscription))
    K = ProgramEventKind
    assert [(e.kind, e.seq) for e in told] == [
        (K.CRASHED, 3),
        (K.RECOVERED, 5),
        (K.HUNG, 6),
        (K.CRASH_LOOP, 8),
        (K.RECOVERED, 10),
        (K.STOPPED, 12),
    ]
    crashed = told[0]
    assert (crashed.machine, crashed.name, crashed.reason, crashed.exit_code, crashed.at) == (
        "alerts-1",
        "srv",
        Reason.CRASH,
        1,
        AT,
    )
    assert crashed.detail == "segfault"


async def _subscribe(harness: Harness) -> Any:
    return harness.core.bus.subscribe([PROGRAM_EVENT_TOPIC])


async def _drain(subscription: Any) -> list[ProgramEvent]:
    events = [ProgramEvent.model_validate(e.data) for e in subscription.drain()]
    subscription.close()
    return events
