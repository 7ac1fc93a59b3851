"""How fast a machine goes offline when its agent stops or dies, on both transports.

On 127.0.0.1: a stop and a kill need no network fault. The timings are printed
(``pytest -s``); only the transitions, and bounds with room to spare, are asserted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import FAULT_SETTINGS, SLACK_S, report, wait_status
from tests.procs import AgentProc, ServerProc

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

TRANSPORTS = ["ws", "http"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    proc = ServerProc(tmp_path / "server", None, **FAULT_SETTINGS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def agent(server: ServerProc, tmp_path: Path, transport: str) -> Iterator[AgentProc]:
    proc = AgentProc(
        server, tmp_path / "agent", "lab-01", token=server.token(), transport=transport
    ).start()
    try:
        yield proc
    finally:
        proc.stop(kill=True)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_graceful_stop_is_offline_at_once(server, agent, transport):
    api = server.api()
    wait_status(api, "lab-01", "online", timeout=30)
    stopped_at = time.time()
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=20) == 0
    offline_at = wait_status(api, "lab-01", "offline", timeout=SLACK_S)
    assert api.machine("lab-01")["status_reason"] == "shutdown"
    report(f"graceful stop -> offline ({transport})", offline_at - stopped_at, bound=0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_killed_agent_is_offline_after_the_grace(server, agent, transport):
    api = server.api()
    # Online means connected; a long-poll agent is then killed while its poll waits,
    # as it nearly always is (it polls again the moment a poll ends).
    wait_status(api, "lab-01", "online", timeout=30)
    grace = FAULT_SETTINGS["offline_grace"]
    killed_at = time.time()
    agent.stop(kill=True)
    offline_at = wait_status(api, "lab-01", "offline", timeout=grace + SLACK_S)
    assert api.machine("lab-01")["status_reason"] == "connection_lost"
    report(f"SIGKILL -> offline ({transport})", offline_at - killed_at, bound=grace)
    assert offline_at - killed_at >= grace - 0.5, "offline before the grace was over"
    assert offline_at - killed_at <= grace + SLACK_S
