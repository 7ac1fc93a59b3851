"""Presence of a long-polling agent, over real sockets: a poll waits by default, a
client that hangs up mid-poll is gone (offline after the grace), a silent one is gone
after the heartbeat timeout, and requests without a session header are one session."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.procs import ServerProc, wait_for
from wcms.protocol import StatusReport
from wcms.server.channel.http import MAX_POLL_WAIT_S
from wcms.server.channel.links import POLL_GAP_S
from wcms.server.settings import Settings

pytestmark = pytest.mark.e2e

POLL_TIMEOUT = 2.0
GRACE = 2.0
HEARTBEAT_TIMEOUT = 3.0
REPORT = StatusReport(cpu_percent=1, ram_used=1, ram_total=2, ram_percent=50)
STATUS = {"status": REPORT.model_dump(mode="json")}


@pytest.fixture(scope="module")
def server(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProc]:
    proc = ServerProc(
        tmp_path_factory.mktemp("server"),
        module_database_url,
        poll_timeout=POLL_TIMEOUT,
        offline_grace=GRACE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


class Poller:
    """A simple HTTP client of the agent API: a credential and, maybe, a session."""

    def __init__(self, server: ServerProc, machine_id: str, session: str | None = None) -> None:
        self.server = server
        self.machine_id = machine_id
        self.headers = {"Authorization": f"Bearer {server.enrol(machine_id)}"}
        if session is not None:
            self.headers["X-WCMS-Session"] = session

    def poll(self, **params: Any) -> tuple[httpx.Response, float]:
        """One poll; returns the answer and how long it took."""
        started = time.monotonic()
        answer = httpx.get(
            self.server.url + "/api/client/command", params=params, headers=self.headers, timeout=30
        )
        return answer, time.monotonic() - started

    def heartbeat(self) -> httpx.Response:
        return httpx.post(
            self.server.url + "/api/client/heartbeat", json=STATUS, headers=self.headers, timeout=30
        )

    def hang_up_mid_poll(self) -> None:
        """Send a poll on a raw socket and close it once the machine is online (the poll
        is then waiting, or about to)."""
        url = urlsplit(self.server.url)
        lines = ["GET /api/client/command HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            api = self.server.api()
            wait_for(lambda: api.status_of(self.machine_id) == "online", what="online")


def changed_at(server: ServerProc, machine_id: str) -> float:
    stamp = server.api().machine(machine_id)["status_changed_at"]
    return datetime.fromisoformat(stamp).timestamp()


def test_a_poll_without_wait_long_polls_for_the_poll_timeout(server):
    poller = Poller(server, "poll-default")
    answer, took = poller.poll()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"runs": [], "cancels": []}
    assert took >= POLL_TIMEOUT - 0.1


def test_a_poll_waits_at_most_the_poll_timeout_and_wait_0_answers_at_once(server):
    poller = Poller(server, "poll-cap")
    answer, took = poller.poll(wait=MAX_POLL_WAIT_S)
    assert answer.status_code == 200, answer.text
    assert POLL_TIMEOUT - 0.1 <= took < 20
    answer, took = poller.poll(wait=0)
    assert answer.status_code == 200, answer.text
    assert took < POLL_TIMEOUT


def test_a_wait_over_the_declared_cap_is_refused_naming_the_field(server):
    answer, _ = Poller(server, "poll-over").poll(wait=MAX_POLL_WAIT_S + 1)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", "wait")


def test_the_declared_cap_is_the_largest_poll_timeout_a_server_accepts(server):
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    parameters = schema["paths"]["/api/client/command"]["get"]["parameters"]
    wait = next(p for p in parameters if p["name"] == "wait")
    declared = next(s for s in wait["schema"]["anyOf"] if s.get("type") == "number")
    assert declared["maximum"] == MAX_POLL_WAIT_S
    with pytest.raises(ValueError):
        Settings(poll_timeout=MAX_POLL_WAIT_S + 1)
    assert Settings(poll_timeout=MAX_POLL_WAIT_S).poll_timeout == MAX_POLL_WAIT_S


def test_requests_without_a_session_header_are_one_session(server):
    """A heartbeat does not end the client's own pending poll, and polls from several
    threads are not taken for clones of each other."""
    poller = Poller(server, "no-session")
    polls: list[tuple[httpx.Response, float]] = []
    threads = [threading.Thread(target=lambda: polls.append(poller.poll())) for _ in range(3)]
    for thread in threads:
        thread.start()
    api = server.api()
    wait_for(lambda: api.status_of("no-session") == "online", what="online")
    assert poller.heartbeat().status_code == 200
    for thread in threads:
        thread.join(timeout=30)
    assert [answer.status_code for answer, _ in polls] == [200, 200, 200], polls
    assert all(took >= POLL_TIMEOUT - 0.1 for _, took in polls), "a poll was cut short"
    assert poller.heartbeat().status_code == 200
    assert api.machine("no-session")["conflict"] is None


def test_a_client_that_hangs_up_mid_poll_is_offline_after_the_grace(server):
    poller = Poller(server, "hang-up", session="s1")
    poller.hang_up_mid_poll()
    hung_up = time.time()
    api = server.api()
    wait_for(lambda: api.status_of("hang-up") == "offline", timeout=GRACE + 10, what="offline")
    assert api.machine("hang-up")["status_reason"] == "connection_lost"
    assert changed_at(server, "hang-up") - hung_up >= GRACE - 0.5, "offline before the grace"


def test_a_new_poll_soon_after_a_hang_up_keeps_the_machine_online(server):
    poller = Poller(server, "comes-back", session="s1")
    # The witness hangs up just after: once it is offline, the grace is over for both.
    witness = Poller(server, "witness", session="w1")
    done = threading.Event()

    def keep_polling() -> None:
        while not done.is_set():
            poller.poll()

    poller.hang_up_mid_poll()
    thread = threading.Thread(target=keep_polling)
    thread.start()
    try:
        witness.hang_up_mid_poll()
        api = server.api()
        wait_for(lambda: api.status_of("witness") == "offline", timeout=GRACE + 10, what="witness")
        history = api.get("/api/machines/comes-back/presence")
    finally:
        done.set()
        thread.join(timeout=30)
    assert [event["status"] for event in history] == ["online"], history


def test_a_silent_http_client_is_offline_after_the_heartbeat_timeout(tmp_path):
    """Between polls the limit is the heartbeat timeout plus a request's gap, not a
    whole poll timeout more: this server's poll timeout is a minute."""
    server = ServerProc(
        tmp_path / "server", None, poll_timeout=60, heartbeat_timeout=HEARTBEAT_TIMEOUT
    ).start()
    try:
        poller = Poller(server, "silent", session="s1")
        poller.poll(wait=0)
        last_request = time.time()
        api = server.api()
        bound = HEARTBEAT_TIMEOUT + POLL_GAP_S
        wait_for(lambda: api.status_of("silent") == "offline", timeout=bound + 10, what="offline")
        assert api.machine("silent")["status_reason"] == "heartbeat_timeout"
        silent_for = changed_at(server, "silent") - last_request
    finally:
        server.stop()
    assert HEARTBEAT_TIMEOUT - 0.5 <= silent_for <= bound + 10
